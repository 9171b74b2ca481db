"""A request path's percent-escapes: the proxy matches the path a server serves, so a '%' that is not an RFC 3986
escape (two hex digits after it) is refused. cpp-httplib, llama.cpp's server, reads `%uXXXX` as the character
XXXX too: `/v1/%u0063hat/completions` is its chat path, and was no adapter's path here (passthrough, the body never
read; with `passthrough: forward`, forbidden data reached the model)."""

from __future__ import annotations

import re
import socket

import orjson
import pytest
from aiohttp import web

from tests.conftest import KEYS, sha
from tests.harness import serving

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: llama
    url: ${{UPSTREAM}}
    region: eu
routes:
  - model: "*"
    upstream: llama
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant, ads]
    default_purpose: assistant
zones:
  - name: pii
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
policy:
  anonymous: deny
  passthrough: forward
lineage:
  store: ${{STORE}}
"""
SECRET = orjson.dumps({"model": "smollm", "messages": [{"role": "user", "content": "mail ana@example.com"}]})


def httplib_path(raw: str) -> str:
    """A request path as cpp-httplib decodes it (`decode_path_component`): `%XX` and `%uXXXX` (as UTF-8)."""

    def one(match: re.Match[str]) -> str:
        escape = match.group(0)
        return chr(int(escape[2:], 16)) if escape[1] == "u" else chr(int(escape[1:], 16))

    return re.sub(r"%u[0-9A-Fa-f]{4}|%[0-9A-Fa-f]{2}", one, raw)


class HttplibRouted:
    """An upstream that routes as llama.cpp's server does (cpp-httplib: exact paths, decoded as above); the chat
    completions it served, by the path as sent."""

    def __init__(self) -> None:
        self.chats: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.serve)
        return app

    async def serve(self, request: web.Request) -> web.Response:
        raw = request.raw_path.partition("?")[0]
        if request.method == "GET" and raw == "/v1/models":  # what the proxy reads at start
            return web.json_response({"object": "list", "data": [{"id": "smollm", "object": "model"}]})
        if request.method == "POST" and httplib_path(raw) == "/v1/chat/completions":
            await request.read()
            self.chats.append(raw)
            return web.json_response({"object": "chat.completion", "choices": []})
        return web.Response(status=404)


def post(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS['glasses']}\r\nx-purpose: ads\r\n"
                     f"Connection: close\r\nContent-Length: {len(SECRET)}\r\n\r\n".encode() + SECRET)  # fmt: skip
        return b"".join(iter(lambda: sock.recv(65536), b""))


@pytest.mark.parametrize("path", ["/v1/%u0063hat/completions", "/v1%u002Fchat/completions", "/v1/chat/completions%zz"])
def test_a_path_with_a_percent_sign_no_escape_follows_is_refused(loop_thread, make_proxy, path: str) -> None:  # type: ignore[no-untyped-def]
    upstream = HttplibRouted()
    with serving(loop_thread, upstream.app()) as url:
        port = make_proxy(CONFIG, UPSTREAM=url).bound.http.port
        assert httplib_path(path.replace("%zz", "")) == "/v1/chat/completions"  # what llama.cpp's server serves
        reply = post(port, path)
        status, _, rest = reply.partition(b"\r\n")
        assert status == b"HTTP/1.1 400 Bad Request" and b"two hex digits" in rest, reply
        assert upstream.chats == []
        # the same call on the path itself is read, and refused: its purpose may not have the address (`pii:email`)
        assert post(port, "/v1/chat/completions").startswith(b"HTTP/1.1 403 ") and upstream.chats == []
