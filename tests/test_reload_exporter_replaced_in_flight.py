"""A reload that replaces the span exporter (another endpoint, another `service_name` or resource attribute) exported
the spans of the calls in flight as it applied through the new one: a stream begun under `service_name: before`, sent
to collector A, reached collector B named `after`, a service it never ran under. A span describes its call under the
config the call began under, as a reload that turns the exporter off already has it (`Lingering`): the replaced
exporter is kept for the calls in flight then, their spans go to its collector with its resource, and it stops once
the last is recorded; the calls begun since go to the new one. Driven with the real openai SDK, a stream held by the
upstream across a real reload, and two OTLP/gRPC receivers decoding opentelemetry-proto."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx

from proxy.record.spans import SPANS, SpanRecorder
from tests.harness import LoopThread
from tests.held import until
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_reload_exporter_off_in_flight import CONFIG, in_flight, reloaded, traceparent


def telemetry(port: int, service: str) -> str:
    return f'telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{port}", service_name: {service}}}'


def test_a_stream_in_flight_as_a_reload_replaces_the_exporter_goes_out_as_it_began(
    vllm: Any, otlp: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """On main: the stream's span reached B as `after`, A got nothing."""
    server, upstream = vllm
    other = OtlpReceiver()
    other.start()
    try:
        proxy = make_proxy(CONFIG.replace("TELEMETRY", telemetry(otlp.port, "before")), UPSTREAM=upstream)
        streamed, header = traceparent()
        _, chunks = in_flight(proxy, server, loop_thread, {"traceparent": header})  # the stream is in flight
        reloaded(proxy, loop_thread, tmp_path, upstream, telemetry(other.port, "after"))
        since, header = traceparent()  # a call begun after the reload
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"traceparent": header},
                           json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200
        for _ in range(20):
            server.release(loop_thread.loop)
        assert list(chunks)

        first = otlp.wait_for(lambda spans: len(spans) >= 1)
        assert [(s.trace_id, s.resource["service.name"]) for s in first] == [(streamed, "before")]
        # the replaced exporter stopped once the stream was recorded: the new one alone is in place
        assert type(proxy.process.runtime.sinks.get(SPANS)) is SpanRecorder
        loop_thread.run(proxy.process.stop())
        assert [(s.trace_id, s.resource["service.name"]) for s in other.spans] == [(since, "after")]
        assert [s.trace_id for s in otlp.spans] == [streamed]
    finally:
        other.stop()


def test_a_stream_in_flight_as_a_reload_renames_the_service_keeps_its_name(
    vllm: Any, otlp: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """The same collector, another `service_name` and resource attribute: the stream's span names the service and
    resource it ran under (on main: `after`), the call begun since the new ones. Counted once, on /metrics' counters."""
    server, upstream = vllm
    before = telemetry(otlp.port, "before").replace("}", ", resource_attributes: {deployment.environment: blue}}")
    after = telemetry(otlp.port, "after").replace("}", ", resource_attributes: {deployment.environment: green}}")
    proxy = make_proxy(CONFIG.replace("TELEMETRY", before), UPSTREAM=upstream)
    streamed, header = traceparent()
    _, chunks = in_flight(proxy, server, loop_thread, {"traceparent": header})
    reloaded(proxy, loop_thread, tmp_path, upstream, after)
    since, header = traceparent()
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"traceparent": header},
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200
    for _ in range(20):
        server.release(loop_thread.loop)
    assert list(chunks)
    loop_thread.run(proxy.process.stop())
    got = {s.trace_id: (s.resource["service.name"], s.resource["deployment.environment"]) for s in otlp.spans}
    assert got == {streamed: ("before", "blue"), since: ("after", "green")}, got
    assert len(otlp.spans) == 2
    assert proxy.process.runtime.sinks.get(SPANS).queue.exported == 2  # the replaced one's counted on in its successor


def test_a_stream_in_flight_across_two_reloads_goes_out_as_it_began_and_each_replaced_exporter_stops(
    vllm: Any, otlp: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """Two reloads while one stream runs: its span names the first service; a call between them the second's; one
    after, the third's. Once the stream is recorded, the exporters of the first two configs have stopped."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG.replace("TELEMETRY", telemetry(otlp.port, "s0")), UPSTREAM=upstream)
    recorders = [proxy.process.runtime.sinks.get(SPANS)]
    streamed, header = traceparent()
    _, chunks = in_flight(proxy, server, loop_thread, {"traceparent": header})
    calls = []
    for service in ("s1", "s2"):
        reloaded(proxy, loop_thread, tmp_path, upstream, telemetry(otlp.port, service))
        recorders.append(proxy.process.runtime.sinks.get(SPANS).successor)
        trace_id, header = traceparent()
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"traceparent": header},
                           json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200
        calls.append(trace_id)
    for _ in range(20):
        server.release(loop_thread.loop)
    assert list(chunks)
    spans = otlp.wait_for(lambda spans: len(spans) >= 3)
    got = {s.trace_id: s.resource["service.name"] for s in spans}
    assert got == {streamed: "s0", calls[0]: "s1", calls[1]: "s2"}, got
    assert proxy.process.runtime.sinks.get(SPANS) is recorders[2]
    assert until(lambda: recorders[0].queue._given_up and recorders[1].queue._given_up)  # stopped
    assert not recorders[2].queue._given_up
    loop_thread.run(proxy.process.stop())
    assert len(otlp.spans) == 3


def test_a_call_whose_client_leaves_mid_request_across_the_reload_releases_the_replaced_exporter(
    vllm: Any, otlp: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """A call in flight as the reload applies whose client leaves before its body is whole (no upstream, no answer):
    it is recorded all the same (a refusal, `left_unread`), so it counts down the replaced exporter's calls as a stream's
    end does, which then stops; its span goes to the collector it began under. A call so counted and never recorded
    would keep the replaced exporter, and its thread, for the process's life (review revrec13: pinned, it holds)."""
    _, upstream = vllm
    other = OtlpReceiver()
    other.start()
    try:
        proxy = make_proxy(CONFIG.replace("TELEMETRY", telemetry(otlp.port, "before")), UPSTREAM=upstream)
        recorder = proxy.process.runtime.sinks.get(SPANS)
        stats = proxy.process.runtime.stats
        left, header = traceparent()
        host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
        client = socket.create_connection((host, int(port)))
        client.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ntraceparent: {header}\r\n"
                       "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())  # fmt: skip
        assert until(lambda: stats.in_flight == 1)  # its head read: the call has begun
        reloaded(proxy, loop_thread, tmp_path, upstream, telemetry(other.port, "after"))
        assert type(proxy.process.runtime.sinks.get(SPANS)) is not SpanRecorder  # the replaced one kept for it
        client.close()
        assert until(lambda: type(proxy.process.runtime.sinks.get(SPANS)) is SpanRecorder)
        assert until(lambda: recorder.queue._given_up)  # the replaced exporter stopped
        spans = otlp.wait_for(lambda spans: len(spans) >= 1)
        assert [(s.trace_id, s.resource["service.name"]) for s in spans] == [(left, "before")]
        loop_thread.run(proxy.process.stop())
        assert other.spans == []
    finally:
        other.stop()
