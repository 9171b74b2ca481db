"""Passthrough: any other request is forwarded as it came, its body digested but not read.

The model is taken from an OIP model path when there is one (so `/v2/models/{name}/...` follows that
model's route), else the call goes to the `"*"` route.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, unquote_plus

import orjson

from proxy.config import Upstream
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest, RequestTooLarge
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols import Fetch, Header, Request, Target, _no_duplicates, bytes_digest, text_digest
from proxy.protocols.oip import check_version, split_path

_NO_DATA_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Triton's `POST /v2/repository/index` (a listing, as gRPC's data-free RepositoryIndex): without a body, or with one
# of its flags only (`index_flags_only`), no data (the ingress then takes it as it takes `/v2/health/ready`); with any
# other body, which is not read, it is decided as the `"*"` route's. Operation `metadata`, as gRPC's RepositoryIndex
_INDEX_PATH: Final = "/v2/repository/index"
_INDEX: Final = Target("metadata", bodiless_data_free=True)
# the longest index body read for its flags (`{"ready": false}` is 16 bytes; room for whitespace): a longer one is
# not parsed, and stays an unread call
_INDEX_FLAGS_MAX: Final = 256
# llama.cpp's `POST /lora-adapters` sets the scales every request without its own `lora` gets, vLLM's
# `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` (SGLang's without `/v1`) add or take away an adapter its listing
# names as a model on its base, and SGLang's `/update_weights_from_disk` replaces its base's weights with those at a
# path, listed from then on under it (its served model name becomes the path): what serves changes (a reply that
# succeeds has the metadata read again; before 2026-12-05 SGLang's update stood unread until the next round)
_LORA_SCALES: Final = Target("passthrough", rediscover=True)
# SGLang's update, a target of its own: the weights replaced, what was read of the server is forgotten until read again
# (`CheckpointBook.changed`'s `replaced`, in every worker), not only what depends on its adapters (until helper
# routes2, 2026-12-05, another worker's call for the base's old name was recorded and held as the weights replaced)
REPLACES_WEIGHTS: Final = Target("passthrough", rediscover=True)
_LORA_CHANGES: Final = {"/lora-adapters": _LORA_SCALES, "/update_weights_from_disk": REPLACES_WEIGHTS}
# a vLLM's or SGLang's load or unload names its adapter (`lora_name`): the call is that model's, routed as a call for
# the adapter is, to the server that then serves it (before 2026-12-05 to the `"*"` route's upstream whatever it named,
# so with two upstreams an adapter routed to one was loaded on the other's base); a body naming none, the `"*"` route's
_ADAPTER_CHANGE: Final = Target("passthrough", rediscover=True)
_ADAPTER_CHANGES: Final = frozenset({
    "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/load_lora_adapter", "/unload_lora_adapter",
})  # fmt: skip
_ADAPTER_BODY_MAX: Final = 64 * 1024  # the longest load body read for its adapter's name (a name and a path)
# the deployment paths naming their model that no adapter reads, the model the text before the suffix, as LiteLLM's
# `{model:path}` matches it (the longest leaving the suffix): LiteLLM proxy's images (`/openai/deployments/{model:path}
# /images/generations`, `.../images/edits`) and Azure OpenAI's audio, which the openai SDK's `AzureOpenAI` calls there.
# Forwarded unread, as `/v1/images/generations` is, but by the path's model's route, judged by its purposes, as an
# OIP model's path is (until 2026-12-07 the `"*"` route's: with `policy.passthrough: forward` an `ads` image call
# reached a model whose route allows `assistant` alone; helper models16)
DEPLOYMENTS: Final = "/openai/deployments/"
# the header by which LiteLLM proxy's file upload and batch creation (`POST /v1/files`, `/v1/batches`, `/files`,
# `/batches`, `/{provider}/v1/...`) name the model whose deployment stores the file or runs the batch's calls, where
# the body (a form or JSON the proxy does not read) and the query name none (`data.get("model") or
# request.query_params.get("model") or request.headers.get("x-litellm-model")`): refused on a call the proxy does not
# read (`Adapter.read`), as the query's `model` is on those paths (`FILES_PATHS`); until 2026-12-07 forwarded, the
# call the `"*"` route's, the model it names unjudged (helper models16)
MODEL_HEADER: Final = "x-litellm-model"
# (and the header naming the provider that runs a batch, or stores a file, naming no model: `custom-llm-provider`, as
# the body's `custom_llm_provider`, `SENT_ELSEWHERE`, does: its API, with the credentials LiteLLM holds for it)
PROVIDER_HEADER: Final = "custom-llm-provider"
# (`/skills` too: LiteLLM proxy's skill upload, `create_skill`, reads the model whose provider stores it the same way)
FILES_PATHS: Final = ("/files", "/batches", "/skills")
# a POST there (the path with a trailing slash too: Starlette answers `/v1/skills/` 307 to `/v1/skills`, the query
# kept, which a client follows), its body read for `FILES_FIELDS` alone (`files_field`), never for its data
FILES_CALL: Final = Target("passthrough")
# such a POST on a provider's path, `/{provider}/v1/files` or `/{provider}/v1/batches` (LiteLLM proxy's `provider` path
# argument, taken before the `custom-llm-provider` header: its API stores the file or runs the batch), refused as that
# header is (until 2026-12-07 forwarded: helper models17)
PROVIDER_FILES_CALL: Final = Target("passthrough")
_PROVIDER_FILES: Final = ("/v1/files", "/v1/batches")
# the fields of such a body by which LiteLLM proxy picks the model or provider the file goes to, or the batch's calls
# run on: `model` (`_extract_model_param`, `create_batch`, `create_skill`: the body's, before the query's and the
# header's), `target_model_names` (a file upload's form field, models separated by commas: LiteLLM's managed files
# store it with each one's deployment) and `custom_llm_provider` (the body's, as `SENT_ELSEWHERE` has it; a file
# upload's form field, `get_custom_llm_provider_from_request_body`, `create_batch`'s `data.pop`). Refused where not
# empty (until 2026-12-07 forwarded, the model unjudged: helper models17)
FILES_FIELDS: Final = ("model", "target_model_names", "custom_llm_provider")
# a batch's input file's id naming a model: LiteLLM proxy's model-embedded id (`file-` and the URL-safe base64 of
# `litellm:{id};model,{model}`, which its upload naming a model answers), or its managed file's (the base64 of
# `litellm_proxy:...;target_model_names,{models}`): `create_batch` runs the batch's calls on that model before all else
# (`decode_model_from_file_id`, `get_models_from_unified_file_id`). Refused (until 2026-12-07 forwarded: helper models17)
FILE_ID_FIELD: Final = "input_file_id"
# the query's name for the provider, which LiteLLM proxy reads beside the `custom-llm-provider` header on its files,
# containers and videos routes (`get_custom_llm_provider_from_request_query`)
PROVIDER_QUERY: Final = "custom_llm_provider"
# a file upload's form field LiteLLM proxy collects `target_model_names` from, indexed too (`target_model_names[]`,
# `target_model_names[0]`: the openai SDK writes a list so; `_extract_target_model_names_from_form`)
_TARGETS: Final = "target_model_names"
_TARGETS_INDEXED: Final = "target_model_names["
# the part heads, and the bytes of their `Content-Disposition` lines, a multipart form is read for (`_form_fields`)
# up to: Starlette refuses a form of over 1,000 files or 1,000 fields (`request.form()`'s defaults), python-multipart a
# header line over 4,224 bytes; a real upload's are a few parts and under 1 KiB. Past them reading costs seconds (a
# 6 MB `Content-Disposition` of `; name="x"` took 1.3 s)
_FORM_PARTS_MAX: Final = 2_000
_DISPOSITION_MAX: Final = 64 * 1024
# the RFC 2231 pieces of one parameter read (`name*0`, `name*1`, ...)
_CONTINUED_MAX: Final = 64
_DEPLOYMENT_MEDIA: Final = ("/images/generations", "/images/edits", "/audio/speech", "/audio/transcriptions",
                            "/audio/translations")  # fmt: skip


def query_pairs(target: str) -> list[tuple[str, str]]:
    """The names and values of a request target's query, as the servers read them (Starlette and FastAPI, MLServer's,
    KServe's, Ray Serve's and BentoML's apps; aiohttp and Werkzeug alike): percent-decoded as UTF-8 (an escape that is
    not, U+FFFD), `+` a space, a key as often as it is repeated, a name without `=` a blank value."""
    return parse_qsl(target.partition("?")[2], keep_blank_values=True)


def query_texts(target: str) -> tuple[str, ...]:
    """A request target's query's names and values (`query_pairs`), the empty ones left out: what `QueryAdapter`
    reads; when there are several, then the query decoded whole (`+` a space) and the names and values joined, for
    what is cut between them (`?alice=@example.com`, `?q=alice&x=@example.com`: an app joining them hands its model
    the address)."""
    texts = tuple(text for pair in query_pairs(target) for text in pair if text)
    whole = unquote_plus(target.partition("?")[2])
    # (the names and values joined as the decoded query's pieces between its `&` and `=`, those a value's escapes
    # write too: `?q=alice%26x%3D%40example.com` hands the app `alice&x=@example.com`, read as `?q=alice&x=@example.com`
    # is; before 2026-12-05 the pairs' own texts were joined, `qalice&x=@example.com`, no address, helper getquery)
    joined = whole.replace("&", "").replace("=", "")
    if len(texts) < 2 and joined == "".join(texts):
        return texts
    return (*texts, whole, joined)


# GET paths of the APIs' and servers' own (models, health, metadata, statistics, Ollama's `/api/tags`, llama.cpp's
# `/models` and `/lora-adapters`, vLLM's `/server_info`, SGLang's `/get_model_info`): a call's data is not in them, so
# they are not scanned (`get_texts`), nor OIP's (`/v2/…`: a model's name and version, which a timestamp often is,
# `versions/1733390000`, a phone number to the detectors). Those under another API's prefix with more segments are:
# a custom app's own routes (`@app.get("/api/predict/{text}")`) and a trailing segment (`/v1/models/{id}`) may hold data
_KNOWN_GET: Final = frozenset({
    "/", "/v1", "/v2", "/api", "/health", "/healthz", "/ready", "/readyz", "/live", "/livez", "/metrics", "/info",
    "/props", "/slots", "/ping", "/version", "/docs", "/redoc", "/openapi.json", "/favicon.ico", "/v1/models",
    "/v2/health/ready", "/v2/health/live", "/api/tags", "/api/ps", "/api/version",
    "/models", "/lora-adapters", "/server_info", "/is_sleeping", "/load", "/get_model_info", "/get_server_info",
})  # fmt: skip
# (a path under these, without a query, takes no label its caller declares, only one found in it: an SDK's
# `default_headers` on `models.retrieve`, `files.retrieve`, a Triton client's model readiness: `api_get`)
_KNOWN_GET_PREFIXES: Final = ("/v1/", "/v2/", "/api/", "/slots/")
_OIP_PREFIX: Final = "/v2/"
# a path segment that is an id: ASCII letters and digits in parts joined by `-`, one of them holding a letter
# (`m-1733390000`, `file-4155551234`, `1733390000-x`); read with `_` for its dashes when a part is a run of nine digits
# or more (`_ids_read`), as the phone detector reads a run glued to a word by an underscore (`m_1733390000`: no phone).
# A phone written as one (`555-123-4567`, `x-415-555-1234`: no part of nine digits) is read as it came
_ID_SEGMENT: Final = re.compile(r"(?<![^/])(?=[0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![^/])")
_LONG_PART: Final = re.compile(r"(?<![^-])[0-9]{9,}(?![^-])")
_NINE_DIGITS: Final = re.compile(r"[0-9]{9}")  # (a path without them is read as it came, not searched for ids)
# where a path's segments are an API's resources' ids (`/v1/models/{id}`, `/v1/files/{id}/content`, KServe V1's
# `/v1/models/{name}`): only there is an id read so. Elsewhere a segment is what a custom app hands its model
# (`@app.get("/predict/{text}")`, `/api/predict/{text}`), read as sent, as a body's text is: `tel-4155551234` is a
# phone there (from 2026-12-05's first change until the second, read as an id and forwarded, helper revgetquery)
_ID_PREFIX: Final = "/v1/"
# OpenAI's resources under `_ID_PREFIX` that a GET names by id (`/v1/{resource}/…`, the API's reference), and the
# collections whose next segment is one of their ids: `/v1/files/{file_id}/content`, `/v1/chat/completions/{id}`,
# `/v1/fine_tuning/jobs/{id}/events`, `/v1/threads/{id}/runs/{id}/steps/{id}`, `/v1/vector_stores/{id}/files/{id}`,
# `/v1/evals/{id}/runs/{id}/output_items/{id}`, `/v1/containers/{id}/files/{id}`, `/v1/conversations/{id}/items/{id}`.
# A model's id is every segment after `/v1/models/` (`org/m-1733390000`, as the SDK sends a served model's name).
# Any other path under `/v1/` is a custom route's or a passthrough's (`/v1/predict/tel-4155551234`), read as sent (before
# 2026-12-05's third change its segments were read as ids, a phone there forwarded, helper reqreads)
_ID_RESOURCES: Final = frozenset({
    "models", "files", "batches", "responses", "chat", "fine_tuning", "vector_stores", "assistants", "threads", "evals",
    "containers", "conversations", "videos",
})  # fmt: skip
# (a namespace's next segment is one of its collections: `/v1/chat/completions/{id}`, `/v1/fine_tuning/jobs/{id}`)
_ID_NAMESPACES: Final = {"chat": frozenset({"completions"}), "fine_tuning": frozenset({"jobs", "checkpoints"})}
# the collections an id's next segment may be, by the collection it is an id of (`/v1/threads/{id}/runs/{id}`): an id
# is read so only where one stands, a collection's next segment with collections and ids in turn from the resource on
# (until a later change of 2026-12-05 after any collection's name anywhere: `/v1/chat/messages/tel-4155551234` or
# `/v1/batches/b/runs/tel-4155551234` was read as an id and forwarded, helper revreqreads)
_ID_CHILDREN: Final = {
    "checkpoints": frozenset({"permissions"}), "vector_stores": frozenset({"files", "file_batches"}),
    "threads": frozenset({"messages", "runs"}), "runs": frozenset({"steps", "output_items"}),
    "evals": frozenset({"runs"}), "containers": frozenset({"files"}), "conversations": frozenset({"items"}),
}  # fmt: skip
_NO_CHILDREN: Final[frozenset[str]] = frozenset()


def _id_read(segment: re.Match[str]) -> str:
    text = segment.group()
    return text.replace("-", "_") if _LONG_PART.search(text) is not None else text


def _ids_read(path: str) -> str:
    """A GET's path as the detectors read it: its ids' runs of digits glued by `-` to a word (`_ID_SEGMENT`) are read as
    glued by `_`, an id's, not a phone's (before 2026-12-05 `/v1/models/m-1733390000`, a model's name with a
    timestamp, was `pii:phone`, helper getquery); in an OpenAI resource's id segments only (`_ID_RESOURCES`)."""
    if "-" not in path or not path.startswith(_ID_PREFIX) or _NINE_DIGITS.search(path) is None:
        return path
    segments = path.split("/")  # ["", "v1", resource, ...]
    if len(segments) < 4 or segments[2] not in _ID_RESOURCES:
        return path
    collection = segments[2]
    if collection == "models":
        for at in range(3, len(segments)):
            segments[at] = _ID_SEGMENT.sub(_id_read, segments[at])
        return "/".join(segments)
    at = 3
    if collection in _ID_NAMESPACES:  # (`chat`, `fine_tuning`: one of their collections next)
        if segments[3] not in _ID_NAMESPACES[collection]:
            return path
        collection = segments[3]
        at = 4
    while at < len(segments):
        segments[at] = _ID_SEGMENT.sub(_id_read, segments[at])
        if at + 1 == len(segments) or segments[at + 1] not in _ID_CHILDREN.get(collection, _NO_CHILDREN):
            break
        collection = segments[at + 1]
        at += 2
    return "/".join(segments)


