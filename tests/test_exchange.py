"""One call, one record: every way a call can end leaves exactly one record, and a client that stops
reading at `data: [DONE]` (as the openai SDK's streaming helpers and raw SSE readers do) loses nothing
and breaks nothing for the calls after it."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from proxy.flow import Call, Decision, Outcome
from proxy.record.store import SqliteStore
from tests.harness import ServeProcess, dead_port
from tests.servers.vllm_like import ROOT, SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    region: us
    timeout_s: ${TIMEOUT:-30}
  - name: vllm-eu
    url: ${UPSTREAM}
    region: eu
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
zones:
  - name: eu-only
    labels: [eu-data]
    allow_purposes: [assistant]
    regions: [eu]
    on_deny: reroute:vllm-eu
lineage:
  store: ${STORE}
"""


class Counting:
    """A record sink that counts what it is given: one entry per finished call."""

    name = "counting"
    durable = True  # run as each call ends (not on the next turn of the loop), so the counts are exact at once

    def __init__(self) -> None:
        self.ended: list[tuple[str, str | None, str | None]] = []

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        self.ended.append((decision.action, outcome.error_type, call.model))

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> tuple[str, ...]:
        return ()


def rows(path: Path) -> dict[tuple[str, ...], int]:
    store = SqliteStore(path, readonly=True)
    try:
        return {tuple(r.key[:6]): r.count for r in store.rows()}  # the flow (these are allowed: no rule)
    finally:
        store.close()


def sse_request(port: int, labels: str, text: str = "hello") -> bytes:
    body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": text}], "stream": True})
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"x-data-labels: {labels}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def read_to_done_and_close(port: int, labels: str, *, reset: bool) -> bytes:
    """A raw client: read until the `[DONE]` event is in, then close at once (with a RST if `reset`)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(sse_request(port, labels))
        got = b""
        while b"data: [DONE]" not in got:
            piece = sock.recv(65536)
            assert piece, f"connection closed before [DONE]: {got[-300:]!r}"
            got += piece
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return got
    finally:
        sock.close()


def sdk(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=10)


def sdk_stream_to_done(client: openai.OpenAI, labels: str) -> list[str]:
    """The SDK's streaming response, read line by line up to `data: [DONE]`, then closed."""
    lines = []
    with client.chat.completions.with_streaming_response.create(
        model=SERVED, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers={"x-data-labels": labels}
    ) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line == "data: [DONE]":
                break
    return lines


@pytest.fixture
def proxied(vllm, make_proxy, loop_thread, tmp_path):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    counting = Counting()
    proxy.process.runtime.sinks.swap(counting.name, counting)
    return server, proxy, counting, tmp_path / "lineage.db"


def flush(proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    loop_thread.run(proxy.process.runtime.sinks.flush())


def metrics(base: str) -> str:
    return httpx.get(f"{base}/metrics", timeout=5).text


def test_sdk_closing_at_done_loses_no_record_and_breaks_no_flow(proxied, loop_thread) -> None:  # type: ignore[no-untyped-def]
    server, proxy, counting, store = proxied
    client = sdk(proxy.url)
    flows = [f"sdk-flow-{i}" for i in range(25)]
    for labels in flows:
        assert sdk_stream_to_done(client, labels)[-1] == "data: [DONE]"
    for labels in flows:  # the next call of every flow is served in full
        chunks = list(client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "again"}],
                                                     stream=True, extra_headers={"x-data-labels": labels}))  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).endswith("echo: again")
    flush(proxy, loop_thread)
    found = rows(store)
    for labels in flows:
        assert found[("anonymous", "assistant", labels, ROOT, labels, "allow")] == 2
    assert len(counting.ended) == 50
    assert all(error is None for _, error, _ in counting.ended)  # delivered streams are not failures
    assert 'type="client_disconnected"' not in metrics(proxy.url)
    scraped = metrics(proxy.url)
    assert "lineage_proxy_edge_write_errors_total 0" in scraped
    assert "lineage_proxy_in_flight 0" in scraped  # the scrape itself is not a call in flight


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_raw_clients_closing_at_done_many_times(proxied, loop_thread, reset: bool) -> None:  # type: ignore[no-untyped-def]
    server, proxy, counting, store = proxied
    port = proxy.bound.http.port
    flows = [f"raw-flow-{i}" for i in range(15)]
    for _ in range(3):  # each flow three times: new, then known, then known
        for labels in flows:
            got = read_to_done_and_close(port, labels, reset=reset)
            assert got.startswith(b"HTTP/1.1 200")
    for labels in flows:
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10, headers={"x-data-labels": labels},
                           json={"model": SERVED, "messages": [{"role": "user", "content": "next"}]})  # fmt: skip
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"].endswith("echo: next")
    flush(proxy, loop_thread)
    found = rows(store)
    for labels in flows:
        assert found[("anonymous", "assistant", labels, ROOT, labels, "allow")] == 4
    assert len(counting.ended) == 60


