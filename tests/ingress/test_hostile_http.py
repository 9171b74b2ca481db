"""Hostile and unusual HTTP input: nothing forbidden reaches a model, and every refusal is the
documented error shape. Each test holds one finding of the 2026-11-23 attacker's run (issue 16)."""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest

from tests.conftest import KEYS, sha
from tests.servers.vllm_like import ROOT, SERVED

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
    region: eu
routes:
  - model: "*"
    upstream: vllm
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant, ads]
    default_purpose: assistant
zones:
  - name: health
    labels: [health]
    allow_purposes: [assistant]
policy:
  anonymous: deny
  passthrough: ${{PASSTHROUGH:-auto}}
lineage:
  store: ${{STORE}}
"""
AUTH = f"Bearer {KEYS['glasses']}"
BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello"}]})


@pytest.fixture
def proxied(vllm, make_proxy):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    return server, make_proxy(CONFIG, UPSTREAM=upstream)


def raw(port: int, head: str, body: bytes = BODY, *, wait_for: bytes | None = None) -> bytes:
    """Send `head` (request line and headers, CRLF-joined, without the blank line), then the body;
    return the whole reply (the proxy is asked to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        if wait_for is not None:  # e.g. an interim 100 Continue before the body is sent
            got = b""
            while wait_for not in got:
                piece = sock.recv(4096)
                assert piece, f"closed before {wait_for!r}: {got!r}"
                got += piece
            sock.sendall(body)
            reply = got
        else:
            sock.sendall(body)
            reply = b""
        while piece := sock.recv(65536):
            reply += piece
        return reply


def post(proxy, headers: list[tuple[str, str]], body: bytes = BODY, path: str = "/v1/chat/completions") -> bytes:  # type: ignore[no-untyped-def]
    lines = "\r\n".join(f"{name}: {value}" for name, value in [("Authorization", AUTH), *headers])
    return raw(proxy.bound.http.port, f"POST {path} HTTP/1.1\r\n{lines}", body)


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def error(reply: bytes) -> dict[str, object]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower()
    found: dict[str, object] = orjson.loads(body)["error"]
    return found


def test_a_second_labels_line_adds_its_labels(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    reply = post(proxy, [("x-purpose", "ads"), ("x-data-labels", "public"), ("x-data-labels", "health")])
    assert status(reply) == 403 and "zone health" in str(error(reply)["message"])
    assert server.data_requests() == []


def test_a_second_purpose_line_is_refused(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    reply = post(proxy, [("x-purpose", "assistant"), ("x-purpose", "ads")])
    assert status(reply) == 400
    assert error(reply)["code"] == "invalid_request" and "one purpose per call" in str(error(reply)["message"])
    assert server.data_requests() == []


@pytest.mark.parametrize(
    ("spelt", "decision"),
    [("HEALTH", "deny"), ("ｈｅａｌｔｈ", "deny"), ("hea\u200blth", "deny"), (" health ", "deny"), ("public", "allow")],
    ids=["upper", "fullwidth", "zero-width", "spaces", "other"],
)
def test_label_spellings_are_one_label(proxied, spelt: str, decision: str) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    reply = post(proxy, [("x-purpose", "ads"), ("x-data-labels", spelt)])  # sent as UTF-8 bytes
    assert header(reply, "x-lineage-decision") == decision
    assert len(server.data_requests()) == (1 if decision == "allow" else 0)


def test_purpose_spellings_are_one_purpose_and_look_alikes_are_refused(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    loud = post(proxy, [("x-purpose", "ADS"), ("x-data-labels", "health")])
    assert status(loud) == 403  # "ADS" is ads: the zone still refuses it
    cyrillic = post(proxy, [("x-purpose", "аssistant")])  # a Cyrillic "а"
    assert status(cyrillic) == 400 and error(cyrillic)["code"] == "invalid_request"
    assert server.data_requests() == []


def header(reply: bytes, name: str) -> str | None:
    head = reply.partition(b"\r\n\r\n")[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def test_a_body_to_a_path_no_adapter_reads_is_refused_while_zones_are_configured(proxied, vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    reply = post(proxy, [("x-purpose", "assistant")], path="/pooling")
    assert status(reply) == 403 and error(reply)["code"] == "endpoint_denied"
    assert server.data_requests() == []
    _, upstream = vllm
    open_proxy = make_proxy(CONFIG, UPSTREAM=upstream, PASSTHROUGH="forward")
    forwarded = post(open_proxy, [("x-purpose", "assistant")], body=b'{"prompt": "a b"}', path="/pooling")
    assert status(forwarded) == 200 and [r.path for r in server.data_requests()] == ["/pooling"]


def test_an_absolute_form_target_is_refused(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    reply = raw(proxy.bound.http.port, f"POST http://other-host/v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}")
    message = str(error(reply)["message"])
    assert status(reply) == 400 and "not a forward proxy" in message
    assert "point the client's base URL at it" in message  # what to do instead (curl -x, HTTP_PROXY)
    assert server.requests == [] or all(r.method == "GET" for r in server.requests)


def test_expect_100_continue_is_answered(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    head = f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Type: application/json\r\nExpect: 100-continue"
    reply = raw(proxy.bound.http.port, head, wait_for=b"100 Continue")
    assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
    assert len(server.data_requests()) == 1


def test_an_upstreams_own_lineage_headers_never_reach_the_client(make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    from tests.harness import start_app

    forged = {"x-lineage-checkpoint": "forged", "x-lineage-decision": "allow", "x-data-labels": "none",
              "x-trace-id": "0" * 32}  # fmt: skip

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response({"object": "list", "data": []}, headers=forged)
        return web.json_response({"id": "x", "choices": [], "model": ""}, headers=forged)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, port = loop_thread.run(start_app(app))
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}")
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=BODY, timeout=10,
                           headers={"authorization": AUTH, "x-data-labels": "public"})  # fmt: skip
        assert reply.status_code == 200
        assert "x-lineage-checkpoint" not in reply.headers  # the proxy has none to state, and says none
        assert reply.headers["x-data-labels"] == "public" and reply.headers["x-trace-id"] != "0" * 32
        listing = httpx.get(f"{proxy.url}/v1/models", headers={"authorization": AUTH}, timeout=10)
        assert "x-lineage-checkpoint" not in listing.headers and listing.headers["x-trace-id"] != "0" * 32
    finally:
        loop_thread.run(runner.cleanup())


def test_a_redirect_to_the_upstreams_own_address_is_made_a_path_on_the_proxy(make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """Starlette (vLLM) answers `/v1/chat/completions/` with a 307 to its own absolute address: a client
    that follows it would go around the proxy, to an address it should not know. It comes back through the
    proxy instead; a redirect elsewhere is passed on as it is."""
    from aiohttp import web

    from tests.harness import start_app

    port = 0

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET":  # the proxy's discovery
            return web.json_response({"object": "list", "data": []})
        if request.path.endswith("/slashes"):  # `//host/...` on the upstream's own address: a path, never another host
            return web.Response(status=307, headers={"Location": f"http://127.0.0.1:{port}//evil.example/phish"})
        if request.path.endswith("/tab"):  # browsers drop tabs: `/\t/host/...` is `//host/...` to them
            return web.Response(status=307, headers={"Location": f"http://127.0.0.1:{port}/\t/evil.example/phish"})
        target = (
            f"http://127.0.0.1:{port}/v1/chat/completions" if request.path.endswith("/") else "https://example.org/x"
        )
        return web.Response(status=307, headers={"Location": target})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, port = loop_thread.run(start_app(app))
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}", PASSTHROUGH="forward")
        for path, location in (("/v1/chat/completions/", "/v1/chat/completions"),
                               ("/v1/chat/completions", "https://example.org/x"),
                               ("/v1/chat/completions/slashes", "/evil.example/phish"),
                               ("/v1/chat/completions/tab", "/evil.example/phish")):  # fmt: skip
            reply = httpx.post(f"{proxy.url}{path}", content=BODY, headers={"authorization": AUTH}, timeout=10)
            assert reply.status_code == 307 and reply.headers["location"] == location
    finally:
        loop_thread.run(runner.cleanup())


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_body_on_a_request_that_carries_no_data_is_refused(proxied, method: str) -> None:  # type: ignore[no-untyped-def]
    """A GET (HEAD, OPTIONS) is forwarded with only the key checked: its body would reach the upstream
    with no decision and no record, so one that has a body is refused."""
    server, proxy = proxied
    secret = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "mail ana@example.com"}]})
    reply = raw(proxy.bound.http.port, f"{method} /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}", secret)
    assert status(reply) == 400
    if method != "HEAD":
        assert "may not carry a body" in str(error(reply)["message"])
    assert all(r.path != "/v1/chat/completions" for r in server.requests)  # nothing reached the upstream


def test_root_checkpoint_is_still_stated(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=BODY, timeout=10, headers={"authorization": AUTH})
    assert reply.headers["x-lineage-checkpoint"] == ROOT


def test_a_body_whose_meaning_depends_on_the_parser_is_refused(proxied) -> None:  # type: ignore[no-untyped-def]
    """Duplicate keys: one parser takes the first, another the last; the proxy must not decide on one
    body while the upstream reads another."""
    server, proxy = proxied
    body = b'{"model": "m", "messages": [{"role": "user", "content": "ok", "content": "mail ana@example.org"}]}'
    reply = post(proxy, [("x-purpose", "assistant"), ("Content-Type", "application/json")], body=body)
    assert status(reply) == 400 and "appears twice" in str(error(reply)["message"])
    assert server.data_requests() == []


SLOW = CONFIG.replace("lineage:", "limits: {idle_timeout_s: 0.3, header_timeout_s: 0.3, max_connections: 3}\nlineage:")


def test_a_client_dribbling_its_request_head_is_cut_off(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(SLOW.replace("idle_timeout_s: 0.3", "idle_timeout_s: 30"), UPSTREAM=upstream)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and nothing more
        assert sock.recv(100) == b""  # closed by the proxy after limits.header_timeout_s, not by this timeout
    assert status(post(proxy, [("x-purpose", "assistant")])) == 200


def test_an_idle_keep_alive_connection_is_closed(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(SLOW.replace("header_timeout_s: 0.3", "header_timeout_s: 30"), UPSTREAM=upstream)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=5) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\nContent-Type: application/json"
                     f"\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)  # fmt: skip
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200") and b"Connection: close" not in reply  # kept alive...
        assert sock.recv(100) == b""  # ...until idle for limits.idle_timeout_s; not this socket's timeout


def test_past_the_connection_cap_new_connections_get_503_and_calls_go_on(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(SLOW.replace("idle_timeout_s: 0.3", "idle_timeout_s: 30"), UPSTREAM=upstream)
    port = proxy.bound.http.port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        refused = raw(port, f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}")
        assert status(refused) == 503 and error(refused)["code"] == "overloaded"
    finally:
        for sock in idle:
            sock.close()
    # the cap counts open connections: once they are gone, calls are served again
    for _ in range(50):
        reply = post(proxy, [("x-purpose", "assistant")])
        if status(reply) == 200:
            break
    assert status(reply) == 200


def test_past_an_upstreams_queue_calls_get_503_at_once(vllm, make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """One connection to the upstream, one call may wait for it: a third call is refused with 503
    `overloaded` at once instead of queueing without bound; the first two still get their answers."""
    import threading

    _, upstream = vllm
    config = CONFIG.replace(
        "    region: eu\n", "    region: eu\n    max_connections: 1\n    max_queue: 1\n    timeout_s: 2\n"
    )
    proxy = make_proxy(config, UPSTREAM=upstream)
    results: list[int] = []

    def slow() -> None:
        body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "__slow__"}]})
        results.append(status(post(proxy, [("x-purpose", "assistant")], body=body)))

    callers = [threading.Thread(target=slow) for _ in range(2)]
    callers[0].start()
    pool = proxy.process.pool.pool(proxy.config.upstreams[0])
    for _ in range(500):  # the first call holds the one connection
        if pool.open == 1:
            break
        threading.Event().wait(0.01)
    callers[1].start()
    for _ in range(500):  # the second waits for it
        if len(pool.waiters) == 1:
            break
        threading.Event().wait(0.01)
    refused = post(proxy, [("x-purpose", "assistant")])
    assert status(refused) == 503 and error(refused)["code"] == "overloaded"
    assert "max_queue" in str(error(refused)["message"])
    for caller in callers:
        caller.join(10)
    assert sorted(results) == [504, 504]  # both waited their turn and timed out on the never-answering model


ZONED = CONFIG.replace(
    "zones:\n",
    "detectors: [email]\nzones:\n  - name: mail\n    labels: [pii:email]\n    allow_purposes: [safety-review]\n",
)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-small-window", "raw-deflate"])
def test_a_compressed_request_body_is_read_checked_and_forwarded_as_it_came(vllm, make_proxy, coding: str) -> None:  # type: ignore[no-untyped-def]
    """gzip and deflate bodies (tritonclient's request compression, say) are decompressed to be read and
    checked; the upstream gets the compressed bytes as they came. An email inside is found (a zone that
    keeps it from this purpose refuses the call), and a clean body goes through."""
    import gzip
    import zlib

    server, upstream = vllm
    proxy = make_proxy(ZONED, UPSTREAM=upstream)

    def pack(data: bytes) -> bytes:
        if coding == "gzip":
            return gzip.compress(data)
        packer = zlib.compressobj(wbits={"deflate": 15, "deflate-small-window": 9}.get(coding, -15))
        return packer.compress(data) + packer.flush()

    head = (f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Type: application/json\r\n"
            f"Content-Encoding: {'deflate' if 'deflate' in coding else coding}")  # fmt: skip
    secret = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "mail ana@example.com"}]})
    refused = raw(proxy.bound.http.port, head, pack(secret))
    assert status(refused) == 403 and error(refused)["code"] == "purpose_denied"
    assert server.data_requests() == []
    packed = pack(BODY)
    reply = raw(proxy.bound.http.port, head, packed)
    assert status(reply) == 200
    [forwarded] = server.data_requests()
    assert forwarded.headers.get("Content-Length") == str(len(packed))  # the compressed bytes, as they came
    assert orjson.loads(forwarded.body) == orjson.loads(BODY)  # (the test server's aiohttp undoes the coding)