def get_texts(target: str) -> tuple[str, ...]:
    """What a GET's or HEAD's request target hands a custom model app (`QueryAdapter`): its percent-decoded path (a
    FastAPI app's `@app.get("/predict/{text}")` reads a segment), but an API's known GET path (`_KNOWN_GET`) or OIP's
    (`/v2/…`), then its query's names and values (`query_texts`)."""
    path, _, query = target.partition("?")
    texts = query_texts(target) if query else ()
    if "%" in path:
        path = unquote(path)
    if path in _KNOWN_GET or path.startswith(_OIP_PREFIX):
        return texts
    return (_ids_read(path), *texts)


def api_get(target: str) -> bool:
    """Whether a GET's or HEAD's request target is an API's own path without a query, or an empty one (`_KNOWN_GET`,
    or under `_KNOWN_GET_PREFIXES`): a label its caller declares is not of it, only one the detectors find in it."""
    path, _, query = target.partition("?")
    return not query and (path in _KNOWN_GET or path.startswith(_KNOWN_GET_PREFIXES))


def index_flags_only(body: bytes) -> bool:
    """Whether a repository index request's body is a JSON object of its `ready` flag only (`{"ready": true}`, as
    Triton reads it; `{}`, which MLServer needs when no flag is given): the servers read only that flag from it, and
    hand nothing to a model, so it carries no data, as gRPC's RepositoryIndex does. Anything else (another key, a
    `ready` that is not a boolean, a repeated key, not UTF-8 JSON) is not."""
    if len(body) > _INDEX_FLAGS_MAX:
        return False
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except ValueError:  # not UTF-8 (UnicodeDecodeError), not JSON, or a key repeated (`_Duplicate`)
        return False
    return type(value) is dict and all(key == "ready" and type(flag) is bool for key, flag in value.items())


