"""LiteLLM proxy's file upload and batch creation (`POST /v1/files`, `/v1/batches`), which the proxy does not read, take
the model whose deployment stores the file or runs the batch's calls from the body, else the query's `model`, else the
`x-litellm-model` header (`create_batch`: `data.get("model") or request.query_params.get("model") or
request.headers.get("x-litellm-model")`, the same for files). A call naming one by header or query is refused 400
`invalid_request`: no route's rules judge the model it names there; so is one naming the provider by its
`custom-llm-provider` header (the batch run at that provider's API, as the body's `custom_llm_provider` would).

Until 2026-12-07, under `policy.passthrough: forward`, such a call was forwarded by the `"*"` route, recorded allowed,
an `ads` batch run on claude-fallback, whose route allows `assistant` alone (helper models16)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from tests.harness import serving
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_model_in_path import FORWARD, litellm_app

BATCH: Any = {"id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "file-1",
              "completion_window": "24h", "status": "validating", "created_at": 1}  # fmt: skip
FILE: Any = {"id": "file-1", "object": "file", "bytes": 2, "created_at": 1, "filename": "b.jsonl", "purpose": "batch",
             "status": "uploaded"}  # fmt: skip


def files_app(seen: list[tuple[str, str | None, str | None]]) -> web.Application:
    """LiteLLM proxy's files and batches creation: each call noted as (its path, the query's model, the header's)."""

    async def created(request: web.Request) -> web.Response:
        await request.read()
        seen.append((request.path, request.query.get("model"), request.headers.get("x-litellm-model")))
        return web.json_response(FILE if request.path.endswith("/files") else BATCH)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": ANSWERED, "object": "model", "owned_by": "o"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/files", created)
    app.router.add_post("/v1/batches", created)
    return app


# (operation, how the model is named) -> refused
CASES = [
    ("files", {"extra_headers": {"x-litellm-model": ANSWERED}}, True),
    ("batches", {"extra_headers": {"x-litellm-model": ANSWERED}}, True),
    ("files", {"extra_query": {"model": ANSWERED}}, True),
    ("batches", {"extra_query": {"model": ANSWERED}}, True),
    # the provider running the batch where no model is named (LiteLLM's `custom-llm-provider` header)
    ("batches", {"extra_headers": {"custom-llm-provider": "bedrock"}}, True),
    # forwarded on both (`forward`): naming none, an empty query model (LiteLLM's `or`: none)
    ("files", {}, False),
    ("batches", {}, False),
    ("batches", {"extra_query": {"model": ""}}, False),
]


@pytest.mark.parametrize(("operation", "named", "refused"), CASES)
def test_a_files_or_batches_call_naming_a_model_is_refused(loop_thread, make_proxy, operation, named, refused) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK, under `policy.passthrough: forward`, for `ads`: 400 `invalid_request`, nothing
    forwarded; naming none, forwarded as before."""
    seen: list[tuple[str, str | None, str | None]] = []
    with serving(loop_thread, files_app(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": "ads"})  # fmt: skip
        try:
            if operation == "files":
                client.files.create(file=("b.jsonl", b"{}"), purpose="batch", **named)
            else:
                client.batches.create(input_file_id="file-1", endpoint="/v1/chat/completions",
                                      completion_window="24h", **named)  # fmt: skip
            got: tuple[Any, ...] = (200, None)
        except openai.APIStatusError as error:
            got = (error.status_code, error.code)
        finally:
            client.close()
    assert got == ((400, "invalid_request") if refused else (200, None))
    assert len(seen) == (0 if refused else 1)


def any_post_app(seen: list[str]) -> web.Application:
    """LiteLLM proxy's routes as Starlette matches them, the path percent-decoded: any POST answered, its target noted."""

    async def created(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request.path_qs)
        return web.json_response(FILE)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": ANSWERED, "object": "model", "owned_by": "o"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/{tail:.*}", created)
    return app


# (target, refused): a raw POST under `policy.passthrough: forward`, for `ads`
RAW_CASES = [
    # the path as Starlette routes it, percent-decoded: `/v1/fil%65s` is LiteLLM's `/v1/files` (until review
    # revmodels16 matched undecoded, forwarded, the query's model run)
    (f"/v1/fil%65s?model={ANSWERED}", True),
    (f"/v1/batch%65s?model={ANSWERED}", True),
    # LiteLLM proxy's skill upload (`create_skill`: the body's model, else the query's, else the header's; until review
    # revmodels16 forwarded)
    (f"/v1/skills?model={ANSWERED}", True),
    # held before: a provider's path, the key percent-encoded, the last of two, the first of two
    (f"/bedrock/v1/batches?model={ANSWERED}", True),
    (f"/v1/files?mod%65l={ANSWERED}", True),
    (f"/v1/files?model=&model={ANSWERED}", True),
    (f"/v1/files?model={ANSWERED}&model=", True),
    # forwarded: FastAPI's query keys are matched as written (`Model` is none), a path not LiteLLM's files
    (f"/v1/files?Model={ANSWERED}", False),
    (f"/v1/filesystem?model={ANSWERED}", False),
]


@pytest.mark.parametrize(("target", "refused"), RAW_CASES)
def test_a_raw_files_call_naming_a_model_in_its_query(loop_thread, make_proxy, target: str, refused: bool) -> None:  # type: ignore[no-untyped-def]
    """A raw POST (urllib: the target as written): 400 `invalid_request`, nothing forwarded; else forwarded as sent."""
    seen: list[str] = []
    with serving(loop_thread, any_post_app(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        request = urllib.request.Request(f"{proxy.url}{target}", data=b"{}", method="POST",
                                         headers={"content-type": "application/json", "x-purpose": "ads"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                got: tuple[int, Any] = (reply.status, None)
        except urllib.error.HTTPError as error:
            got = (error.code, orjson.loads(error.read())["error"]["code"])
    assert got == ((400, "invalid_request") if refused else (200, None))
    assert len(seen) == (0 if refused else 1)


def test_the_header_on_a_call_the_proxy_reads_goes_on(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM proxy reads `x-litellm-model` on its files, batches and skills handlers alone (`_extract_model_param`,
    `create_skill`); its chat runs the body's model (`chat_completion`: the path's, the query's, else the body's). So
    on a chat the proxy reads, the header is none of the call's: through the real openai SDK, an `ads` chat to
    claude-asked naming claude-fallback in the header is judged as claude-asked's, forwarded, the header with it. A
    pin (forwarded on main and on models16's branch: `passthrough.Adapter.read` alone looks)."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": "ads"})  # fmt: skip
        try:
            client.chat.completions.create(model=ASKED, messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"x-litellm-model": ANSWERED})  # fmt: skip
        finally:
            client.close()
    assert [model for _, model, _ in seen] == [ASKED]