def _fixed_code_deflate(data: bytes) -> bytes:
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_FIXED)
    packed = packer.compress(data) + packer.flush()
    assert packed[:1] == b"{"
    return packed


@pytest.mark.parametrize(
    ("encoding", "body", "answer", "says"),
    [
        ("br", b"\x0b\x02\x80hello\x03", 400, "gzip or deflate"),
        ("deflate, gzip", b"", 400, "gzip or deflate"),  # one layer only
        ("gzip", b"\x1f\x8b\x08\x00not gzip at all", 400, "not valid gzip"),
        ("gzip", b"", 400, "cut short"),
        # raw deflate whose first byte is `{` (a fixed-code block beginning with a 3-byte UTF-8 character): an upstream
        # that does not decode request bodies reads those bytes as JSON, not what the proxy inflated and decided on
        ("deflate", _fixed_code_deflate("你好".encode()), 400, "begin as JSON"),
    ],
)
def test_a_body_the_proxy_cannot_decompress_is_refused_not_forwarded(  # type: ignore[no-untyped-def]
    proxied, encoding: str, body: bytes, answer: int, says: str
) -> None:
    server, proxy = proxied
    head = f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Encoding: {encoding}"
    reply = raw(proxy.bound.http.port, head, body)
    assert status(reply) == answer and says in str(error(reply)["message"]), reply[:300]
    assert error(reply)["param"] == "content-encoding"
    assert server.data_requests() == []


