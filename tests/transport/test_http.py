"""The HTTP sidecar end to end: the real openai SDK, through the proxy, to a vLLM-like upstream."""

from __future__ import annotations

import asyncio

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from tests.harness import dead_port, start_app
from tests.servers.vllm_like import ROOT, SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    protocol: openai
    timeout_s: ${TIMEOUT:-30}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
limits:
  max_body_bytes: ${MAX_BODY:-1048576}
lineage:
  store: ${STORE}
"""

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


def client(base: str, timeout: float = 10) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=timeout)


@pytest.fixture
def setup(vllm, make_proxy):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    return server, upstream, proxy


def test_chat_is_byte_for_byte_the_direct_answer(setup) -> None:  # type: ignore[no-untyped-def]
    _, upstream, proxy = setup
    direct = client(upstream).chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES, max_tokens=9)
    via = client(proxy.url).chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES, max_tokens=9)
    assert via.http_response.content == direct.http_response.content
    assert via.parse().choices[0].message.content == direct.parse().choices[0].message.content
    headers = via.http_response.headers
    assert headers["x-lineage-checkpoint"] == ROOT
    assert headers["x-lineage-decision"] == "allow"
    assert len(headers["x-trace-id"]) == 32
    assert headers["content-type"].startswith("application/json")


def test_completions_embeddings_and_models_match_direct(setup) -> None:  # type: ignore[no-untyped-def]
    _, upstream, proxy = setup
    for base_a, base_b in [(upstream, proxy.url)]:
        a, b = client(base_a), client(base_b)
        ca = a.completions.with_raw_response.create(model=SERVED, prompt="once upon", max_tokens=5)
        cb = b.completions.with_raw_response.create(model=SERVED, prompt="once upon", max_tokens=5)
        assert cb.http_response.content == ca.http_response.content
        ea = a.embeddings.with_raw_response.create(model=SERVED, input=["one", "two"])
        eb = b.embeddings.with_raw_response.create(model=SERVED, input=["one", "two"])
        assert eb.http_response.content == ea.http_response.content
        assert [d.embedding for d in eb.parse().data] == [[0.25, -0.5, 0.125], [0.5, -0.5, 0.125]]
        ma = a.models.with_raw_response.list()
        mb = b.models.with_raw_response.list()
        assert mb.http_response.content == ma.http_response.content
        assert [m.id for m in mb.parse().data] == [SERVED, "sql-lora"]


def test_streamed_chat_matches_direct(setup) -> None:  # type: ignore[no-untyped-def]
    _, upstream, proxy = setup
    kwargs = {"model": SERVED, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    direct = client(upstream).chat.completions.with_raw_response.create(**kwargs)
    via = client(proxy.url).chat.completions.with_raw_response.create(**kwargs)
    assert via.http_response.read() == direct.http_response.read()
    assert via.http_response.headers["content-type"].startswith("text/event-stream")
    assert via.http_response.headers["x-lineage-checkpoint"] == ROOT
    chunks = list(client(proxy.url).chat.completions.create(**kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5 echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_streamed_chunks_arrive_one_by_one(setup, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """The upstream sends each event only after the client has received the previous one: a proxy
    that buffered the reply would deadlock here and the client's read timeout would fail the test."""
    server, _, proxy = setup
    stream = client(proxy.url, timeout=5).chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": "__gate__"}], stream=True
    )
    events = iter(stream)
    first = next(events)  # the role event is not gated
    assert first.choices[0].delta.role == "assistant"
    for index in range(3):
        server.release(loop_thread.loop)
        chunk = next(events)
        assert chunk.choices[0].delta.content == (f"w{index}" if index == 0 else f" w{index}")
    stream.close()


def test_client_disconnect_reaches_the_upstream(setup, loop_thread) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = setup
    stream = client(proxy.url, timeout=5).chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": "__gate__"}], stream=True
    )
    next(iter(stream))
    stream.close()  # the client goes away mid-reply
    server.release(loop_thread.loop)  # the upstream's next write finds its client gone
    loop_thread.run(asyncio.wait_for(server.cancelled_event.wait(), 5))
    assert server.cancelled == 1