def adapter_named(body: bytes) -> str:
    """The adapter a vLLM's or SGLang's load or unload body names (`lora_name`, a string), read as their FastAPI apps
    read it (Starlette's `Request.json()`: Python's `json.loads` of the bytes, so UTF-8 with or without a byte order
    mark, UTF-16 or UTF-32, the last of a key written twice), so the call is routed and decided as the call of the
    adapter the server loads or unloads; '' (the `"*"` route's call) for a body it loads or unloads nothing by (not
    JSON, nested too deeply, not an object, no string `lora_name`: refused there). One over `_ADAPTER_BODY_MAX` is
    refused, its name not read. Before 2026-12-05 (review revroutes of 768e77e) such a body, and one with a key
    written twice or a byte order mark, was the `"*"` route's call while the server read a name in it: sent to the
    other upstream, or decided by the `"*"` route's purposes, not the adapter's; and one nested too deeply was the
    proxy's internal error."""
    if not body:
        return ""
    if len(body) > _ADAPTER_BODY_MAX:
        raise RequestTooLarge(f"a LoRA adapter's load or unload body is read up to {_ADAPTER_BODY_MAX // 1024} KiB "
                              "for the adapter it names (its lora_name), which decides where it goes and for which "
                              "purposes: this one is larger")  # fmt: skip
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    named = value.get("lora_name") if type(value) is dict else None
    return named if type(named) is str else ""


