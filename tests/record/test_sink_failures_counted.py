"""A record sink that raises on a call loses that call's record in it (the call goes on). Before, the loss was logged
once per sink for the whole process life and never counted: a sink that failed, recovered and failed again, or
failed anew in another way, lost every later record without a trace. Now each sink's lost records are counted on
/metrics (`lineage_proxy_sink_records_lost_total{sink}`, never down across reloads), each outage and kind of
failure is logged, its end says what it lost, and a sink still failing at stop is said with its losses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import socket
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.config.model import Config
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.metrics import Metrics
from proxy.record.sinks import Durable, FanOut, Recorder
from proxy.server import ProxyProcess
from tests.harness import LoopThread
from tests.held import until
from tests.servers.vllm_like import SERVED, VllmLike

CONFIG = """listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


class Flaky:
    """A record sink that raises `failure` on each call while it is set (a disk that filled, a backend's client in a
    state it cannot leave), added as README says a sink is: one line in `ProxyProcess._sinks`."""

    name = "flaky"
    durable = False

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.recorded = 0

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        if self.failure is not None:
            raise self.failure
        self.recorded += 1

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> list[str]:
        return []


def _lost(text: str, sink: str) -> int | None:
    found = re.search(rf'^lineage_proxy_sink_records_lost_total\{{sink="{sink}"\}} (\d+)$', text, re.M)
    return int(found[1]) if found else None


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "lineage_proxy.record"]


def test_a_raising_sink_s_lost_records_are_counted_and_each_outage_is_said(
    vllm: tuple[VllmLike, str],
    make_proxy: Any,
    loop_thread: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, url = vllm
    flaky = Flaky()
    built = ProxyProcess._sinks

    def with_flaky(config: Config, metrics: Metrics) -> list[Recorder]:
        return [*built(config, metrics), flaky]

    monkeypatch.setattr(ProxyProcess, "_sinks", staticmethod(with_flaky))
    caplog.set_level(logging.WARNING, logger="lineage_proxy.record")
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    proxy.process.runtime.sinks.settle_s = 0.0  # an outage ends at its first turn of calls recorded (see below)
    assert _lost(proxy.process.metrics_text(), "flaky") == 0  # there from the start, for an alert on its increase
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)

    def call() -> None:
        reply = client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content  # the call goes on whatever the sink does

    def lost() -> int | None:
        return _lost(proxy.process.metrics_text(), "flaky")

    flaky.failure = OSError(28, "No space left on device")
    call()
    call()
    assert until(lambda: lost() == 2), proxy.process.metrics_text()
    said = _said(caplog)
    assert len(said) == 1 and said[0].startswith("record sink flaky failed on a call"), said  # once, not per call

    flaky.failure = None
    call()
    assert until(lambda: flaky.recorded == 1)
    assert until(lambda: len(_said(caplog)) == 2), _said(caplog)
    assert _said(caplog)[1] == "record sink flaky records again; the records of 2 calls were lost in it meanwhile"

    flaky.failure = OSError(28, "No space left on device")  # the same failure again, after it recovered: a new outage
    call()
    assert until(lambda: lost() == 3)
    flaky.failure = ValueError("a record of a shape it cannot take")  # another kind of failure in the same outage
    call()
    call()
    assert until(lambda: lost() == 5)
    said = _said(caplog)
    assert [line.startswith("record sink flaky failed on a call") for line in said] == [True, False, True, True], said
    assert "ValueError: a record of a shape it cannot take" in caplog.text  # each kind with its traceback

    loop_thread.run(proxy.process.stop())
    assert _said(caplog)[-1] == (
        "record sink flaky was still failing at shutdown: the records of 3 calls were lost in it since it began failing "
        "(5 in this process)"
    )


def _end(sinks: FanOut) -> None:
    trace = TraceContext(trace_id=1, span_id=2)
    sinks.on_end(Call("openai", "chat", "m", trace), Decision(ALLOW, None), Outcome(started_ns=1), frozenset())


