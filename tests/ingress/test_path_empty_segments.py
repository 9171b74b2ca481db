"""A request path with an empty segment (`//v1/chat/completions`, `/v1//chat/completions`, `/v1/%2Fchat/completions`)
matched no adapter here, so it was passthrough: its body never read, forwarded under `policy.passthrough: forward`.
A gateway in front of the model merges such slashes (nginx's `merge_slashes`, on by default; behind an upstream URL
with a path prefix, `http://gw/eu` with `location /eu/ { proxy_pass http://model/; }`, the model gets
`/v1/chat/completions`): the chat was served, its forbidden data never read. Such a path is refused (400), as one with
dot segments is; nothing reaches the upstream."""

from __future__ import annotations

import re

import pytest
from aiohttp import web

from tests.harness import serving
from tests.ingress.test_path_escapes import CONFIG, post


class MergingGateway:
    """An upstream that routes as nginx does by default: percent-escapes decoded, runs of slashes merged; the chat
    completions it served, by the path as sent."""

    def __init__(self) -> None:
        self.chats: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.serve)
        return app

    async def serve(self, request: web.Request) -> web.Response:
        merged = re.sub("/+", "/", request.path)  # aiohttp's `path` is the decoded one
        if request.method == "GET" and merged == "/v1/models":  # what the proxy reads at start
            return web.json_response({"object": "list", "data": [{"id": "smollm", "object": "model"}]})
        if request.method == "POST" and merged == "/v1/chat/completions":
            await request.read()
            self.chats.append(request.raw_path)
            return web.json_response({"object": "chat.completion", "choices": []})
        return web.Response(status=404)


@pytest.mark.parametrize(
    "path", ["//v1/chat/completions", "/v1//chat/completions", "/v1/chat/completions//", "/v1/%2Fchat/completions"]
)
def test_a_path_with_an_empty_segment_is_refused(loop_thread, make_proxy, path: str) -> None:  # type: ignore[no-untyped-def]
    upstream = MergingGateway()
    with serving(loop_thread, upstream.app()) as url:
        port = make_proxy(CONFIG, UPSTREAM=url).bound.http.port
        reply = post(port, path)
        status, _, rest = reply.partition(b"\r\n")
        assert status == b"HTTP/1.1 400 Bad Request" and b"empty segments" in rest, reply[:400]
        assert upstream.chats == []
        # the same call on the path itself is read, and refused: its purpose may not have the address (`pii:email`)
        assert post(port, "/v1/chat/completions").startswith(b"HTTP/1.1 403 ") and upstream.chats == []
