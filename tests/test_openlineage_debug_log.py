"""openlineage-python logs its HTTP transport's URL and config at debug (`Constructing OpenLineage transport
that will send events to HTTP endpoint ...`): with the sink configured as `http://user:secret@host` and its
loggers at DEBUG, the password was in the log, though our own lines mask it. The transport is now built
without the URL's userinfo, its credentials passed as `auth` (a TokenProvider whose repr holds nothing), and
the backend still gets the Basic credentials requests took from the URL."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from openlineage.client.transport import get_default_factory

from proxy.record.openlineage import OpenLineageRecorder, _without_userinfo
from tests.harness import LoopThread, start_app
from tests.servers.vllm_like import SERVED

PASSWORD = "OLPASS-s9-debug"

CONFIG = """
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage:
  store: ${{STORE}}
  openlineage: {{url: "{url}"}}
"""


class Backend:
    """A lineage endpoint that keeps each event's Authorization header."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self._cond = threading.Condition()

    async def lineage(self, request: web.Request) -> web.Response:
        await request.read()
        with self._cond:
            self.authorizations.append(request.headers.get("Authorization"))
            self._cond.notify_all()
        return web.Response(status=201)

    def wait_for(self, count: int) -> list[str | None]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.authorizations) >= count, 10), self.authorizations
            return list(self.authorizations)


@pytest.fixture
def backend(loop_thread: LoopThread) -> Iterator[tuple[Backend, int]]:
    server = Backend()
    app = web.Application()
    app.router.add_post("/api/v1/lineage", server.lineage)
    runner, port = loop_thread.run(start_app(app))
    yield server, port
    loop_thread.run(runner.cleanup())


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("latin-1")).decode()


def test_openlineage_python_s_debug_lines_never_hold_the_url_s_password(
    vllm: Any, backend: tuple[Backend, int], make_proxy: Any, loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    _, upstream = vllm
    server, port = backend
    url = f"http://ol%40user:{PASSWORD}%3A1@127.0.0.1:{port}"  # percent-encoded, as a userinfo may be
    with caplog.at_level(logging.DEBUG, logger="openlineage"), caplog.at_level(logging.DEBUG, logger="urllib3"):
        proxy = make_proxy(CONFIG.format(url=url), UPSTREAM=upstream)
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200, reply.text
        sink = proxy.process.runtime.sinks.get("openlineage")
        assert isinstance(sink, OpenLineageRecorder)
        loop_thread.run(sink.flush())
        # the backend gets the credentials the URL gave, as requests sent them from the userinfo
        assert server.wait_for(1)[0] == _basic("ol@user", f"{PASSWORD}:1")
    built = [r for r in caplog.records if r.name.startswith("openlineage") and "Constructing" in r.getMessage()]
    assert built, "openlineage-python's debug line was not captured: the test would prove nothing"
    assert f"http://127.0.0.1:{port}/api/v1/lineage" in built[0].getMessage()
    leaked = [r.getMessage() for r in caplog.records if PASSWORD in r.getMessage()]
    assert not leaked, leaked  # was: the URL with its password, in the construction line and its config


@pytest.mark.parametrize(("url", "auth"), [
    ("http://u:p@marquez:5000/x?y=1", _basic("u", "p")),
    ("http://u:@marquez:5000/x?y=1", _basic("u", "")),
    ("http://u:p@ss@marquez:5000/x?y=1", _basic("u", "p@ss")),  # up to the authority's last @, as urllib reads it
    ("http://tok3n@marquez:5000/x?y=1", "Bearer k"),  # requests sends no credentials for a user alone: `auth` stays
])  # fmt: skip
def test_the_http_transport_is_built_with_the_userinfo_as_its_auth(url: str, auth: str) -> None:
    config = {"type": "http", "url": url, "auth": {"type": "api_key", "apiKey": "k"}}
    transport = get_default_factory().create(_without_userinfo(config))
    try:
        assert transport.url == "http://marquez:5000/x?y=1"  # type: ignore[attr-defined]
        assert transport._auth_headers(transport.config.auth) == {"Authorization": auth}  # type: ignore[attr-defined]
        assert "@marquez" not in repr(transport.config)  # type: ignore[attr-defined]
    finally:
        transport.close()
    assert config["url"] == url  # the settings themselves are left as written (reloads compare them)


def test_composite_and_async_http_transports_lose_the_userinfo_too() -> None:
    config = {"type": "composite", "transports": {
        "a": {"type": "async_http", "url": "https://user@marquez/"},
        "b": {"type": "http", "url": "https://user:pw@marquez/"},
        "c": {"type": "file", "log_file_path": "/tmp/x", "url": "https://user:pw@marquez/"},
    }}  # fmt: skip
    moved = _without_userinfo(config)["transports"]
    assert moved["a"]["url"] == "https://marquez/" and moved["b"]["url"] == "https://marquez/"
    assert moved["c"] == config["transports"]["c"]  # another kind of transport: as written
    transport = get_default_factory().create(_without_userinfo({"type": "async_http", "url": "https://usér@marquez/"}))
    try:
        assert transport.config.url == "https://marquez/"  # type: ignore[attr-defined]
        bearer = transport.config.auth.get_bearer()  # type: ignore[attr-defined]
        assert bearer == "Basic " + base64.b64encode("usér:".encode()).decode()  # httpx: user alone, UTF-8
    finally:
        transport.close()