def test_a_streamed_new_flow_survives_kill_9_right_after_done(vllm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    store = tmp_path / "lineage.db"
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "STORE": str(store)})
    flows = [f"killed-flow-{i}" for i in range(20)]
    try:
        port = int(serve.addresses["http"].rsplit(":", 1)[1])
        wait_ready(serve.url)  # so every flow names the checkpoint the upstream advertises
        for labels in flows:
            read_to_done_and_close(port, labels, reset=False)
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.wait(10)
    finally:
        serve.stop()
    recorded = {key[2] for key in rows(store)}
    assert [labels for labels in flows if labels not in recorded] == []


def wait_ready(base: str, timeout: float = 10.0) -> None:
    """Until /readyz says every upstream answered its metadata (a readiness wait, not a sleep)."""
    with httpx.Client(timeout=2) as http:
        for _ in range(int(timeout / 0.02)):
            if http.get(f"{base}/readyz").status_code == 200:
                return
            threading.Event().wait(0.02)
    raise AssertionError("the proxy never became ready")


class GatedStore:
    """A store whose writes wait for the test to open the gate: holds the edge writer busy so that the
    next new flow's write is queued, not running, when its client leaves."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()

    def upsert(self, rows: Any) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.inner.upsert(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def read_until(sock: socket.socket, needle: bytes) -> bytes:
    got = b""
    while needle not in got:
        piece = sock.recv(65536)
        assert piece, f"closed before {needle!r}: {got[-200:]!r}"
        got += piece
    return got


def test_a_client_leaving_while_its_new_flow_is_queued_never_cancels_the_write(proxied, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """The first-user defect, made deterministic: the edge writer is busy with one new flow while a
    second new flow's write waits in the queue; that second client leaves. Its record must still be
    written, and the next call of its flow must be served."""
    server, proxy, counting, store = proxied
    edges = proxy.process.runtime.sinks.get("edges")
    gated = GatedStore(edges._store)
    edges._store = gated
    port = proxy.bound.http.port

    def until(predicate) -> None:  # type: ignore[no-untyped-def]
        for _ in range(500):
            if predicate():
                return
            threading.Event().wait(0.01)
        raise AssertionError("never happened")

    def open_and_finish(labels: str) -> socket.socket:
        """A stream whose first event the client has, and whose last the upstream has sent: its
        [DONE] waits in the proxy for the flow's first write."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(sse_request(port, labels, text="__gate__"))
        read_until(sock, b"data: ")  # the role event: the upstream gates the words that follow
        for _ in range(server.reply_words + 2):
            server.release(loop_thread.loop)
        return sock

    first = open_and_finish("gated-a")
    until(gated.entered.is_set)  # the writer is inside flow a's write, held by the gate
    second = open_and_finish("gated-b")
    until(lambda: edges.new_edges == 2)  # flow b's write is queued behind flow a's
    for sock in (second, first):  # both clients leave, with a RST, while their writes wait
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    for _ in range(5):  # let the proxy's loop see both resets and cancel both handlers
        loop_thread.run(asyncio.sleep(0))
    gated.gate.set()
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10, headers={"x-data-labels": "gated-b"},
                       json={"model": SERVED, "messages": [{"role": "user", "content": "next"}]})  # fmt: skip
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"].endswith("echo: next")
    flush(proxy, loop_thread)
    found = rows(store)
    assert found[("anonymous", "assistant", "gated-a", ROOT, "gated-a", "allow")] == 1
    assert found[("anonymous", "assistant", "gated-b", ROOT, "gated-b", "allow")] == 2
    assert edges.write_errors == 0