def files_field(body: bytes, content_type: str | None) -> str:
    """The first of `FILES_FIELDS` a files, batches or skills body sets, not empty (or an `input_file_id` naming a
    model), or "": read as LiteLLM proxy reads it, each way it may. A type holding `form` (any case: Starlette's
    `request.form()`, which LiteLLM's file upload calls for `target_model_names`, matches the media type as
    python-multipart lowercases it) as a multipart form's parts (`_form_fields`) or an urlencoded form's pairs; a type
    not holding `form` as written (`_read_request_body`'s test) as JSON too (orjson's, else Python's, which takes `NaN`;
    an object's keys; not JSON, none). A key set again, any of its values; `target_model_names[]` or
    `target_model_names[0]` as `target_model_names` (LiteLLM's form reading collects them: the openai SDK writes a list
    so). Only names are looked at, and those fields' values: a file part's content is passed over (until review
    revmodels17 a multipart form was cut at each `--boundary` found anywhere, its parameters taken by a first match:
    a model part after a file holding `--boundary--`, or named after another `name`, went on)."""
    pairs: list[tuple[str, Any]] = []
    kind = (content_type or "").lower()
    if "form" in kind:
        if "multipart/form-data" in kind:
            pairs += _form_fields(body, content_type or "")
        elif "application/x-www-form-urlencoded" in kind:
            text = body.decode("latin-1")
            if text.count("&") + text.count(";") > _FORM_PARTS_MAX:  # (counted in C)
                raise _form_too_large()
            # (and cut at `;` too, as older python-multipart and Python's parse_qsl did: either reading's pairs)
            pairs += parse_qsl(text, keep_blank_values=True)
            if ";" in text:
                pairs += parse_qsl(text.replace(";", "&"), keep_blank_values=True)
    if content_type is None or "form" not in content_type:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            try:
                value = json.loads(body.decode("utf-8"))
            except (ValueError, RecursionError):  # (not UTF-8, not JSON)
                value = None
        if type(value) is dict:
            pairs += value.items()
    for key, value in pairs:
        if type(key) is not str:
            continue
        field = _TARGETS if key.startswith(_TARGETS_INDEXED) and key.endswith("]") else key
        if (field in FILES_FIELDS and value) or (field == FILE_ID_FIELD and _id_names_model(value)):
            return key
    return ""


