"""The Anthropic SDK sends its key in `x-api-key` on every call: `messages.create` (`POST /v1/messages`),
`messages.count_tokens` (`POST /v1/messages/count_tokens`), `models.list` (`GET /v1/models`) and
`models.retrieve` (`GET /v1/models/{id}`). It was read as the caller's key on `/v1/messages` only: on the
others the call was anonymous and the caller's key went on to the upstream. Once callers have keys it is
read there too, and never passed on; elsewhere (the OpenAI API's paths) it is still no key of the proxy's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.conftest import KEYS, sha
from tests.harness import LoopThread, serving
from tests.test_caller_keys import SDK_FIELDS, ask, caller_of
from tests.test_refusals_recorded import AccessLines, access_lines

MODEL = "claude-like"
CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: llm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: llm}}]
callers:
  - {{name: app, api_key_sha256: {sha(KEYS["glasses"])}, purposes: [assistant], default_purpose: assistant}}
policy: {{anonymous: allow, default_purpose: assistant}}
logging: {{access: true}}
lineage: {{store: "${{STORE}}"}}
"""
COUNT = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hello"}]})


class Upstream:
    """An OpenAI-compatible server that answers anything and keeps the header fields of each call the proxy
    forwards (with a traceparent: not its own metadata probes)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    async def answer(self, request: web.Request) -> web.Response:
        await request.read()
        if "traceparent" in request.headers:
            with self._lock:
                self.seen.append((request.path, {k.lower(): v for k, v in request.headers.items()}))
        if request.path == "/v1/models":
            return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "x"}]})
        if request.path.startswith("/v1/models/"):
            return web.json_response({"id": MODEL, "type": "model"})
        return web.json_response({"input_tokens": 3})


@pytest.fixture
def upstream(loop_thread: LoopThread) -> Iterator[tuple[Upstream, str]]:
    server = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.answer)
    with serving(loop_thread, app) as url:
        yield server, url


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


ROUTES = [
    (b"GET", b"/v1/models", None),
    (b"GET", b"/v1/models/" + MODEL.encode(), None),
    (b"POST", b"/v1/messages/count_tokens", COUNT),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=["list", "retrieve", "count_tokens"])
def test_the_anthropic_sdk_s_x_api_key_is_the_caller_s_key_on_its_other_routes_too(
    upstream: tuple[Upstream, str], make_proxy: Any, access: AccessLines, method: bytes, path: bytes,
    body: bytes | None,
) -> None:  # fmt: skip
    server, url = upstream
    port = make_proxy(CONFIG, UPSTREAM=url).bound.http.port
    key = KEYS["glasses"].encode()
    status, fields, content = ask(port, method, path, [b"x-api-key: " + key, *SDK_FIELDS], body)
    assert status == 200, content
    assert caller_of(access, fields["x-trace-id"])[0] == "app"  # was: anonymous
    forwarded, headers = server.seen[-1]
    assert forwarded == path.decode() and "x-api-key" not in headers, headers  # was: the caller's key, passed on
    assert not [seen for seen in server.seen if KEYS["glasses"] in repr(seen)]
    # a key no caller owns: refused there, as on /v1/messages (it went through, anonymous)
    before = len(server.seen)
    status, fields, content = ask(port, method, path, [b"x-api-key: guessed", *SDK_FIELDS], body)
    assert status == 401 and orjson.loads(content)["error"]["code"] == "invalid_api_key", content
    assert caller_of(access, fields["x-trace-id"]) == ("(unknown key)", "invalid_api_key")
    assert len(server.seen) == before


def test_x_api_key_is_still_no_key_of_the_proxy_s_on_the_openai_api_s_paths(
    upstream: tuple[Upstream, str], make_proxy: Any, access: AccessLines
) -> None:
    server, url = upstream
    port = make_proxy(CONFIG, UPSTREAM=url).bound.http.port
    status, fields, _ = ask(port, b"POST", b"/v1/embeddings", [b"x-api-key: anything", b"content-type: "
                            b"application/json"], orjson.dumps({"model": MODEL, "input": "hi"}))  # fmt: skip
    assert status == 200 and caller_of(access, fields["x-trace-id"])[0] == "anonymous"
    assert server.seen[-1][1].get("x-api-key") == "anything"


def test_without_caller_keys_x_api_key_on_the_listing_is_passed_on(
    upstream: tuple[Upstream, str], make_proxy: Any
) -> None:
    server, url = upstream
    plain = CONFIG.replace(f"callers:\n  - {{name: app, api_key_sha256: {sha(KEYS['glasses'])}, purposes: "
                           "[assistant], default_purpose: assistant}\n", "")  # fmt: skip
    assert "callers" not in plain
    port = make_proxy(plain, UPSTREAM=url).bound.http.port
    assert ask(port, b"GET", b"/v1/models", [b"x-api-key: the-callers-own", *SDK_FIELDS], None)[0] == 200
    assert server.seen[-1][1].get("x-api-key") == "the-callers-own"  # the upstream's business, as Authorization
