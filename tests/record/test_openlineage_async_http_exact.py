"""openlineage-python's async_http transport queues each event and returns; its own thread posts it later. The proxy
counted its events from `get_stats()`, totals read now and then (at each event, each second while some were pending,
at a scrape): an outage that began and ended between two reads went unsaid, uncounted; an event its emit queued and
then raised on was counted sent and failed; inside a composite transport none of that was read, every event counted
sent as queued; and at the stop its own retries (~9 s) outlasted the sender's 5 s wait, what it still held counted by
no one. Now each copy of an event is counted as the transport's thread reports it, and what the stop's close cuts
short is counted dropped and said. Real backends on 127.0.0.1 (aiohttp)."""

from __future__ import annotations

import asyncio
import logging
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from openlineage.client.transport.async_http import AsyncHttpTransport

from tests.harness import LoopThread, start_app
from tests.held import until
from tests.record.test_openlineage import Marquez, chat, config, marquez, metric, sink
from tests.record.test_openlineage_async_http_counts import answers_500
from tests.test_openlineage_single_try import Failing

__all__ = ["answers_500", "marquez"]  # the fixtures, imported


class Told:
    """Answers each event as the test says (`answer`: the nth to arrive, from 0), or at once once `rest` is set."""

    def __init__(self) -> None:
        self.arrived: list[tuple[dict[str, Any], asyncio.Future[int]]] = []
        self.rest: int | None = None
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/lineage", self._lineage)
        return app

    async def _lineage(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._loop = asyncio.get_running_loop()
        told: asyncio.Future[int] = self._loop.create_future()
        with self._cond:
            if self.rest is not None:
                told.set_result(self.rest)
            self.arrived.append((body, told))
            self._cond.notify_all()
        return web.Response(status=await told)

    def wait_for(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.arrived) >= count, 10), len(self.arrived)

    def answer(self, n: int, status: int) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.arrived[n][1].set_result, status)

    def answer_rest(self, status: int) -> None:
        with self._cond:
            self.rest = status
            for n, (_, told) in enumerate(self.arrived):
                if not told.done():
                    self.answer(n, status)


@pytest.fixture
def told(loop_thread: LoopThread) -> Iterator[tuple[Told, str]]:
    server = Told()
    runner, port = loop_thread.run(start_app(server.app()))
    yield server, f"http://127.0.0.1:{port}"
    server.answer_rest(201)
    loop_thread.run(runner.cleanup())


def _proxy(vllm: Any, make_proxy: Any, transport: str) -> tuple[Any, Any]:
    """A proxy in front of `vllm` whose OpenLineage events go through `transport` (its YAML), and its recorder."""
    _, upstream = vllm
    proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
    return proxy, sink(proxy)


def _one_event_through_a_composite(vllm: Any, make_proxy: Any, parts: str, failing: Failing, taking: Marquez) -> Any:
    """A proxy whose transport is a composite of `parts`, one chat call: its event taken by `taking`, failed by
    `failing`. The proxy's recorder."""
    proxy, recorder = _proxy(vllm, make_proxy, f"{{type: composite, transports: [{parts}]}}")
    chat(proxy)
    taking.wait_for(1)
    assert until(lambda: failing.failed == 1)
    return recorder


def _stats(proxy: Any) -> dict[str, int]:
    transport = sink(proxy)._transport
    assert isinstance(transport, AsyncHttpTransport)
    return transport.get_stats()


def test_an_outage_that_begins_and_ends_between_two_reads_of_the_stats_is_counted_and_said(
    vllm: Any, told: tuple[Told, str], make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    backend, url = told
    transport = f'{{type: async_http, url: "{url}", retry: {{total: 0}}}}'
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        proxy, recorder = _proxy(vllm, make_proxy, transport)
        chat(proxy)  # a new flow's event: the backend fails it, an outage
        backend.wait_for(1)
        backend.answer(0, 500)
        assert until(lambda: recorder.counts["outages"] == 1)
        chat(proxy, **{"x-data-labels": "health"})  # two more: both pending as the sender reads the stats after each
        chat(proxy, **{"x-data-labels": "finance"})
        backend.wait_for(3)
        backend.answer(1, 201)  # the backend is back: takes one (the outage ends) ...
        assert until(lambda: _stats(proxy)["success"] == 1)
        backend.answer(2, 500)  # ... then fails the next: a second outage, before the stats were read again
        assert until(lambda: recorder.counts["failed"] == 2), recorder.counts["failed"]
        backend.answer_rest(201)
    # before: outages 1, and the outage was taken for over ('takes events again' the last line) though it goes on
    assert (recorder.counts["sent"], recorder.counts["outages"]) == (1, 2)
    lines = [r.getMessage() for r in caplog.records]
    said = ["down" if "cannot send" in line else "up" for line in lines if "cannot send" in line or "again" in line]
    assert said == ["down", "up", "down"], lines


class QueuesThenRaises(AsyncHttpTransport):
    """openlineage-python's async_http transport by dotted path, whose emit queues the event (its thread posts it) and
    then raises: a wrapper's check after the hand-over, or async_http's own emit finding its thread dead."""

    kind = "queues-then-raises"

    def emit(self, event: Any) -> None:
        super().emit(event)
        raise RuntimeError("queued, then failed")


def test_an_event_an_async_transport_queues_then_raises_on_is_counted_once(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any
) -> None:
    backend, url = marquez
    transport = f'{{type: {__name__}.QueuesThenRaises, url: "{url}", retry: {{total: 0}}}}'
    proxy, _ = _proxy(vllm, make_proxy, transport)
    chat(proxy)  # the new flow's event: queued, posted, taken; the emit raised
    backend.wait_for(1)
    assert until(lambda: _stats(proxy)["success"] == 1)
    assert until(lambda: metric(proxy, 'lineage_proxy_openlineage_events_total{result="sent"}') == 1)
    # before 2026-12-04: sent 1 (the transport's stats) and failed 1 (the emit's error), for one event; before
    # 2026-12-05 failed 1, sent again though its thread posted it (`test_openlineage_composite_once`): sent, as it went
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="failed"}') == 0