def _id_names_model(file_id: Any) -> bool:
    """Whether a batch's `input_file_id` names the model its calls run on (`FILE_ID_FIELD`): decoded as LiteLLM decodes
    it, the model-embedded id after its `file-` or `batch_` prefix, the managed one whole (URL-safe base64, its padding
    added, as UTF-8)."""
    if type(file_id) is not str:
        return False
    embedded = file_id[5:] if file_id.startswith("file-") else file_id[6:] if file_id.startswith("batch_") else file_id
    for encoded in (embedded, file_id):
        try:
            decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, ValueError):  # (not base64, not UTF-8)
            continue
        if (decoded.startswith("litellm:") and ";model," in decoded) or (
            decoded.startswith("litellm_proxy") and "target_model_names," in decoded
        ):
            return True
    return False


def _segments(header: str) -> list[str]:
    """A header's value cut at each `;` outside a quoted string, as python-multipart cuts it (its `_parseparam`, the
    standard library's `email.message` way, which Starlette's form parser reads a `Content-Type` and a part's
    `Content-Disposition` with): a `;` after an odd number of quotes since the piece began (a `\\"` not counted) is
    inside one. The counting is C's (`str.count`), a `;` at a time."""
    pieces: list[str] = []
    start = 0
    while True:
        end = header.find(";", start)
        at, quotes = start, 0
        while end != -1:
            quotes += header.count('"', at, end) - header.count('\\"', at, end)
            if quotes % 2 == 0:
                break
            at, end = end, header.find(";", end + 1)
        if end == -1:
            pieces.append(header[start:])
            return pieces
        pieces.append(header[start:end])
        start = end + 1


def _params(header: str, key: str) -> list[str]:
    """The values `header` gives parameter `key`, as python-multipart reads them and as a parser not minding quotes
    would: cut at `;` each way (`_segments`, and at every `;`), a key lowercased and stripped, a quoted value unquoted
    (`\\\\` a backslash, then `\\"` a quote); of each cutting the last plain value (python-multipart keeps the last),
    the last RFC 2231 `key*=charset'lang'value` percent-decoded, and its `key*0`, `key*1`, ... joined (older
    python-multipart read those through `email.message`; newer ones skip them). At most six, whatever the header
    holds."""
    found: list[str] = []
    for pieces in (_segments(header), header.split(";")):
        plain: str | None = None
        starred: str | None = None
        continued: list[tuple[int, str]] = []
        for piece in pieces[1:]:
            name, equals, value = piece.partition("=")
            name = name.strip().lower()
            if not equals or not name.startswith(key):
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
            star = name[len(key) :]
            if star.endswith("*") and value.count("'") >= 2:  # (`charset'lang'value`, percent-encoded)
                value = unquote(value.split("'", 2)[2], errors="replace")
            if not star:
                plain = value
            elif star == "*":
                starred = value
            elif star[0] == "*" and star.strip("*").isdigit() and len(continued) < _CONTINUED_MAX:
                continued.append((int(star.strip("*")), value))
        found += [value for value in (plain, starred) if value is not None]
        if continued:
            found.append("".join(value for _, value in sorted(continued)))
    return list(dict.fromkeys(found))


