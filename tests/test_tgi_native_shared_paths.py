"""TGI's native paths are other servers' too: `POST /` is a Ray Serve, BentoML or custom model server's (an image, a
form, any JSON), `POST /generate` SGLang's (`{"text", "input_ids", "sampling_params"}`) and vLLM's old server's
(`{"prompt"}`). A body that is not TGI's (a JSON object whose `inputs` is a string; TGI refuses any other, 422) is what
it was before TGI's API was read: data the proxy does not read, forwarded unread with `policy.passthrough: forward` (or
`auto` and no zones), refused 403 `endpoint_denied` while zones are configured. From 2026-12-04 (dd037f0) to the fix
every one was read as TGI's: one that is no JSON object (or a key written twice, or compressed as the proxy does not
read) refused 400 where it used to be forwarded, and one that is (SGLang's) read as TGI's, its token ids
(`input_ids`, what the model reads) unread and the call forwarded as if all of it had been read."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.tgi import Tgi

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: app, url: "${UPSTREAM}", protocol: openai}
routes:
  - {model: "*", upstream: app}
policy: {anonymous: allow, default_purpose: care, passthrough: "${PASSTHROUGH}"}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
"""
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
# bodies TGI refuses that other servers at its paths take (path, bytes, Content-Type, Content-Encoding)
NOT_TGI = {
    "image to /": ("/", PNG, "image/png", None),
    "form to /": ("/", b"text=alice%40example.com", "application/x-www-form-urlencoded", None),
    "JSON list to /": ("/", b'[{"text": "alice@example.com"}]', "application/json", None),
    "a key twice": ("/", b'{"inputs": "a", "inputs": "b"}', "application/json", None),
    "LZW to /": ("/", b"\x1f\x9d\x90alice@example.com", "application/json", "compress"),
    "SGLang's /generate": (
        "/generate",
        orjson.dumps({"input_ids": [101, 2003, 2004], "sampling_params": {"max_new_tokens": 8}}),
        "application/json",
        None,
    ),
    "vLLM's old /generate": ("/generate", orjson.dumps({"prompt": "hi", "max_tokens": 8}), "application/json", None),
    "inputs not a string": ("/generate_stream", orjson.dumps({"inputs": ["a", "b"]}), "application/json", None),
}


class App:
    """A model server of its own at `/` and `/generate` (Ray Serve, BentoML, SGLang): answers every POST 200 with the
    bytes it got, kept in `received`."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.url = ""  # where it serves, once it does

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.answer)
        app.router.add_get("/v1/models", self.models)
        return app

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((request.path, body))
        return web.json_response({"got": len(body)})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})


@pytest.fixture
def app(loop_thread: LoopThread) -> Iterator[App]:
    server = App()
    with serving(loop_thread, server.app()) as url:
        server.url = url
        yield server


def _post(proxy: ProxyHandle, case: tuple[str, bytes, str, str | None]) -> httpx.Response:
    path, body, content_type, coding = case
    headers = {"content-type": content_type}
    if coding is not None:
        headers["content-encoding"] = coding
    return httpx.post(f"{proxy.url}{path}", content=body, headers=headers, timeout=30)


@pytest.mark.parametrize("case", list(NOT_TGI.values()), ids=list(NOT_TGI))
def test_a_body_not_tgis_is_forwarded_unread_where_passthrough_forwards(
    app: App, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], case: tuple[str, bytes, str, str | None]
) -> None:
    proxy = make_proxy(CONFIG, UPSTREAM=app.url, PASSTHROUGH="forward", OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = _post(proxy, case)
    assert reply.status_code == 200, reply.text
    assert app.received == [case[:2]]  # the bytes as they came
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["gen_ai.operation.name"] == "passthrough" and span["lineage.decision"] == "allow", span


@pytest.mark.parametrize("case", list(NOT_TGI.values()), ids=list(NOT_TGI))
def test_a_body_not_tgis_is_refused_as_unread_data_while_zones_are_configured(
    app: App, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], case: tuple[str, bytes, str, str | None]
) -> None:
    """`passthrough: auto` with zones: refused as data the proxy does not read, never read as TGI's (SGLang's token
    ids, which say anything, are not let through as read)."""
    proxy = make_proxy(CONFIG, UPSTREAM=app.url, PASSTHROUGH="auto", OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = _post(proxy, case)
    assert reply.status_code == 403 and proxy_error(reply)["code"] == "endpoint_denied", reply.text
    assert app.received == []


def test_a_tgi_body_is_still_read_where_passthrough_forwards(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """`passthrough: forward` lets unread data through, not data read and forbidden: TGI's `inputs` are read."""
    tgi = Tgi()
    with serving(loop_thread, tgi.app()) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, PASSTHROUGH="forward", OTLP=f"http://127.0.0.1:{otlp.port}")
        for path in ("/", "/generate", "/generate_stream"):
            body = {"inputs": "write to alice@example.com"}
            denied = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-purpose": "ads"}, timeout=30)
            assert denied.status_code == 403 and proxy_error(denied)["code"] == "purpose_denied", denied.text
            allowed = httpx.post(f"{proxy.url}{path}", json={"inputs": "alice example.com"}, timeout=30)
            assert allowed.status_code == 200, allowed.text
            span = otlp.by_trace(allowed.headers["x-trace-id"]).attributes
            assert span["gen_ai.operation.name"] == "generate" and span["gen_ai.provider.name"] == "tgi", span
        assert [path for path, _ in tgi.received] == ["/", "/generate", "/generate_stream"]


def test_a_call_at_a_shared_path_is_left_to_its_body_while_unread_data_is_refused(
    app: App, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A client asking for `100 Continue` with no purpose: its head alone would be refused `purpose_required` as a TGI
    call, but its body, not TGI's, is refused first as data the proxy does not read, which the same request sent whole
    is told (`refused_by_head`'s promise): so it gets its 100, and that refusal once its body is in."""
    config = CONFIG.replace("default_purpose: care, ", "")
    proxy = make_proxy(config, UPSTREAM=app.url, PASSTHROUGH="auto", OTLP=f"http://127.0.0.1:{otlp.port}")
    whole = httpx.post(f"{proxy.url}/", content=PNG, headers={"content-type": "image/png"}, timeout=30)
    assert whole.status_code == 403 and proxy_error(whole)["code"] == "endpoint_denied", whole.text
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(PNG))  # fmt: skip
        got = b""
        while b"\r\n\r\n" not in got:
            piece = sock.recv(65536)
            assert piece, got
            got += piece
        assert got.startswith(b"HTTP/1.1 100 "), got[:200]
        sock.sendall(PNG)
        got = got.partition(b"\r\n\r\n")[2]
        while b"endpoint_denied" not in got and (piece := sock.recv(65536)):
            got += piece
    assert got.startswith(b"HTTP/1.1 403 ") and b'"endpoint_denied"' in got, got[:400]
    assert app.received == []