def test_a_sink_s_lost_records_stay_counted_when_a_reload_replaces_or_removes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The count is the fan-out's, by sink name: a reload's new sink counts on, a removed one's stays on /metrics."""
    caplog.set_level(logging.WARNING, logger="lineage_proxy.record")
    failing = Flaky()
    failing.failure = RuntimeError("broken")
    sinks = FanOut([failing])
    _end(sinks)  # no event loop: the sinks run at once
    _end(sinks)
    assert _lost("\n".join(sinks.metrics()), "flaky") == 2
    sinks.swap("flaky", Flaky())
    assert (
        _said(caplog)[-1]
        == "record sink flaky replaced by a reload while failing: the records of 2 calls were lost in it"
    )
    _end(sinks)
    assert _lost("\n".join(sinks.metrics()), "flaky") == 2  # the new one records: not down, not up
    sinks.swap("flaky", failing)
    _end(sinks)
    sinks.swap("flaky", None)
    assert (
        _said(caplog)[-1]
        == "record sink flaky removed by a reload while failing: the records of 1 calls were lost in it"
    )
    assert _lost("\n".join(sinks.metrics()), "flaky") == 3  # removed, its losses still said


class WriteThrough(Flaky):
    """A durable sink, as the edge store's write-through: a call of a new flow returns the write its reply waits for
    (`write`, while set), and the fan-out holds the call's record from the other sinks until it is done."""

    name = "edges"
    durable = True

    def __init__(self) -> None:
        super().__init__()
        self.write: Durable | None = None

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> Durable | None:
        super().on_end(call, decision, outcome, output_labels)
        return self.write


async def _turns() -> None:
    """Enough turns of the loop for a held record's release and the fan-out's turn after it."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_durable_sink_s_outage_is_not_ended_by_a_record_it_took_before_its_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A record held for its durable write is released to the other sinks a turn after the write is done: the
    durable sink took that call before, maybe before its outage began. Counted as a turn the failing sink recorded,
    it ended the outage ("records again") though the sink recorded nothing since, and its next failure was logged
    again, traceback and all, as a new outage: one a held record's release, however long the sink failed."""
    caplog.set_level(logging.WARNING, logger="lineage_proxy.record")

    async def scenario() -> None:
        store = WriteThrough()
        sinks = FanOut([store])
        write: Durable = concurrent.futures.Future()
        store.write = write
        _end(sinks)  # a new flow: its reply waits for the write, its record is held
        store.write = None
        store.failure = OSError(28, "No space left on device")
        _end(sinks)  # the store fails from the next call on
        await _turns()
        write.set_result(None)  # the write begun before the failure ends: the held record goes to the other sinks
        await _turns()
        _end(sinks)
        await _turns()
        await sinks.stop()

    asyncio.run(scenario())
    assert _said(caplog) == [
        "record sink edges failed on a call; the call goes on, its record there is lost (counted in "
        'lineage_proxy_sink_records_lost_total{sink="edges"}; logged once an outage and kind of failure)',
        "record sink edges was still failing at shutdown: the records of 2 calls were lost in it since it began "
        "failing (2 in this process)",
    ]


class EveryOther(Flaky):
    """A sink that fails on every other call while `flapping` (a backend's client that loses its connection at each
    use after one)."""

    flapping = True

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        failing = self.flapping and self.failure is None
        self.failure = OSError(104, "Connection reset by peer") if failing else None
        super().on_end(call, decision, outcome, output_labels)