def _decoded(raw: str, charsets: list[str]) -> list[str]:
    """`raw` (a header's text, latin-1) as Starlette decodes a form's names and values (`_user_safe_decode`): in the
    form's charset, UTF-8 where it names none, latin-1 where that fails; each charset it may be read in."""
    try:
        data = raw.encode("latin-1")
    except UnicodeEncodeError:  # (a percent-decoded RFC 2231 value: already text)
        return [raw]
    texts = [raw]
    for charset in charsets:
        try:
            texts.append(data.decode(charset))
        except (ValueError, LookupError):  # (not in it, or no such text encoding: latin-1, `raw`)
            continue
    return texts


def _kept(name: str) -> bool:
    """Whether a form's field name is one `files_field` reads."""
    return name in FILES_FIELDS or name == FILE_ID_FIELD or (name.startswith(_TARGETS_INDEXED) and name.endswith("]"))


def _form_too_large() -> RequestTooLarge:
    return RequestTooLarge(f"a file upload's or batch's form is read for the model it names up to {_FORM_PARTS_MAX:,} "
                           f"fields or parts and {_DISPOSITION_MAX // 1024} KiB of multipart Content-Disposition "
                           "lines: Starlette refuses a form of over 1,000 files or 1,000 fields, python-multipart a "
                           "header line over 4,224 bytes")  # fmt: skip