def test_a_compressed_body_is_held_to_the_body_limit_once_decompressed(proxied) -> None:  # type: ignore[no-untyped-def]
    """A small gzip bomb: a few KB that decompress past limits.max_body_bytes are a 413, and only that much
    is ever decompressed."""
    import gzip

    server, proxy = proxied
    bomb = gzip.compress(b"{" + b" " * (proxy.config.limits.max_body_bytes + 1))
    assert len(bomb) < 100_000
    head = f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Encoding: gzip"
    reply = raw(proxy.bound.http.port, head, bomb)
    assert status(reply) == 413 and "once decompressed" in str(error(reply)["message"])
    assert server.data_requests() == []


def test_a_compressed_body_on_a_passthrough_path_is_forwarded_as_it_came(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Passthrough bodies are forwarded unread (and refused while zones ask, unless `passthrough:
    forward`), so their encoding is none of the proxy's business."""
    import gzip

    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, PASSTHROUGH="forward")
    packed = gzip.compress(b"any upload")
    head = f"POST /pooling HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Encoding: gzip"  # vLLM's, passed through
    reply = raw(proxy.bound.http.port, head, packed)
    assert b"content-encoding" not in reply.partition(b"\r\n\r\n")[2].lower()  # not the proxy's refusal
    forwarded = [r for r in server.requests if r.path == "/pooling"]
    assert len(forwarded) == 1 and forwarded[0].headers.get("Content-Encoding") == "gzip"
    # the compressed bytes arrived intact (the test server's aiohttp undoes the gzip as it reads)
    assert forwarded[0].headers.get("Content-Length") == str(len(packed)) and forwarded[0].body == b"any upload"


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_a_fault_inside_the_proxy_is_a_500_that_closes_the_connection_and_is_recorded(  # type: ignore[no-untyped-def]
    proxied, loop_thread, monkeypatch, caplog
) -> None:
    """An unexpected exception in the proxy's own code (here while reading the upstream's reply): the
    client gets the contract's 500 and the connection ends with it (its state is unknown); the call is
    recorded with the status the client got, not the upstream's 200, and logged; the next connection is
    served as ever."""
    import logging

    from proxy.exchange import Exchange

    server, proxy = proxied
    real_whole = Exchange.whole

    def broken(self: Exchange, body: bytes) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Exchange, "whole", broken)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Type: application/json"
    with (
        caplog.at_level(logging.INFO),
        socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock,
    ):
        sock.sendall(f"{head}\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)  # keep-alive asked
        reply = b""
        while piece := sock.recv(65536):  # read until the proxy closes: it must, despite keep-alive
            reply += piece
        loop_thread.run(proxy.process.runtime.sinks.flush())  # the access line is written after the reply
    assert status(reply) == 500 and error(reply)["code"] == "internal_error"
    assert b"connection: close" in reply.partition(b"\r\n\r\n")[0].lower()
    assert any("internal error handling POST /v1/chat/completions" in r.getMessage() for r in caplog.records)
    assert [getattr(r, "status", None) for r in caplog.records if r.name == "lineage_proxy.access"] == [500]
    assert len(server.data_requests()) == 1  # the upstream had answered: the fault was the proxy's
    monkeypatch.setattr(Exchange, "whole", real_whole)
    assert status(raw(proxy.bound.http.port, head)) == 200


def test_a_model_name_with_a_line_break_never_splits_the_reply(proxied, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An upstream that echoes the request's model (vLLM, llama.cpp, the demo model) hands the proxy a
    checkpoint name the caller wrote: with CR LF in it, written raw into `x-lineage-checkpoint`, it added
    headers of its own and a whole second reply (served to the next user of a shared connection), and
    lines of its own to the `edges` table."""
    import subprocess
    import sys

    server, proxy = proxied
    model = "m\r\nX-Injected: yes\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    reply = raw(proxy.bound.http.port, f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}", body)
    head, _, rest = reply.partition(b"\r\n\r\n")
    fields = head.split(b"\r\n")[1:]
    assert status(reply) == 200 and not any(field.lower().startswith(b"x-injected") for field in fields), reply
    length = next(field for field in fields if field.lower().startswith(b"content-length:"))
    assert int(length.split(b":")[1]) == len(rest) and orjson.loads(rest)["model"] == model  # one reply, whole
    checkpoint = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"x-lineage-checkpoint:"))
    assert (
        checkpoint.split(b": ", 1)[1] == b"m%0D%0AX-Injected:%20yes%0D%0AContent-Length:%200%0D%0A%0D%0AHTTP/1.1"
        b"%20200%20OK%0D%0AContent-Length:%208%0D%0A%0D%0ASMUGGLED"
    )
    loop_thread.run(proxy.process.runtime.sinks.flush())
    listed = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(tmp_path / "lineage.db")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith("m%0D%0AX-Injected:%20yes"), listed.stdout


def test_a_fragment_in_the_request_target_is_refused(proxied) -> None:  # type: ignore[no-untyped-def]
    """Servers drop a `#fragment`; matched with it, `/v1/chat/completions#x` was no adapter's path and went
    by passthrough, its body never read (with `passthrough: forward`, forbidden data reached the model)."""
    server, proxy = proxied
    secret = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "mail ana@example.com"}]})
    reply = raw(proxy.bound.http.port, f"POST /v1/chat/completions#x HTTP/1.1\r\nAuthorization: {AUTH}", secret)
    assert status(reply) == 400 and "fragment" in str(error(reply)["message"])
    assert server.data_requests() == []


@pytest.mark.parametrize(("line", "why"), [("POST /v1/chat/completions HTTP/2.0", "speaks HTTP/1.1"),
                                           ("CONNECT /v1/chat/completions HTTP/1.1", "not a forward proxy: point the client")])  # fmt: skip
def test_a_request_line_the_proxy_does_not_speak_is_refused(proxied, line: str, why: str) -> None:  # type: ignore[no-untyped-def]
    """llhttp reads an `HTTP/2.0` request line, and a CONNECT to a path, as it would HTTP/1.1: both were
    served (CONNECT as a passthrough)."""
    server, proxy = proxied
    reply = raw(proxy.bound.http.port, f"{line}\r\nAuthorization: {AUTH}")
    assert status(reply) == 400 and why in str(error(reply)["message"]), reply
    assert server.data_requests() == []