def test_a_sink_failing_now_and_then_is_one_outage_until_it_records_for_settle_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A turn of calls a sink recorded ended its outage: one failing on every other call, each call a turn, had a
    traceback and a WARNING logged for every two calls (1,000 lines for 1,000 calls). Now its outage ends at a turn of
    calls recorded once it has not failed for `settle_s` (SETTLE_S, 60 s); a recovered sink still in that window at
    stop is said so."""
    caplog.set_level(logging.WARNING, logger="lineage_proxy.record")
    now = [0.0]
    flapping = EveryOther()

    async def scenario() -> None:
        sinks = FanOut([flapping], clock=lambda: now[0])
        for second in range(100):  # a call a second, each its own turn: fails at 0, 2, ... 98
            now[0] = second
            _end(sinks)
            await _turns()
        flapping.flapping = False  # recovered
        for second in range(100, 158):  # a turn of calls recorded each second, until a minute since its last failure
            now[0] = second
            _end(sinks)
            await _turns()
        assert len(_said(caplog)) == 1, _said(caplog)  # its failure, once: not yet said to record again
        now[0] = 158
        _end(sinks)
        await _turns()
        await sinks.stop()

    asyncio.run(scenario())
    assert _said(caplog) == [
        "record sink flaky failed on a call; the call goes on, its record there is lost (counted in "
        'lineage_proxy_sink_records_lost_total{sink="flaky"}; logged once an outage and kind of failure)',
        "record sink flaky records again; the records of 50 calls were lost in it meanwhile",
    ]
    assert flapping.recorded == 109


def test_a_sink_recording_again_at_stop_but_within_settle_s_is_said_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lineage_proxy.record")
    now = [0.0]
    flaky = Flaky()

    async def scenario() -> None:
        sinks = FanOut([flaky], clock=lambda: now[0])
        flaky.failure = RuntimeError("broken")
        _end(sinks)
        await _turns()
        flaky.failure = None
        now[0] = 5.0
        _end(sinks)
        await _turns()
        await sinks.stop()

    asyncio.run(scenario())
    assert _said(caplog)[-1] == (
        "record sink flaky recorded again at shutdown, 5 s after its last failure: the records of 1 calls were lost in "
        "it meanwhile (1 in this process)"
    )


class Unflushable(Flaky):
    """A sink whose flush and stop raise `failure` (a spool on a disk that filled, a connection the database dropped
    as its last batch went out): what it held then may be lost."""

    name = "openlineage"  # made by `ProxyProcess._openlineage`: a reload that changes lineage.openlineage replaces it

    async def flush(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def stop(self) -> None:
        if self.failure is not None:
            raise self.failure


def with_openlineage(snapshot_interval_s: int) -> str:
    """CONFIG with an OpenLineage sink, its settings told apart by `snapshot_interval_s`."""
    openlineage = f"openlineage: {{transport: {{type: console}}, snapshot_interval_s: {snapshot_interval_s}}}"
    return CONFIG.replace('lineage: {store: "${STORE}"}', f'lineage: {{store: "${{STORE}}", {openlineage}}}')


def _unflushed(text: str, sink: str) -> int | None:
    found = re.search(rf'^lineage_proxy_sink_flush_failures_total\{{sink="{sink}"\}} (\d+)$', text, re.M)
    return int(found[1]) if found else None


def test_a_sink_whose_flush_or_stop_raises_is_counted_and_said_a_reload_s_too(
    vllm: tuple[VllmLike, str],
    make_proxy: Any,
    loop_thread: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """A sink's flush or stop that raised was logged and never counted; and the stop of the sink a reload replaced
    ran as a task no one awaited, so its failure was never said by the proxy (asyncio's "Task exception was never
    retrieved", at best, once the task was collected), nor at the proxy's stop, whose gather took it in silence. Now
    each is logged and counted in lineage_proxy_sink_flush_failures_total{sink}, every sink there from the start."""
    _, url = vllm
    made: list[Unflushable] = []

    def unflushable(config: Config) -> Recorder | None:
        if config.lineage.openlineage is None:
            return None
        made.append(Unflushable())
        return made[-1]

    monkeypatch.setattr(ProxyProcess, "_openlineage", staticmethod(unflushable))
    monkeypatch.chdir(tmp_path)  # the default spool, checked at start, in the test's directory
    caplog.set_level(logging.ERROR, logger="lineage_proxy.record")
    proxy = make_proxy(with_openlineage(60), UPSTREAM=url)
    assert _unflushed(proxy.process.metrics_text(), "openlineage") == 0
    assert _unflushed(proxy.process.metrics_text(), "edges") == 0

    made[0].failure = OSError(28, "No space left on device")
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert _unflushed(proxy.process.metrics_text(), "openlineage") == 1
    assert _said(caplog) == [
        "record sink openlineage failed to flush: what it held may be lost (counted in "
        'lineage_proxy_sink_flush_failures_total{sink="openlineage"})'
    ]

    path = tmp_path / "reloaded.yaml"
    path.write_text(with_openlineage(30).replace("${UPSTREAM}", url).replace("${STORE}", str(tmp_path / "lineage.db")))

    async def reload() -> bool:
        return proxy.process.reload(str(path))

    assert loop_thread.run(reload())
    assert len(made) == 2  # the first replaced, its stop raising
    assert until(lambda: _unflushed(proxy.process.metrics_text(), "openlineage") == 2), proxy.process.metrics_text()
    # (counted, then said with its traceback: the line may come a moment after the count, on the loop's thread)
    assert until(lambda: len(_said(caplog)) == 2), _said(caplog)
    assert _said(caplog)[-1] == (
        "record sink openlineage failed to stop: what it held may be lost (counted in "
        'lineage_proxy_sink_flush_failures_total{sink="openlineage"})'
    )
    assert "OSError: [Errno 28] No space left on device" in caplog.text  # with its traceback


class Unstoppable(Flaky):
    """A sink whose stop waits until `release` is set: a custom sink's stop on a backend that never answers."""

    name = "openlineage"

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.stopping = False

    async def stop(self) -> None:
        self.stopping = True
        await self.release.wait()
        raise OSError(5, "Input/output error")  # its stop's end, long after the proxy gave up on it: said, not lost


def test_a_sink_whose_stop_never_returns_is_given_up_on_said_and_counted_a_reload_s_too(
    vllm: tuple[VllmLike, str],
    make_proxy: Any,
    loop_thread: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """The fan-out awaited a sink's stop (a reload's, the proxy's) with no bound of its own: a sink whose stop never
    returned held the proxy's stop for good, unsaid, uncounted. Now it is given up on after `stop_wait_s`, logged and
    counted in lineage_proxy_sink_flush_failures_total{sink}, and the proxy's stop goes on."""
    _, url = vllm
    made: list[Unstoppable] = []

    def unstoppable(config: Config) -> Recorder | None:
        if config.lineage.openlineage is None:
            return None
        made.append(Unstoppable())
        return made[-1]

    monkeypatch.setattr(ProxyProcess, "_openlineage", staticmethod(unstoppable))
    monkeypatch.chdir(tmp_path)  # the default spool, checked at start, in the test's directory
    caplog.set_level(logging.ERROR, logger="lineage_proxy.record")
    proxy = make_proxy(with_openlineage(60), UPSTREAM=url)
    sinks = proxy.process.runtime.sinks
    sinks.stop_wait_s = 0.2
    path = tmp_path / "reloaded.yaml"
    path.write_text(with_openlineage(30).replace("${UPSTREAM}", url).replace("${STORE}", str(tmp_path / "lineage.db")))

    async def reload() -> bool:
        return proxy.process.reload(str(path))

    def release() -> None:
        for sink in made:
            loop_thread.loop.call_soon_threadsafe(sink.release.set)

    try:
        assert loop_thread.run(reload())
        assert len(made) == 2  # the first replaced: its stop (a task) never returns
        assert until(lambda: made[0].stopping)
        assert until(lambda: _unflushed(proxy.process.metrics_text(), "openlineage") == 1), proxy.process.metrics_text()
        assert _said(caplog)[-1] == (
            "record sink openlineage did not stop within 0.2s; the proxy goes on without waiting for it: what it held "
            'may be lost (counted in lineage_proxy_sink_flush_failures_total{sink="openlineage"})'
        )
        loop_thread.run(proxy.process.stop())  # (waited for good)
        assert made[1].stopping
        assert _said(caplog).count(_said(caplog)[-1]) == 2  # the proxy's own stop gave up on the second
    finally:
        release()
    assert until(lambda: sum("after the proxy gave up waiting for it" in line for line in _said(caplog)) == 2)
    assert _said(caplog)[-1] == (
        "record sink openlineage failed to stop, after the proxy gave up waiting for it: OSError: [Errno 5] "
        "Input/output error"
    )


class SyncStop(Flaky):
    """A sink whose `stop` is a plain function (not a coroutine function), raising as it is called."""

    def stop(self) -> None:  # type: ignore[override]
        raise OSError(5, "Input/output error")


def test_a_sink_whose_plain_stop_raises_leaves_the_stop_to_say_the_sinks_still_failing(
    vllm: tuple[VllmLike, str],
    make_proxy: Any,
    loop_thread: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink's `stop` that raises as it is called (a plain function, not a coroutine's) is counted and said as any
    sink's failed stop; the fan-out's stop goes on and says the sinks still failing. It raised out of the fan-out's
    stop: the still-failing sink's losses went unsaid."""
    _, url = vllm
    failing = SyncStop()
    failing.failure = OSError(28, "No space left on device")
    built = ProxyProcess._sinks

    def with_it(config: Config, metrics: Metrics) -> list[Recorder]:
        return [*built(config, metrics), failing]

    monkeypatch.setattr(ProxyProcess, "_sinks", staticmethod(with_it))
    caplog.set_level(logging.WARNING, logger="lineage_proxy.record")
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        body = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}' % SERVED.encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert until(lambda: _lost(proxy.process.metrics_text(), "flaky") == 1)
    loop_thread.run(proxy.process.stop())
    said = _said(caplog)
    assert any(line.startswith("record sink flaky failed to stop") for line in said), said
    assert said[-1] == (
        "record sink flaky was still failing at shutdown: the records of 1 calls were lost in it since it began failing "
        "(1 in this process)"
    ), said
    assert 'lineage_proxy_sink_flush_failures_total{sink="flaky"} 1' in proxy.process.metrics_text()