def test_async_http_inside_a_composite_transport_is_counted_as_its_thread_reports(
    vllm: Any, answers_500: tuple[Failing, str], make_proxy: Any
) -> None:
    backend, url = answers_500
    transport = f'{{type: composite, transports: [{{type: async_http, url: "{url}", retry: {{total: 0}}}}]}}'
    proxy, recorder = _proxy(vllm, make_proxy, transport)
    chat(proxy)
    assert until(lambda: backend.failed == 1)
    assert until(lambda: recorder.counts["failed"] == 1), recorder.counts["failed"]
    assert (recorder.counts["sent"], recorder.counts["outages"]) == (0, 1)  # before: sent 1, failed 0, no outage


def test_a_composite_of_two_async_http_transports_counts_an_event_one_takes_sent_once(
    vllm: Any, answers_500: tuple[Failing, str], marquez: tuple[Marquez, str], make_proxy: Any
) -> None:
    failing, down = answers_500
    taking, up = marquez
    parts = f'{{type: async_http, url: "{down}", retry: {{total: 0}}}}, {{type: async_http, url: "{up}"}}'
    recorder = _one_event_through_a_composite(vllm, make_proxy, parts, failing, taking)
    assert until(lambda: recorder.counts["sent"] == 1)
    # one backend down, the other taking: an outage of that one since 2026-12-05 (helper records4), as for a
    # composite's http transport that fails (an outage of them all, the event failed, before 2026-12-04)
    assert (recorder.counts["failed"], recorder.counts["outages"]) == (0, 1)


