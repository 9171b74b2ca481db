"""LiteLLM proxy's file upload, batch creation and skill upload (`POST /v1/files`, `/v1/batches`, `/v1/skills`), which
the proxy does not read, pick the model or provider the file goes to, or the batch's calls run on, from the body first:
a file upload's form fields `model`, `target_model_names` (managed files, one per model) and `custom_llm_provider`
(`extract_file_creation_params`, `get_custom_llm_provider_from_request_body`), a batch's JSON `model` and
`custom_llm_provider` (`create_batch`: `data.get("model")`, `data.pop("custom_llm_provider")`). Those fields are read
(`passthrough.files_field`), never the file: one naming a model or provider is refused 400 `invalid_request`, as the
query's `model` and the `x-litellm-model` header are there. So is such a path with a trailing slash naming one in its
query (Starlette answers `/v1/skills/?model=m` 307 to `/v1/skills?model=m`), and, on any POST the proxy does not read,
the query's `custom_llm_provider` (LiteLLM's files, containers and videos routes: `get_custom_llm_provider_from_request_query`),
as its `custom-llm-provider` header is.

Until 2026-12-07, under `policy.passthrough: forward`, each went on by the `"*"` route, recorded allowed, an `ads` file
stored with claude-fallback's deployment, whose route allows `assistant` alone (helper models17)."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from tests.harness import serving
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_files_model_named_refused import BATCH, FILE
from tests.test_model_in_path import FORWARD

LINES = orjson.dumps({"custom_id": "1", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"model": ANSWERED, "messages": [{"role": "user", "content": "hi"}]}})  # fmt: skip


def litellm_posts(seen: list[tuple[str, bytes]]) -> web.Application:
    """LiteLLM proxy's POST routes as far as the client sees them: each noted as (its target as it came, its body), a
    file's path answered a file object, any other a batch object."""

    async def created(request: web.Request) -> web.Response:
        seen.append((request.raw_path, await request.read()))
        return web.json_response(FILE if request.path.rstrip("/").endswith("/files") else BATCH)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": ANSWERED, "object": "model", "owned_by": "o"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/{tail:.*}", created)
    return app


# a file's id naming the model it was uploaded with (LiteLLM's `encode_file_id_with_model`), a managed file's naming its
EMBEDDED = "file-" + base64.urlsafe_b64encode(f"litellm:file-abc123;model,{ANSWERED}".encode()).decode().rstrip("=")
MANAGED = base64.urlsafe_b64encode(
    f"litellm_proxy:application/octet-stream;unified_id,u-1;target_model_names,{ANSWERED}".encode()
).decode()

# (operation, its arguments beside the file's or batch's own) -> refused
SDK_CASES = [
    # a file upload's form fields: the model whose deployment stores it, the models it is stored with, its provider
    ("files", {"extra_body": {"model": ANSWERED}}, True),
    ("files", {"extra_body": {"target_model_names": f"{ASKED},{ANSWERED}"}}, True),
    ("files", {"extra_body": {"custom_llm_provider": "bedrock"}}, True),
    # a batch's JSON: the model whose deployment runs its calls, its provider, an input file's id naming a model
    # (LiteLLM's model-embedded id, its managed file's id)
    ("batches", {"extra_body": {"model": ANSWERED}}, True),
    ("batches", {"input_file_id": EMBEDDED}, True),
    ("batches", {"input_file_id": MANAGED}, True),
    ("batches", {"extra_body": {"custom_llm_provider": "bedrock"}}, True),
    # the query's provider, which LiteLLM's file upload reads after the header
    ("files", {"extra_query": {"custom_llm_provider": "bedrock"}}, True),
    # forwarded on both: an empty model (LiteLLM's `or`: none), where it is stored (no model), a model in the batch's
    # metadata (not read to route), a model in the file's lines (its data, not read: see the README)
    ("files", {"extra_body": {"model": ""}}, False),
    ("files", {"extra_body": {"target_storage": "azure_storage"}}, False),
    ("batches", {"metadata": {"model": ANSWERED}}, False),
    ("batches", {"input_file_id": "file-bGl0ZWxsbTpmaWxlLWFiYzEyMw"}, False),  # (`litellm:file-abc123`: no model)
    ("files", {}, False),
]