def test_dead_upstream_is_502_and_the_proxy_keeps_serving(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=f"http://127.0.0.1:{dead_port()}")
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy.url).chat.completions.create(model=SERVED, messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unavailable"
    assert "upstream 'vllm' is unavailable" in caught.value.message
    assert caught.value.response.headers["x-trace-id"]
    ready = httpx.get(f"{proxy.url}/readyz")
    assert ready.status_code == 503 and ready.json()["upstreams_down"] == ["vllm"]
    assert httpx.get(f"{proxy.url}/healthz").status_code == 200


def test_an_upstream_that_is_not_http_is_a_clear_502(vllm, make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")  # a port mix-up: something else listens there
        await writer.drain()
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(not_http, "127.0.0.1", 0)

    server = loop_thread.run(start())
    try:
        port = server.sockets[0].getsockname()[1]
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=f"http://127.0.0.1:{port}")
        with pytest.raises(openai.APIStatusError) as caught:
            client(proxy.url).chat.completions.create(model=SERVED, messages=MESSAGES)
        assert (caught.value.status_code, caught.value.code) == (502, "upstream_unavailable")
        assert "not an HTTP/1.x status line: b'SSH-2.0-OpenSSH_9.2'" in caught.value.message
        assert httpx.get(f"{proxy.url}/healthz").status_code == 200
    finally:
        server.close()


def test_slow_upstream_is_504_then_the_next_call_works(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, TIMEOUT="0.3")
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy.url).chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "__slow__"}])
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    assert "did not answer within 0.3s" in caught.value.message
    ok = client(proxy.url).chat.completions.create(model=SERVED, messages=MESSAGES)
    assert ok.choices[0].message.content.endswith("hello there")


def test_cut_off_stream_fails_the_client_not_the_proxy(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, proxy = setup
    stream = client(proxy.url).chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": "__cut__"}], stream=True
    )
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for _ in stream:
            pass
    assert client(proxy.url).chat.completions.create(model=SERVED, messages=MESSAGES).choices
    metrics = httpx.get(f"{proxy.url}/metrics").text
    assert 'lineage_proxy_errors_total{type="upstream_reset"} 1' in metrics


def test_too_large_body_is_413_and_never_forwarded(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, MAX_BODY="2000")
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy.url).chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x" * 5000}])
    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"

    # chunked upload (no Content-Length) is cut off at the limit too
    def body():  # type: ignore[no-untyped-def]
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        yield b"y" * 4000
        yield b'"}]}'

    reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=body())
    assert reply.status_code == 413
    assert server.data_requests() == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"messages": []}', "'model' is required"),
        (b'{"model": "m", "messages": "hi"}', "'messages' is required and must be a list"),
    ],
)
def test_malformed_bodies_are_400_with_a_reason(setup, body: bytes, needle: str) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = setup
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_request" and needle in error["message"]
    assert error["type"] == "invalid_request_error"
    assert server.data_requests() == []


