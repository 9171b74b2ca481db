"""A reload that turns the span exporter off (`telemetry.exporter: none`) keeps it for the calls in flight as it
applies: they began under the config that exports their spans. Before, a stream spanning such a reload ended with no
span, neither exported nor counted nor said (under load, 100 of 100 streams in flight at the reload).
A call begun since is not exported, though its caller's traceparent says sampled; the exporter stops (its spans flushed)
once the last call in flight at the reload is recorded, before the proxy's own stop. So is the OpenLineage sink a reload
takes out (`lineage.openlineage` removed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.record.spans import SPANS
from tests.harness import LoopThread
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
TELEMETRY
lineage: {store: "${STORE}"}
"""


def traceparent() -> tuple[str, str]:
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


def in_flight(proxy: Any, server: Any, loop_thread: LoopThread, headers: dict[str, str] | None = None) -> Any:
    """A stream through `proxy`, its first chunk read (the upstream holds the rest till released): its chunks."""
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0, timeout=10)
    stream = client.chat.completions.create(model="m", stream=True, extra_headers=headers or {},
                                            messages=[{"role": "user", "content": "__gate__ hello"}])  # fmt: skip
    server.release(loop_thread.loop)
    chunks = iter(stream)
    next(chunks)
    return stream, chunks


def reloaded(proxy: Any, loop_thread: LoopThread, tmp_path: Path, upstream: str, telemetry: str) -> None:
    """`proxy` reloaded to CONFIG with `telemetry` in its place (no OpenLineage sink)."""
    path = tmp_path / "reloaded.yaml"
    path.write_text(CONFIG.replace("TELEMETRY", telemetry).replace("${UPSTREAM}", upstream)
                    .replace("${STORE}", str(tmp_path / "lineage.db")))  # fmt: skip

    async def reload() -> bool:
        return bool(proxy.process.reload(str(path)))

    assert loop_thread.run(reload())


def test_a_stream_in_flight_as_a_reload_turns_the_exporter_off_is_still_exported(
    vllm: Any, otlp: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    server, upstream = vllm
    exporting = f'telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp.port}"}}'
    proxy = make_proxy(CONFIG.replace("TELEMETRY", exporting), UPSTREAM=upstream)
    streamed, header = traceparent()
    _, chunks = in_flight(proxy, server, loop_thread, {"traceparent": header})  # the stream is in flight
    reloaded(proxy, loop_thread, tmp_path, upstream, "telemetry: {exporter: none}")
    since, header = traceparent()  # a call begun after the reload, its caller's trace sampled
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"traceparent": header},
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200
    for _ in range(20):
        server.release(loop_thread.loop)
    assert list(chunks)

    # exported as the stream is recorded, by the exporter it began under, which then stops (before: no span at all)
    spans = otlp.wait_for(lambda spans: len(spans) >= 1)
    assert [span.trace_id for span in spans] == [streamed]
    assert proxy.process.runtime.sinks.get(SPANS) is None
    loop_thread.run(proxy.process.stop())
    assert [span.trace_id for span in otlp.spans] == [streamed]  # never the call begun since


def test_a_stream_in_flight_as_a_reload_takes_openlineage_out_is_still_counted_there(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """The same for `lineage.openlineage` taken out by a reload: the stream's call was counted nowhere but the store."""
    server, upstream = vllm
    events = tmp_path / "events.jsonl"
    transport = f'{{type: file, log_file_path: "{events}", append: true}}'
    sending = f'lineage: {{store: "${{STORE}}", openlineage: {{transport: {transport}}}}}'
    text = CONFIG.replace('lineage: {store: "${STORE}"}', sending).replace("TELEMETRY", "telemetry: {exporter: none}")
    proxy = make_proxy(text, UPSTREAM=upstream)
    _, chunks = in_flight(proxy, server, loop_thread)  # the stream is in flight
    reloaded(proxy, loop_thread, tmp_path, upstream, "telemetry: {exporter: none}")
    for _ in range(20):
        server.release(loop_thread.loop)
    assert list(chunks)
    loop_thread.run(proxy.process.stop())
    # its flow's event, and its count (before: no event at all)
    sent = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    counted = [event["run"]["facets"].get("lineageProxy_count", {}).get("count", 0) for event in sent]
    assert len(sent) == 2 and sum(counted) == 1, sent


def test_a_stream_in_flight_as_a_reload_turns_the_exporter_off_then_cut_by_the_stop_is_waited_for(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream still in flight at the stop, cut by the drain: its record (held for its flow's durable write) reaches
    the kept exporter as the sinks stop, which then stops it (`_lingered`): a task the proxy's stop had not listed,
    so not waited for. The proxy's stop returned with that exporter still stopping (its collector stalled: the span
    neither exported nor yet counted and said), and `asyncio.run`'s end cancelled it."""
    server, upstream = vllm
    stalled = OtlpReceiver(hang=True)  # takes each export and answers none (until it stops)
    stalled.start()
    try:
        limits = "limits: {drain_timeout_s: 0.2}"  # the stream is never let go: the drain cuts it
        exporting = f'telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{stalled.port}", export_timeout_s: 1}}'
        proxy = make_proxy(CONFIG.replace("TELEMETRY", f"{exporting}\n{limits}"), UPSTREAM=upstream)
        stream, _ = in_flight(proxy, server, loop_thread)  # its client kept: it never leaves
        reloaded(proxy, loop_thread, tmp_path, upstream, f"telemetry: {{exporter: none}}\n{limits}")
        assert proxy.process.runtime.sinks.get(SPANS) is not None  # kept for the stream

        async def stop() -> list[Any]:
            await proxy.process.stop()
            return [task for task in proxy.process._retiring if not task.done()]  # as the stop returns

        assert loop_thread.run(stop()) == []  # before: the kept exporter's stop, still running
        assert proxy.process.runtime.sinks.get(SPANS) is None
        assert "1 span not exported at shutdown" in caplog.text  # (before: not yet said)
        stream.close()
    finally:
        stalled.stop()