@pytest.mark.parametrize(("operation", "named", "refused"), SDK_CASES)
def test_a_files_or_batches_body_naming_a_model(loop_thread, make_proxy, operation, named, refused) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK (its multipart form for a file, JSON for a batch), under `policy.passthrough:
    forward`, for `ads`: 400 `invalid_request` naming the field, nothing forwarded; else forwarded as sent."""
    seen: list[tuple[str, bytes]] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": "ads"})  # fmt: skip
        try:
            if operation == "files":
                client.files.create(file=("b.jsonl", LINES), purpose="batch", **named)
            else:
                batch: Any = {"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"}
                client.batches.create(**(batch | named))
            got: tuple[Any, ...] = (200, None)
        except openai.APIStatusError as error:
            got = (error.status_code, error.code)
        finally:
            client.close()
    assert got == ((400, "invalid_request") if refused else (200, None))
    assert len(seen) == (0 if refused else 1)
    if not refused and operation == "files":
        assert LINES in seen[0][1]  # (the file went on as sent)


def _post(target: str, body: bytes, content_type: str) -> urllib.request.Request:
    return urllib.request.Request(target, data=body, method="POST",
                                  headers={"content-type": content_type, "x-purpose": "ads"})  # fmt: skip


FORM = "multipart/form-data; boundary=b0"


def _form(*parts: tuple[str, bytes]) -> bytes:
    return b"".join(b'--b0\r\nContent-Disposition: form-data; ' + head.encode() + b"\r\n\r\n" + value + b"\r\n"
                    for head, value in parts) + b"--b0--\r\n"  # fmt: skip


UPLOAD = ('name="file"; filename="b.jsonl"', LINES)
UNQUOTED = _form(('name="purpose"', b"batch"), ("name=model", ANSWERED.encode()), UPLOAD)
STARRED = _form(("name*=utf-8''model", ANSWERED.encode()), UPLOAD)
SKILL = _form(('name="model"', ANSWERED.encode()), ('name="files"; filename="SKILL.md"', b"# s"))
FILE_NAMED_MODEL = _form(('name="purpose"', b"batch"), ('name="file"; filename="model"', LINES))

# (target, body, content type, refused): a raw POST under `policy.passthrough: forward`, for `ads`
RAW_CASES = [
    # a trailing slash (Starlette: `/v1/skills/` 307 to `/v1/skills`, the query kept; `/v1/files/` 405 where a
    # `{file_id:path}` GET route matches it, refused all the same), also percent-decoded
    (f"/v1/skills/?model={ANSWERED}", b"{}", "application/json", True),
    (f"/v1/files/?model={ANSWERED}", b"{}", "application/json", True),
    (f"/v1/batches/?model={ANSWERED}", b"{}", "application/json", True),
    (f"/v1/files%2F?model={ANSWERED}", b"{}", "application/json", True),
    (f"/v1/fil%65s/?model={ANSWERED}", b"{}", "application/json", True),
    # a batch's body as an urlencoded form (LiteLLM's `_read_request_body`: `"form"` in the type, `request.form()`)
    ("/v1/batches", f"input_file_id=file-1&model={ANSWERED}".encode(), "application/x-www-form-urlencoded", True),
    # a form's field name written otherwise: unquoted, RFC 2231's `name*`
    ("/v1/files", UNQUOTED, FORM, True),
    ("/v1/files", STARRED, FORM, True),
    # a skill's form field, the model whose provider stores it
    ("/v1/skills", SKILL, FORM, True),
    # the query's provider on any POST the proxy does not read (containers, a video's remix)
    ("/v1/containers?custom_llm_provider=azure", b'{"name": "c"}', "application/json", True),
    ("/v1/videos/video_1/remix?custom_llm_provider=vertex_ai", b'{"prompt": "p"}', "application/json", True),
    # a provider's path (LiteLLM's `/{provider}/v1/files`, `/{provider}/v1/batches`: its API stores the file, or runs the
    # batch, as the `custom-llm-provider` header names it)
    ("/bedrock/v1/batches", b'{"input_file_id": "file-1"}', "application/json", True),
    ("/vertex_ai/v1/files/", FILE_NAMED_MODEL, FORM, True),
    # forwarded: a field the file holds, not the form (its lines name the model: data, not read), a part named
    # otherwise (`filename="model"`), Starlette's routes matched as written (`/v1/FILES`, `/v1/files;x`: 404 there),
    # an empty provider
    ("/v1/files", FILE_NAMED_MODEL, FORM, False),
    (f"/v1/FILES?model={ANSWERED}", b"{}", "application/json", False),
    ("/a/b/v1/files", FILE_NAMED_MODEL, FORM, False),  # (no route of LiteLLM's: 404 there)
    (f"/v1/files;x?model={ANSWERED}", b"{}", "application/json", False),
    ("/v1/containers?custom_llm_provider=", b'{"name": "c"}', "application/json", False),
    # LiteLLM's other POST routes run the body's model, not the query's (`base_process_llm_request(model=None)`, or
    # `route_request` of the body): rerank, OCR, videos, containers, fine-tuning jobs, vector stores
    (f"/v1/ocr?model={ANSWERED}", b'{"document": {}}', "application/json", False),
    (f"/v1/videos?model={ANSWERED}", b'{"prompt": "p"}', "application/json", False),
    (f"/v1/containers?model={ANSWERED}", b'{"name": "c"}', "application/json", False),
    (f"/v1/fine_tuning/jobs?model={ANSWERED}", b'{"training_file": "file-1"}', "application/json", False),
    (f"/v1/vector_stores?model={ANSWERED}", b'{"name": "v"}', "application/json", False),
]


@pytest.mark.parametrize(("target", "body", "content_type", "refused"), RAW_CASES)
def test_a_raw_files_call_naming_a_model(loop_thread, make_proxy, target, body, content_type, refused) -> None:  # type: ignore[no-untyped-def]
    """A raw POST (urllib: the target as written): 400 `invalid_request`, nothing forwarded; else forwarded as sent."""
    seen: list[tuple[str, bytes]] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        try:
            with urllib.request.urlopen(_post(f"{proxy.url}{target}", body, content_type), timeout=10) as reply:
                got: tuple[int, Any] = (reply.status, None)
        except urllib.error.HTTPError as error:
            got = (error.code, orjson.loads(error.read())["error"]["code"])
    assert got == ((400, "invalid_request") if refused else (200, None))
    assert [sent for _, sent in seen] == ([] if refused else [body])


def test_a_provider_s_files_path(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """The real openai SDK with its base URL on a provider's path (`/bedrock/v1`): its file upload and batch creation
    400 `invalid_request`, nothing forwarded; on `/v1`, forwarded."""
    seen: list[tuple[str, bytes]] = []
    got: list[Any] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        for prefix in ("/bedrock/v1", "/v1"):
            client = openai.OpenAI(base_url=f"{proxy.url}{prefix}", api_key="unused", max_retries=0, timeout=10,
                                   default_headers={"x-purpose": "ads"})  # fmt: skip
            for operation in ("files", "batches"):
                try:
                    if operation == "files":
                        client.files.create(file=("b.jsonl", LINES), purpose="batch")
                    else:
                        client.batches.create(input_file_id="file-1", endpoint="/v1/chat/completions",
                                              completion_window="24h")  # fmt: skip
                    got.append(200)
                except openai.APIStatusError as error:
                    got.append((error.status_code, error.code))
            client.close()
    assert got == [(400, "invalid_request"), (400, "invalid_request"), 200, 200]
    assert [target for target, _ in seen] == ["/v1/files", "/v1/batches"]