def test_headers_hop_by_hop_and_trace_context_forwarded(setup) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = setup
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    reply = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=orjson.dumps({"model": SERVED, "messages": MESSAGES}),
        headers={
            "content-type": "application/json",
            "connection": "keep-alive, x-hop",
            "x-hop": "secret",
            "x-custom": "kept",
            "traceparent": parent,
            "accept-encoding": "gzip",
        },
    )
    assert reply.status_code == 200
    assert reply.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"
    got = {k.lower(): v for k, v in server.data_requests()[-1].headers.items()}
    assert "x-hop" not in got
    assert got["x-custom"] == "kept"
    assert got["accept-encoding"] == "identity"
    version, trace_id, span_id, flags = got["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert span_id != "b7ad6b7169203331"  # the proxy's span is the upstream's parent


def test_passthrough_paths_reach_the_fallback_upstream(setup) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = setup
    reply = httpx.post(f"{proxy.url}/tokenize", json={"model": SERVED, "prompt": "a b c"})
    assert reply.status_code == 200 and reply.json()["count"] == 3
    assert reply.headers["x-lineage-decision"] == "allow"
    assert httpx.get(f"{proxy.url}/health").status_code == 200
    assert [r.path for r in server.requests if r.path in ("/tokenize", "/health")] == ["/tokenize", "/health"]


def test_no_route_is_404_model_not_found(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG.replace('model: "*"', f"model: {SERVED}"), UPSTREAM=upstream)
    with pytest.raises(openai.NotFoundError) as caught:
        client(proxy.url).chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert "no route for model 'gpt-9'" in caught.value.message


BLOB_CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: files, url: "${UPSTREAM}", protocol: passthrough}
routes:
  - {model: "*", upstream: files}
policy: {anonymous: allow, default_purpose: assistant}
limits: {buffer_max_bytes: 1048576}
lineage: {store: "${STORE}"}
"""


def test_large_replies_stream_through_with_their_framing(make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """Replies past limits.buffer_max_bytes take the streamed path (incremental delivery itself is
    checked on SSE above): a sized one keeps its length, a chunked one stays chunked, no byte is lost."""
    blob = bytes(range(256)) * (3 * 4096)  # 3 MiB

    async def sized(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=blob, content_type="application/octet-stream")

    async def chunked(request: web.Request) -> web.StreamResponse:
        await request.read()
        reply = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        reply.enable_chunked_encoding()
        await reply.prepare(request)
        for start in range(0, len(blob), 65536):
            await reply.write(blob[start : start + 65536])
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_post("/blobs/sized", sized)
    app.router.add_post("/blobs/chunked", chunked)
    app.router.add_get("/blobs/chunked", chunked)
    runner, port = loop_thread.run(start_app(app))
    try:
        proxy = make_proxy(BLOB_CONFIG, wait="none", UPSTREAM=f"http://127.0.0.1:{port}")
        with httpx.Client(timeout=30) as http:
            one = http.post(f"{proxy.url}/blobs/sized", content=b"{}")
            assert one.status_code == 200 and one.content == blob
            assert one.headers["content-length"] == str(len(blob))
            two = http.post(f"{proxy.url}/blobs/chunked", content=b"{}")
            assert two.status_code == 200 and two.content == blob
            assert two.headers["transfer-encoding"] == "chunked" and "content-length" not in two.headers
            three = http.get(f"{proxy.url}/blobs/chunked")  # data-free methods take the plain path
            assert three.status_code == 200 and three.content == blob
    finally:
        loop_thread.run(runner.cleanup())


def test_fallback_route_records_the_checkpoint_the_upstream_advertises(make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """llama.cpp answers any model name with its own; a call that falls through to the '*' route is
    recorded with the checkpoint the upstream's /v1/models names for that model, not the bare name."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "tiny", "root": "acme/tiny-1b@abc123"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        event = {"id": "c1", "model": "tiny", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
        if body.get("stream"):
            reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await reply.prepare(request)
            await reply.write(b"data: " + orjson.dumps(event) + b"\n\ndata: [DONE]\n\n")
            return reply
        return web.json_response({"id": "c1", "model": "tiny", "choices": [{"index": 0, "message": {"content": "hi"}}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner, port = loop_thread.run(start_app(app))
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}")
        sdk = client(proxy.url)
        whole = sdk.chat.completions.with_raw_response.create(model="any-name", messages=MESSAGES)
        assert whole.http_response.headers["x-lineage-checkpoint"] == "acme/tiny-1b@abc123"
        streamed = sdk.chat.completions.with_raw_response.create(model="other", messages=MESSAGES, stream=True)
        assert streamed.http_response.headers["x-lineage-checkpoint"] == "acme/tiny-1b@abc123"
        streamed.http_response.read()
    finally:
        loop_thread.run(runner.cleanup())
