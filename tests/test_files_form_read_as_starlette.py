"""A file upload's or batch's form (`POST /v1/files`, `/v1/batches`) is read as LiteLLM proxy's Starlette reads it
(python-multipart: `passthrough._form_fields`), where a reading could differ each way, so no form naming a model or
provider that Starlette reads goes on unread; and LiteLLM's other ways of naming one there are refused: the query's
`provider` (`create_file` and `create_batch` take a `provider` argument: the path's on `/{provider}/v1/files`, the
query's on `/v1/files`, FastAPI's way), `target_model_names[]` (the openai SDK writes a list so; LiteLLM collects
`target_model_names[...]` from the form), a multipart batch's `input_file_id`.

Until review revmodels17 each went on under `policy.passthrough: forward`: the form was cut at each `--boundary` found
anywhere and its parameters taken by a first match, so a model part after a file holding `--boundary--`, a
`Content-Disposition` with a bare LF or a second `name`, a type naming its boundary twice or as `Multipart/Form-Data`
(python-multipart lowercases it) was read as naming none, each read by Starlette (checked on python-multipart 0.0.34,
Starlette 0.46: the form's `multi_items()` held `model`)."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
import zlib
from typing import Any

import openai
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proxy.errors import RequestTooLarge
from proxy.protocols.passthrough import files_field
from tests.harness import serving
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_files_fields_refused import EMBEDDED, LINES, _post, litellm_posts
from tests.test_model_in_path import FORWARD

M = ANSWERED.encode()
HEAD = (b'--b0\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--b0\r\nContent-Disposition: form-data; name="file"; filename="b.jsonl"\r\n\r\n' + LINES + b"\r\n")  # fmt: skip
END = b"--b0--\r\n"


def _part(head: bytes, value: bytes = M) -> bytes:
    return b"--b0\r\n" + head + b"\r\n\r\n" + value + b"\r\n"


TYPE = "multipart/form-data; boundary=b0"
UTF16 = "target_model_names".encode("utf-16-le")

# (body, content type, refused): a raw POST to /v1/files under `policy.passthrough: forward`, for `ads`
CASES = [
    # a file holding `--b0--` (not a delimiter: python-multipart's follows a CRLF), a model part after it
    (HEAD.replace(LINES, LINES + b"--b0--") + _part(b'Content-Disposition: form-data; name="model"') + END, TYPE, True),
    # a `--b0--` in a header's value, before the part's Content-Disposition
    (HEAD + _part(b'X-Pad: --b0--\r\nContent-Disposition: form-data; name="model"') + END, TYPE, True),
    # a Content-Disposition holding a bare LF, U+0085 (python-multipart's lines end at CRLF alone)
    (HEAD + _part(b'Content-Disposition: form-data\n; name="model"') + END, TYPE, True),
    (HEAD + _part(b'Content-Disposition: form-data\x85; name="model"') + END, TYPE, True),
    # a second `name` (python-multipart keeps the last), a `name*` before `name` (skipped by python-multipart), a `;`
    # inside a quoted value before it
    (HEAD + _part(b'Content-Disposition: form-data; name="x"; name="model"') + END, TYPE, True),
    (HEAD + _part(b"Content-Disposition: form-data; name*=utf-8''x; name=\"model\"") + END, TYPE, True),
    (HEAD + _part(b'Content-Disposition: form-data; note="a;name=x"; name="model"') + END, TYPE, True),
    # the type naming its boundary twice (the last is python-multipart's), or after a quoted `;`
    ((HEAD + _part(b'Content-Disposition: form-data; name="model"') + END).replace(b"b0", b"b1"),
     "multipart/form-data; boundary=b0; boundary=b1", True),
    ((HEAD + _part(b'Content-Disposition: form-data; name="model"') + END).replace(b"b0", b"b1"),
     'multipart/form-data; note="; boundary=b0"; boundary=b1', True),
    # the media type in capitals: Starlette's `request.form()` reads the form, LiteLLM's `target_model_names` with it
    (HEAD + _part(b'Content-Disposition: form-data; name="target_model_names"') + END,
     "Multipart/Form-Data; boundary=b0", True),
    # an indexed `target_model_names[0]`; a name in the form's charset (Starlette decodes names in it)
    (HEAD + _part(b'Content-Disposition: form-data; name="target_model_names[0]"') + END, TYPE, True),
    (HEAD + _part(b'Content-Disposition: form-data; name="' + UTF16 + b'"', "m".encode("utf-16-le")) + END,
     TYPE + "; charset=utf-16-le", True),
    # forwarded: an empty model part, one ended by a padded delimiter; `model` in a file's name or content; a model
    # part after the form's end
    (HEAD + _part(b'Content-Disposition: form-data; name="model"', b"") + END, TYPE, False),
    (HEAD + b'--b0\r\nContent-Disposition: form-data; name="model"\r\n\r\n\r\n--b0 \r\n' + END, TYPE, False),
    (HEAD.replace(LINES, b'name="model"\r\n\r\n' + M) + END, TYPE, False),
    (HEAD + _part(b'Content-Disposition: form-data; name="x"; filename="model"') + END, TYPE, False),
]  # fmt: skip


@pytest.mark.parametrize(("body", "content_type", "refused"), CASES)
def test_a_form_read_as_starlette_reads_it(loop_thread, make_proxy, body, content_type, refused) -> None:  # type: ignore[no-untyped-def]
    """400 `invalid_request`, param the field, nothing forwarded; else forwarded as sent."""
    seen: list[tuple[str, bytes]] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        try:
            with urllib.request.urlopen(_post(f"{proxy.url}/v1/files", body, content_type), timeout=10) as reply:
                got: tuple[int, Any] = (reply.status, None)
        except urllib.error.HTTPError as error:
            got = (error.code, orjson.loads(error.read())["error"]["code"])
    assert got == ((400, "invalid_request") if refused else (200, None))
    assert [sent for _, sent in seen] == ([] if refused else [body])


BATCH = {"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"}


@pytest.mark.parametrize(
    ("operation", "named", "param"),
    [
        # a list of models: the SDK's `target_model_names[]` fields
        ("files", {"extra_body": {"target_model_names": [ASKED, ANSWERED]}}, "target_model_names[]"),
        # the query's provider, `create_file`'s and `create_batch`'s `provider` argument
        ("files", {"extra_query": {"provider": "bedrock"}}, None),
        ("batches", {"extra_query": {"provider": "bedrock"}}, None),
    ],
)
def test_the_sdk_naming_models_or_a_provider(loop_thread, make_proxy, operation, named, param) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK, for `ads`: 400 `invalid_request`, nothing forwarded."""
    seen: list[tuple[str, bytes]] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": "ads"})  # fmt: skip
        try:
            if operation == "files":
                client.files.create(file=("b.jsonl", LINES), purpose="batch", **named)
            else:
                client.batches.create(**BATCH, **named)
            got: tuple[Any, ...] = (200,)
        except openai.APIStatusError as error:
            got = (error.status_code, error.code, error.param)
        finally:
            client.close()
    assert (got, seen) == ((400, "invalid_request", param), [])


