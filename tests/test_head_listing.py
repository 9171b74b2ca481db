"""`HEAD /v1/models` (and on KServe's OpenAI prefix) is the listing's GET without its body (RFC 9110 section 9.3.2): with several upstreams and no
`"*"` route it was read as a call for no model (passthrough's) and answered 404 `model_not_found`, denied, where the
GET answers the merged listing 200. It is answered as the GET is, with the GET's fields (the Content-Length of the
body the GET sends) and no body. With one upstream it was forwarded to it as a HEAD, which a FastAPI server (vLLM's,
llama-cpp-python's) answers 405, routing the GET alone (before 2026-12-05): it is asked the GET, and its answer's head
is the HEAD's, as the merged listing's is."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest

from tests.harness import LoopThread, serving
from tests.servers.raw_origin import raw_origin
from tests.servers.vllm_like import VllmLike

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: first, url: "{first}"}}
  - {{name: second, url: "{second}"}}
routes:
  - {{model: chat, upstream: second}}
  - {{model: other, upstream: first}}
policy: {{anonymous: allow, default_purpose: assistant}}
"""

ONE = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: first, url: "{first}"}}
routes:
  - {{model: "*", upstream: first}}
policy: {{anonymous: allow, default_purpose: assistant}}
"""


def _entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1, "owned_by": "vllm", "root": f"org/{model}", "parent": None}


def _exchange(url: str, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection (`Connection: close`): the status, the fields and every byte after the head
    until the proxy closes (a HEAD's answer has none)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), fields, body


@pytest.mark.parametrize("target", ["/v1/models", "/v1/models?limit=2", "/openai/v1/models"])
def test_a_head_of_the_merged_listing_is_answered_as_its_get_without_the_body(
    make_proxy: Any, loop_thread: LoopThread, target: str
) -> None:
    first, second = VllmLike(models=[_entry("other")]), VllmLike(models=[_entry("chat")])
    with serving(loop_thread, first.app()) as first_url, serving(loop_thread, second.app()) as second_url:
        proxy = make_proxy(CONFIG.format(first=first_url, second=second_url))
        got = _exchange(proxy.url, "GET", target)
        headed = _exchange(proxy.url, "HEAD", target)
    assert got[0] == 200
    assert b'"chat"' in got[2] and b'"other"' in got[2]
    assert headed[0] == 200  # was 404 model_not_found
    assert headed[1].get("x-lineage-decision") != "deny"  # was: deny
    assert headed[1]["content-type"] == got[1]["content-type"]
    assert headed[1]["content-length"] == str(len(got[2]))  # the body the GET sends, not sent
    assert headed[2] == b""


def test_a_head_of_one_upstreams_listing_is_its_get_without_the_body(make_proxy: Any, loop_thread: LoopThread) -> None:
    first = VllmLike(models=[_entry("other")])
    with serving(loop_thread, first.app()) as first_url:
        proxy = make_proxy(ONE.format(first=first_url))
        got = _exchange(proxy.url, "GET", "/v1/models")
        headed = _exchange(proxy.url, "HEAD", "/v1/models")
    assert got[0] == headed[0] == 200
    assert headed[1]["content-length"] == str(len(got[2]))
    assert headed[2] == b""


@pytest.mark.realserver
def test_a_head_of_one_fastapi_upstreams_listing_is_answered_not_405(llama: str, make_proxy: Any) -> None:
    """llama-cpp-python (FastAPI) answers `HEAD /v1/models` 405; through the proxy it is the GET's head."""
    assert _exchange(llama, "HEAD", "/v1/models")[0] == 405
    proxy = make_proxy(ONE.format(first=llama))
    got = _exchange(proxy.url, "GET", "/v1/models")
    headed = _exchange(proxy.url, "HEAD", "/v1/models")
    assert got[0] == 200 and b'"data"' in got[2]
    assert headed[0] == 200  # was 405, forwarded as a HEAD
    assert headed[1]["content-type"] == got[1]["content-type"]
    assert headed[1]["content-length"] == str(len(got[2]))
    assert headed[1].get("x-lineage-decision") != "deny"
    assert headed[2] == b""


def test_a_head_of_one_upstreams_listing_does_not_wait_for_its_body(make_proxy: Any, loop_thread: LoopThread) -> None:
    """The GET's body is no HEAD's: an upstream whose listing body breaks off after its head (sent chunked) gives the
    GET its 200 head, and the HEAD that head, not 502 (before, the HEAD read the whole body first: helper
    revconfigurl)."""

    async def answer(head: bytes, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if b"x-cut: 1" in head.lower():  # the calls the test makes: a head, a piece, then the cut
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"dat\r\n")  # fmt: skip
            await writer.drain()
            return False
        body = orjson.dumps({"object": "list", "data": [_entry("m")]})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))  # fmt: skip
        await writer.drain()
        return True

    server, port = loop_thread.run(raw_origin(answer, discovery=False)())
    try:
        proxy = make_proxy(ONE.format(first=f"http://127.0.0.1:{port}"))
        host, proxy_port = proxy.url.removeprefix("http://").split(":")
        got = []
        for method in ("GET", "HEAD"):
            with socket.create_connection((host, int(proxy_port)), timeout=30) as sock:
                sock.sendall(
                    f"{method} /v1/models HTTP/1.1\r\nHost: x\r\nx-cut: 1\r\nConnection: close\r\n\r\n".encode()
                )
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
            got.append(received)
    finally:

        async def close() -> None:
            server.close()

        loop_thread.run(close())
    assert got[0].startswith(b"HTTP/1.1 200 "), got[0]  # the GET: its head, then the cut
    assert got[1].startswith(b"HTTP/1.1 200 "), got[1]  # was 502: the HEAD waited for the body
    assert got[1].endswith(b"\r\n\r\n"), got[1]