def test_what_async_http_still_retries_at_the_stop_is_counted_dropped_and_said(
    vllm: Any, answers_500: tuple[Failing, str], make_proxy: Any, loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Its own retries (here 4 s, then 8 s) outlast the stop's 5 s wait for the sender, which closed the transport
    waiting as long as they took: the stop returned with nothing counted, the process ended, the events unsaid."""
    backend, url = answers_500
    transport = f'{{type: async_http, url: "{url}", retry: {{total: 2, backoff_factor: 4}}}}'
    proxy, recorder = _proxy(vllm, make_proxy, transport)
    chat(proxy)
    assert until(lambda: backend.failed == 1)  # its first try; the next in 4 s
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(recorder.stop())  # the flow's count event too: queued, then retried
    # before: dropped 0, failed 0, nothing said (the sender still closing, past the stop)
    assert recorder.counts["dropped"] == 2, (recorder.counts["dropped"], recorder.counts["failed"])
    assert recorder.counts["sent"] == 0
    assert any("2 events the async_http transport" in r.getMessage() for r in caplog.records)


# a later openlineage-python that renamed the private per-event methods the proxy watches (`_watch`): its own code
# calls them by their new names, the old ones are gone
_RENAMED = {"_add_event": "_track_added", "_mark_success": "_track_taken", "_mark_failed": "_track_given_up"}


def _renamed(code: types.CodeType) -> types.CodeType:
    consts = tuple(_renamed(const) if isinstance(const, types.CodeType) else const for const in code.co_consts)
    return code.replace(co_names=tuple(_RENAMED.get(name, name) for name in code.co_names), co_consts=consts)


def _calling_renamed(function: Any) -> Any:
    return types.FunctionType(_renamed(function.__code__), function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)  # fmt: skip


class _Gone:
    def __get__(self, instance: object, owner: type | None = None) -> Any:
        raise AttributeError("renamed")


class Renamed(AsyncHttpTransport):
    """async_http as a release that renamed `_add_event`, `_mark_success` and `_mark_failed` would be."""

    kind = "renamed-async-http"
    _track_added = AsyncHttpTransport._add_event
    _track_taken = AsyncHttpTransport._mark_success
    _track_given_up = AsyncHttpTransport._mark_failed
    _add_event = _mark_success = _mark_failed = _Gone()
    emit = _calling_renamed(AsyncHttpTransport.emit)
    _process_event = _calling_renamed(AsyncHttpTransport._process_event)


def test_an_async_http_transport_without_the_methods_watched_is_counted_as_queued_and_its_events_still_go_out(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Watching its private methods raised: the sender thread failed (an ERROR), and no event went out again."""
    backend, url = marquez
    transport = f'{{type: composite, transports: [{{type: {__name__}.Renamed, url: "{url}"}}]}}'
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        proxy, recorder = _proxy(vllm, make_proxy, transport)
        chat(proxy)
        chat(proxy, **{"x-data-labels": "health"})
        backend.wait_for(2)  # before: none sent, the sender thread failed
        assert until(lambda: recorder.counts["sent"] == 2), recorder.counts["sent"]
    assert (recorder.counts["failed"], recorder.counts["outages"]) == (0, 0)
    said = [r for r in caplog.records if r.name == "lineage_proxy.openlineage"]
    assert not [r.getMessage() for r in said if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in said].count(
        "openlineage: the async_http transport of "
        f"{recorder._target} has no _add_event, _mark_failed, _mark_success to watch (openlineage-python changed); "
        "its events are counted sent once queued, not as its thread reports them"
    ) == 1


def test_a_composite_whose_http_transport_took_the_event_counts_it_sent_though_its_async_http_one_failed_it(
    vllm: Any, answers_500: tuple[Failing, str], marquez: tuple[Marquez, str], make_proxy: Any
) -> None:
    """The event went out (the http transport's backend took it): counted failed, an outage said, before."""
    failing, down = answers_500
    taking, up = marquez
    parts = f'{{type: http, url: "{up}"}}, {{type: async_http, url: "{down}", retry: {{total: 0}}}}'
    recorder = _one_event_through_a_composite(vllm, make_proxy, parts, failing, taking)
    assert until(lambda: recorder.counts["sent"] + recorder.counts["failed"] == 1)
    # before: sent 0, failed 1, outages 1; then 1, 0, 0 (its async_http one's backend down counted no outage, until
    # 2026-12-05, helper records4: one as for a composite's http transport that fails)
    assert (recorder.counts["sent"], recorder.counts["failed"], recorder.counts["outages"]) == (1, 0, 1)


def test_a_composite_of_two_retrying_async_http_transports_is_closed_within_the_stops_wait(
    vllm: Any, answers_500: tuple[Failing, str], make_proxy: Any, loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A composite's close gives each of its transports the whole timeout, one after the other: two still retrying
    took twice what is left of the stop's 5 s wait, the stop gave up on the sender (its events said not sent, as a
    stuck sender's) and returned before what they held was counted."""
    backend, url = answers_500
    part = f'{{type: async_http, url: "{url}", retry: {{total: 2, backoff_factor: 4}}}}'
    transport = f"{{type: composite, transports: [{part}, {part}]}}"
    proxy, recorder = _proxy(vllm, make_proxy, transport)
    chat(proxy)
    assert until(lambda: backend.failed == 2)  # each transport's first try; the next in 4 s
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(recorder.stop())  # the flow's count event too: queued by both, then retried
    # before: dropped 0 as the stop returned, and 'events not sent to composite at shutdown'
    assert (recorder.counts["dropped"], recorder.counts["sent"]) == (2, 0)
    said = [r.getMessage() for r in caplog.records]
    assert any("2 events the async_http transport" in line for line in said), said
    assert not any("not sent to composite at shutdown" in line for line in said), said


def test_an_async_transports_outage_is_not_said_ended_by_a_copy_the_stop_cut_unreported(
    vllm: Any, marquez: tuple[Marquez, str], told: tuple[Told, str], make_proxy: Any, loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A composite's async_http transport gave a copy up (its backend down, another transport taking each event): an
    outage, ended by a copy of its reported sent. A copy of it still unanswered at the stop (counted with the event,
    another took it) was never sent: before 2026-12-05 (helper revrecords4) its settling at the stop said all the
    transports take events again."""
    taking, up = marquez
    backend, down = told
    parts = f'{{type: http, url: "{up}"}}, {{type: async_http, url: "{down}", retry: {{total: 0}}}}'
    proxy, recorder = _proxy(vllm, make_proxy, f"{{type: composite, transports: [{parts}]}}")
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)
        backend.wait_for(1)
        backend.answer(0, 500)  # given up: an outage
        assert until(lambda: recorder.counts["sent"] == 1)
        assert metric(proxy, "lineage_proxy_openlineage_outages_total") == 1
        loop_thread.run(recorder.flush())  # its count event: taken by http, its async copy left unanswered
        backend.wait_for(2)
        loop_thread.run(recorder.stop())
    assert recorder.counts["sent"] == 2  # (another took it)
    assert not any("take events again" in r.getMessage() for r in caplog.records)  # before: said