def test_a_multipart_batch_s_input_file_id(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A batch sent as a multipart form (LiteLLM's `_read_request_body` reads a form's fields as the body's keys) whose
    `input_file_id` names a model: 400, param `input_file_id`, nothing forwarded; one naming none forwarded."""
    seen: list[tuple[str, bytes]] = []
    got: list[Any] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        for file_id in (EMBEDDED.encode(), b"file-1"):
            body = _part(b'Content-Disposition: form-data; name="input_file_id"', file_id) + END
            try:
                with urllib.request.urlopen(_post(f"{proxy.url}/v1/batches", body, TYPE), timeout=10) as reply:
                    got.append(reply.status)
            except urllib.error.HTTPError as error:
                got.append((error.code, orjson.loads(error.read())["error"]["param"]))
    assert got == [(400, "input_file_id"), 200]
    assert len(seen) == 1


@pytest.mark.parametrize(
    "body",
    [
        HEAD + _part(b'Content-Disposition: form-data; name="x"', b"v") * 2_001 + END,
        HEAD + _part(b"Content-Disposition: form-data" + b'; name="x"' * 7_000) + END,
    ],
)
def test_a_form_too_large_to_read(loop_thread, make_proxy, body) -> None:  # type: ignore[no-untyped-def]
    """A form of over 2,000 parts (Starlette refuses over 1,000 files or 1,000 fields), or over 64 KiB of
    `Content-Disposition` lines: 413 `request_too_large`, nothing forwarded (reading a 6 MB one cost seconds)."""
    seen: list[tuple[str, bytes]] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(_post(f"{proxy.url}/v1/files", body, TYPE), timeout=10)
    assert (error.value.code, orjson.loads(error.value.read())["error"]["code"], seen) == (413, "request_too_large", [])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"\r\n", b"\n", b"--b0", b"\r\n--b0", b"--", b";", b'"', b"\\", b" ", b"\t", b"\x85",
                              b"Content-Disposition: form-data; ", b'name="model"', b"name*=utf-8''model", b"m",
                              b"name*0=mo; name*1=del", b"\r\n\r\n", b'input_file_id', EMBEDDED.encode()]),
             max_size=40).map(b"".join),
    st.sampled_from([TYPE, 'multipart/form-data; boundary="b0"; charset=utf-7', "multipart/form-data; boundary*=x''b0",
                     "multipart/form-data; charset=idna; boundary=b0", "application/x-www-form-urlencoded", None]),
)  # fmt: skip
@example(b"--b0\r\n\r\n", TYPE)  # (a part with no head: compiled, a negative slice was a SystemError)
def test_any_form_is_read_or_refused(body: bytes, content_type: str | None) -> None:
    """Any bytes and type: a field's name or "" (or a RequestTooLarge), never another exception; compiled too."""
    try:
        assert type(files_field(body, content_type)) is str
    except RequestTooLarge:
        pass


@pytest.mark.parametrize(
    ("coding", "names", "refused"),
    [("gzip", True, True), ("deflate", True, True), ("gzip", False, False)],
)
def test_a_compressed_form(loop_thread, make_proxy, coding, names, refused) -> None:  # type: ignore[no-untyped-def]
    """A form in gzip or deflate (one layer) is read decompressed: one naming a model 400, nothing forwarded (LiteLLM
    proxy may undo gzip before its routes: BerriAI/litellm#41567); one naming none forwarded, compressed as sent (the
    upstream, aiohttp, undoes it)."""
    form = HEAD + (_part(b'Content-Disposition: form-data; name="model"') if names else b"") + END
    body = gzip.compress(form) if coding == "gzip" else zlib.compress(form)
    seen: list[tuple[str, bytes]] = []
    with serving(loop_thread, litellm_posts(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        sent = urllib.request.Request(f"{proxy.url}/v1/files", data=body, method="POST",
                                      headers={"content-type": TYPE, "x-purpose": "ads", "content-encoding": coding})  # fmt: skip
        try:
            with urllib.request.urlopen(sent, timeout=10) as reply:
                got: tuple[int, Any] = (reply.status, None)
        except urllib.error.HTTPError as error:
            got = (error.code, orjson.loads(error.read())["error"]["code"])
    assert got == ((400, "invalid_request") if refused else (200, None))
    assert [sent for _, sent in seen] == ([] if refused else [form])