def test_every_exit_path_records_exactly_once(proxied, vllm, make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    server, proxy, counting, store = proxied
    client = sdk(proxy.url)
    ask = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}

    client.chat.completions.create(**ask)  # allow
    client.chat.completions.create(**ask, extra_headers={"x-data-labels": "eu-data"})  # reroute
    with pytest.raises(openai.PermissionDeniedError):  # deny
        client.chat.completions.create(**ask, extra_headers={"x-purpose": "ads", "x-data-labels": "eu-data"})
    with pytest.raises(openai.BadRequestError):  # malformed request: refused before it is read, recorded as such
        client.chat.completions.create(model=SERVED, messages="not a list")  # type: ignore[arg-type]
    with pytest.raises(openai.APIConnectionError):  # upstream fails mid-stream: the client's stream is cut
        list(client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "__cut__"}],
                                            stream=True))  # fmt: skip

    gate = client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "__gate__"}], stream=True)
    next(iter(gate))
    gate.close()  # client gone mid-stream
    server.release(loop_thread.loop)
    loop_thread.run(asyncio.wait_for(server.cancelled_event.wait(), 5))

    def settled() -> bool:
        return proxy.process.runtime.stats.in_flight == 0

    loop_thread.run(_until(settled))
    assert Counter(action for action, _, _ in counting.ended) == {"allow": 3, "reroute": 1, "deny": 2}
    errors = sorted(str(error) for _, error, _ in counting.ended if error)
    assert errors == ["client_disconnected", "invalid_request", "upstream_reset"]

    dead = make_proxy(CONFIG, wait="probed", UPSTREAM=f"http://127.0.0.1:{dead_port()}")
    dead_counting = Counting()
    dead.process.runtime.sinks.swap(dead_counting.name, dead_counting)
    with pytest.raises(openai.APIStatusError) as refused:  # upstream refused
        sdk(dead.url).chat.completions.create(**ask)
    assert refused.value.status_code == 502
    _, upstream = vllm
    slow = make_proxy(CONFIG, UPSTREAM=upstream, TIMEOUT="0.2")
    slow_counting = Counting()
    slow.process.runtime.sinks.swap(slow_counting.name, slow_counting)
    with pytest.raises(openai.APIStatusError) as timed_out:  # upstream too slow
        sdk(slow.url).chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "__slow__"}])
    assert timed_out.value.status_code == 504
    assert [e for _, e, _ in dead_counting.ended] == ["upstream_unavailable"]
    assert [e for _, e, _ in slow_counting.ended] == ["upstream_timeout"]
    assert 'lineage_proxy_errors_total{type="upstream_unavailable"} 1' in metrics(dead.url)


def test_an_observer_that_cannot_read_the_reply_never_breaks_forwarding(make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """A reply of an unexpected shape (a choice index that is not a number, a choices list of junk)
    is forwarded unchanged and the call still leaves its record."""
    from aiohttp import web

    from tests.harness import start_app

    odd = {"id": "x", "model": SERVED, "choices": [{"index": "zero", "message": {"content": "a"}},
                                                   {"index": [1], "message": {"content": "b"}}, 7]}  # fmt: skip

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return web.json_response({"object": "list", "data": [{"id": SERVED, "root": ROOT}]})
        body = await request.json()
        if body.get("stream"):
            reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await reply.prepare(request)
            for index in ("a", None, [2], 0):
                event = {"id": "x", "model": SERVED, "choices": [{"index": index, "delta": {"content": "t"}}]}
                await reply.write(b"data: " + orjson.dumps(event) + b"\n\n")
            await reply.write(b"data: [DONE]\n\n")
            return reply
        return web.json_response(odd)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, port = loop_thread.run(start_app(app))
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}")
        counting = Counting()
        proxy.process.runtime.sinks.swap(counting.name, counting)
        whole = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": []}, timeout=10)
        assert whole.status_code == 200 and whole.json() == odd
        streamed = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                              json={"model": SERVED, "messages": [], "stream": True})  # fmt: skip
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        assert [(action, error) for action, error, _ in counting.ended] == [("allow", None), ("allow", None)]
    finally:
        loop_thread.run(runner.cleanup())


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a loop-thread condition (in-flight calls to settle after a client left)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0)