def _form_fields(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The multipart form's parts whose name `files_field` reads, each (its name, its value: an id's text, any other's
    "" where empty, else "-"), read as python-multipart reads a form (Starlette's `request.form()`) and, where a reading
    could differ, each way. Its boundary each the type gives (`_params`). A part begins at the body's first
    `--boundary` and at each delimiter, `\r\n--boundary` then CRLF, a space or a tab (python-multipart's; one followed
    by `--` ends its form, and the rest is read all the same), found in C (a pattern of the boundary's); its head runs
    to its first blank line (CRLF CRLF), cut into lines at CRLF alone (a value may hold a bare LF, U+0085, a form feed:
    python-multipart's do), and a delimiter within a head read begins no part (python-multipart looks for none there).
    Every `Content-Disposition` line's names count (Starlette's is the last line's last `name`), each as written and
    decoded in the type's charset (`_decoded`). A value runs to the next delimiter followed by CRLF, `--`, a space or a
    tab: only an id's is sliced; any other's is empty where one begins at its start. A file's content is searched in C,
    never copied; a head is read once. Over `_FORM_PARTS_MAX` heads, or `_DISPOSITION_MAX` bytes of their
    `Content-Disposition` lines, a RequestTooLarge: a form Starlette refuses itself, which would cost seconds to read."""
    charsets = _params(content_type, "charset") or ["utf-8"]
    found: list[tuple[str, str]] = []
    heads = disposed = 0
    for boundary in _params(content_type, "boundary"):
        try:
            marker = b"\r\n--" + boundary.encode("latin-1")
        except UnicodeEncodeError:  # (an RFC 2231 value decoded past latin-1: no body's bytes)
            continue
        if not boundary:
            continue
        escaped = re.escape(marker)
        begins = re.compile(escaped + rb"[ \t\r]")  # (a CR alone too: more places read, none missed)
        ends = re.compile(escaped + rb"(?:[ \t]|\r\n|--)")
        at = body.find(marker[2:])
        start = at + len(marker) - 2 if at != -1 else -1
        covered = -1
        while start != -1:
            line = body.find(b"\r\n", start)
            if line == -1:
                break
            if at > covered:
                blank = body.find(b"\r\n\r\n", line)
                if blank == -1:
                    break
                covered = blank
                heads += 1
                if heads > _FORM_PARTS_MAX:
                    raise _form_too_large()
                names: dict[str, None] = {}
                # (a part with no head, `--b\r\n\r\n`: its blank line is its delimiter's CRLF, and compiled, mypyc
                # slices bytes from a start past the end as it stands, a SystemError, a negative size)
                for header in (body[line + 2 : blank] if blank > line else b"").split(b"\r\n"):
                    field, colon, value = header.partition(b":")
                    if colon and field.strip().lower() == b"content-disposition":
                        disposed += len(value)
                        if disposed > _DISPOSITION_MAX:
                            raise _form_too_large()
                        for raw in _params(value.decode("latin-1"), "name"):
                            for name in _decoded(raw, charsets):
                                if _kept(name):
                                    names[name] = None
                content = blank + 4
                for name in names:
                    if name == FILE_ID_FIELD:
                        end = ends.search(body, content)
                        text = body[content : end.start() if end is not None else len(body)].decode("latin-1")
                        found += [(name, value) for value in _decoded(text, charsets)]
                    else:
                        empty = content == len(body) or ends.match(body, content) is not None
                        found.append((name, "" if empty else "-"))
            next_part = begins.search(body, start)
            at = next_part.start() if next_part is not None else -1
            start = next_part.end() - 1 if next_part is not None else -1
    return found


def _deployment_model(path: str) -> str:
    """The model a deployment path no adapter reads names (`_DEPLOYMENT_MEDIA`), or "" (another: the `"*"` route's)."""
    for suffix in _DEPLOYMENT_MEDIA:
        if path.endswith(suffix) and len(path) > len(DEPLOYMENTS) + len(suffix):
            return path[len(DEPLOYMENTS) : -len(suffix)]
    return ""


class Adapter(AdapterBase):
    name: ProtocolName = "passthrough"
    dialect = "passthrough"
    status_attribute = "http.response.status_code"
    provider: str | None = None

    def match(self, method: str, path: str) -> Target:
        """Anything: GET, HEAD and OPTIONS carry no data (metadata, health, files; but a GET's or HEAD's query while
        zones are configured, `QueryAdapter`); other methods may."""
        if method == "POST" and path == _INDEX_PATH:
            return _INDEX
        if method == "POST" and path in _ADAPTER_CHANGES:
            return _ADAPTER_CHANGE
        if method == "POST" and path in _LORA_CHANGES:
            return _LORA_CHANGES[path]
        parts = split_path(path)
        model, version = (parts[0], parts[1]) if parts else ("", None)
        if method not in _NO_DATA_METHODS:
            if path.startswith(DEPLOYMENTS):
                model = _deployment_model(path)
            elif method == "POST" and not parts and path.rstrip("/").endswith(FILES_PATHS):
                trimmed = path.rstrip("/")
                provider = trimmed.count("/") == 3 and trimmed.endswith(_PROVIDER_FILES)
                return PROVIDER_FILES_CALL if provider else FILES_CALL
            return Target("passthrough", model, version)
        # an OIP call that carries no data (model metadata, readiness, health, statistics) is `metadata`, as the same
        # question over gRPC (`oip_grpc`'s data-free RPCs) is: one operation for one question on either listener
        return Target("metadata" if path.startswith("/v2/") or path == "/v2" else "passthrough", model, version,
                      carries_data=False)  # fmt: skip

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        raise NotImplementedError("passthrough has no merged listing")

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        """Opaque with or without a body: a POST's request is its path and query too (Triton's
        `/v2/repository/models/{m}/load` loads a model, vLLM's `/sleep` drops its weights, llama.cpp's
        `/slots/{id}?action=erase` a slot's cache), as gRPC's methods but the data-free ones are opaque with an
        empty message; only Triton's repository index without a body carries nothing."""
        check_version(target.version)  # `/v2/models/m/versions/02/stats` is Triton's version 2, as for infer
        if target.carries_data and (header(MODEL_HEADER) or header(PROVIDER_HEADER)):
            named = MODEL_HEADER if header(MODEL_HEADER) else PROVIDER_HEADER
            raise InvalidRequest(f"the request may not name a model or provider in {named!r} on a path lineage-proxy "
                                 "does not read: LiteLLM proxy stores a file, or runs a batch's calls, on the one it "
                                 "names, which no route's rules judge here; leave it out")  # fmt: skip
        if target is PROVIDER_FILES_CALL:
            raise InvalidRequest("the request may not name a provider in its path (/{provider}/v1/files, "
                                 "/{provider}/v1/batches) on a path lineage-proxy does not read: LiteLLM proxy stores a "
                                 "file, or runs a batch's calls, at the provider it names, which no route's rules judge "
                                 "here; call /v1/files or /v1/batches")  # fmt: skip
        if target is FILES_CALL and body and (named := files_field(body, header("content-type"))):
            raise InvalidRequest(f"the request may not name a model or provider in its body's {named!r} on a path "
                                 "lineage-proxy does not read: LiteLLM proxy stores a file, or runs a batch's calls, on "
                                 "the one it names, which no route's rules judge here; leave it out", param=named)  # fmt: skip
        if target is _ADAPTER_CHANGE:  # its adapter's call, which runs no weights
            return Request(adapter_named(body), target.operation, digest=bytes_digest(body) if body else None,
                           opaque=True, runs_no_weights=True)  # fmt: skip
        return Request(
            target.model,
            target.operation,
            version=target.version,
            digest=bytes_digest(body) if body else None,
            opaque=bool(body) or target is not _INDEX,
        )

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        return None  # (never refused for its bytes: never read)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        return None  # forwarded as it came: nothing is read from the reply


class QueryAdapter(Adapter):
    """A GET's or HEAD's query, while zones are configured (`HttpIngress.handle`): custom model apps run a model on a
    GET (a FastAPI, Ray Serve or BentoML app's `@app.get("/predict")`, an MLServer custom runtime's GET handler),
    handing it the query's parameters, so the query is the call's request, read as passthrough's call of the model its
    path names. Its path, but an API's known one, and its query's names and values are the input's texts
    (`get_texts`), bounded as the request target is (`wire.MAX_TARGET`, 414); the reply is passed on unread, as passthrough's."""

    def __init__(self, texts: tuple[str, ...] | None = None) -> None:
        # the target's texts as `Exchange.query_read` read them (`get_texts`), so it is parsed once; None: read here
        self.texts = texts

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        """`body`: the request target, as received (latin-1, `wire.Request.target`)."""
        check_version(target.version)
        texts = self.texts if self.texts is not None else get_texts(body.decode("latin-1"))
        sent = _sent_path(body, texts)
        if sent is None:
            return Request(target.model, target.operation, version=target.version, texts=texts)
        return QueryRequest(
            target.model, target.operation, version=target.version, texts=texts, digest=text_digest((sent, *texts[1:])),
            sent=sent,
        )  # fmt: skip


def _sent_path(target: bytes, texts: tuple[str, ...]) -> str | None:
    """The path as sent (percent-decoded) when it was read with ids (`_ids_read`), the first of `texts`; else None."""
    if not texts or "_" not in texts[0]:  # (a path read with ids has one: `target` may write its dash `%2D`)
        return None
    path = target.decode("latin-1").partition("?")[0]
    if "%" in path:
        path = unquote(path)
    if texts[0] == path or texts[0] != _ids_read(path):
        return None
    return path


@dataclass(frozen=True, slots=True, init=False)
class QueryRequest(Request):
    """A labelled GET's request whose path was read with ids (`_ids_read`): its texts as the detectors read them
    (`m_1733390000`), `sent` its path as sent (`m-1733390000`), which its digest is of and its captured input shows
    (`as_sent`): a digest or a capture of what was not sent matches nothing its caller holds (the digest from
    2026-12-05's first change until its second, helper revgetquery; the capture until its fourth, helper reqreads).
    `sent` is a field, taken by `__init__` after `Request`'s (as `proxy.flow`'s docstring says of the per-call
    dataclasses): a copy made by `dataclasses.replace` keeps it (until 2026-12-05, helper records, set after the
    request was made, it was no field, and a copy had none)."""

    sent: str = ""

    def __init__(
        self, model: str, operation: str, stream: bool = False, texts: tuple[str, ...] = (),
        params: tuple[tuple[str, Any], ...] = (), labels: tuple[str, ...] = (), version: str | None = None,
        digest: str | None = None, opaque: bool = False, unscanned: bool = False,
        joined: tuple[tuple[str, ...], ...] = (), decoded: tuple[str, ...] = (), builds_on: str | None = None,
        stored: bool = False, sequence: str | None = None, starts: bool = False, unrouted: bool = False,
        names: tuple[str, ...] = (), runs_no_weights: bool = False, sent: str = "",
    ) -> None:  # fmt: skip
        Request.__init__(self, model, operation, stream, texts, params, labels, version, digest, opaque, unscanned,
                         joined, decoded, builds_on, stored, sequence, starts, unrouted, names, runs_no_weights)  # fmt: skip
        object.__setattr__(self, "sent", sent)

    def as_sent(self, masked: tuple[str, ...]) -> tuple[str, ...]:
        """`masked` (the texts masked as read, `Detectors.mask_texts`) with the path as sent: whole when nothing in it
        was masked; else segment by segment, each masked one as masked, each other as sent (a path cut where the
        capture ends, its segments not those read, is shown as masked)."""
        if not masked:
            return masked
        read, shown = self.texts[0], masked[0]
        if shown == read:
            return (self.sent, *masked[1:])
        parts, sent, cut = read.split("/"), self.sent.split("/"), shown.split("/")
        if len(cut) != len(parts):
            return masked
        for at in range(len(parts)):  # (the path read and as sent have as many segments: `_ids_read` adds none)
            if cut[at] == parts[at]:
                cut[at] = sent[at]
        return ("/".join(cut), *masked[1:])


class NothingServed:
    """A passthrough upstream says nothing about its weights: only a pin names them."""

    def __init__(self) -> None:
        self.unready: frozenset[str] = frozenset()
        self.missing: frozenset[str] = frozenset()
        self.loads = False

    def resolve(self, model: str, version: str | None) -> None:
        return None

    def scales_unknown(self) -> NothingServed:
        return self

    def twins(self, checkpoint: str) -> tuple[str, ...]:
        return ()


class Dialect:
    """Any HTTP answer to `GET /` means the upstream is up; there is no metadata to read."""

    async def discover(self, upstream: Upstream, fetch: Fetch, models: frozenset[str]) -> NothingServed:
        try:
            await fetch.get_json(upstream, "/")
        except LookupError:
            pass
        return NothingServed()


ADAPTER = Adapter()
DIALECT = Dialect()
