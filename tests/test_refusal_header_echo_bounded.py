"""A refusal of a request head's field echoed the field whole: a `Connection`, `Expect`, `Content-Encoding` or
`Transfer-Encoding` of 20,000 characters (under limits.max_header_bytes, 32 KiB, and as large as an operator raises
it) made an error body of 20 KB, and a metadata call for a model no route serves echoed its path twice (16 KB). The
refusal now names such a value by its start and its length (`echoed`), and the model as a refusal names one
(`quoted_name`)."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.harness import dead_port, proxy_error

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: chat, url: "http://127.0.0.1:PORT"}
routes:
  - {model: gpt, upstream: chat}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: null}
"""
LONG = "x" * 20_000
CHAT = b'{"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}'
CASES = {
    "connection": (
        "/v1/chat/completions",
        {"connection": f"content-encoding, {LONG}"},
        400,
        "Connection: 'close,content-enc",
    ),
    "expect": ("/v1/chat/completions", {"expect": LONG}, 417, "unsupported Expect: 'xxx"),
    "content-encoding": ("/v1/chat/completions", {"content-encoding": LONG}, 400, "Content-Encoding 'xxx"),
    "transfer-encoding": (
        "/v1/chat/completions",
        {"transfer-encoding": f"{LONG}, chunked"},
        400,
        "Transfer-Encoding 'xxx",
    ),
}


def raw_post(address: str, path: str, fields: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request as written (httpx frames the body by its own Transfer-Encoding)."""
    host, port = address.rsplit(":", 1)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    if "transfer-encoding" in fields:
        framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        framed, head = body, head + f"Content-Length: {len(body)}\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + framed)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    status = int(reply.split(b" ", 2)[1])
    return status, reply.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refused_fields_value_is_named_by_its_start_and_length(make_proxy, case: str) -> None:  # type: ignore[no-untyped-def]
    path, fields, status, starts = CASES[case]
    proxy = make_proxy(CONFIG.replace("PORT", str(dead_port())), wait="none")
    got, body = raw_post(str(proxy.bound.http), path, fields, CHAT)
    assert got == status, body[:300]
    assert len(body) < 1024, len(body)  # was the value's length and more
    assert starts.encode() in body and b" characters)" in body, body[:300]


def test_a_metadata_call_for_a_long_unrouted_model_is_refused_briefly(make_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = make_proxy(CONFIG.replace("PORT", str(dead_port())), wait="none")
    reply = httpx.get(f"{proxy.url}/v2/models/{'m' * 7000}", timeout=10)
    assert reply.status_code == 404, reply.text[:300]
    message = proxy_error(reply)["message"]
    assert message.startswith("no route for '/v2/models/mmm"), message[:300]
    assert len(reply.content) < 2048 and "(7000 characters)" in message, len(reply.content)
