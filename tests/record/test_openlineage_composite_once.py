"""A composite transport with `continue_on_failure: false` stops at the first of its transports that fails and raises:
the transports before it have taken the event (an `async_http` one queued it, its thread posts it). The proxy counted
it failed and sent it again whole, so each of those posted it a second time, the same run (a receiver summing count
events counted its calls twice). Now an event one of the composite's transports took is not sent again: as with
`continue_on_failure: true`, where openlineage-python reports a part's failure and returns. Real backends on 127.0.0.1
(aiohttp), openlineage-python's own composite, http and async_http transports."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from proxy.record.openlineage import OpenLineageRecorder
from tests.harness import LoopThread, ProxyHandle
from tests.held import until
from tests.record.test_openlineage import Marquez, chat, config, marquez, metric, sink
from tests.record.test_openlineage_async_http_counts import answers_500
from tests.test_openlineage_single_try import Failing, failing

__all__ = ["answers_500", "failing", "marquez"]  # the fixtures, imported

OUTAGES = "lineage_proxy_openlineage_outages_total"
FAIL_FAST = "continue_on_failure: false, "


def composite(
    make_proxy: Any, vllm: Any, parts: list[str], goes_on: str = ""
) -> tuple[ProxyHandle, OpenLineageRecorder]:
    """A proxy in front of `vllm` whose OpenLineage transport is a composite of `parts` (`goes_on`: its
    `continue_on_failure` field and a comma, or nothing), and its recorder."""
    transport = f"{{type: composite, {goes_on}transports: [{', '.join(parts)}]}}"
    _, upstream = vllm
    proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
    return proxy, sink(proxy)


# the last: async_http as a release without the private methods watched would be, its events counted as queued
@pytest.mark.parametrize("first", ["http", "async_http", "tests.record.test_openlineage_async_http_exact.Renamed"])
def test_an_event_a_fail_fast_composite_raised_on_after_one_transport_took_it_is_not_sent_to_that_one_twice(
    vllm: Any, marquez: tuple[Marquez, str], answers_500: tuple[Failing, str], make_proxy: Any,
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, first: str,
) -> None:  # fmt: skip
    taking, up = marquez
    failing, down = answers_500
    parts = [f'{{type: {first}, url: "{up}"}}', f'{{type: http, url: "{down}", retry: {{total: 0}}}}']
    proxy, recorder = composite(make_proxy, vllm, parts, FAIL_FAST)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the new flow's event: the first transport takes it, the second fails it, the composite raises
        taking.wait_for(1)
        assert until(lambda: failing.failed == 1)
        loop_thread.run(recorder.flush())  # its count event: the same
        taking.wait_for(2)
        assert until(lambda: failing.failed == 2)
        failing.up.set()
        loop_thread.run(recorder.flush())  # before: the count event sent again, to both
        loop_thread.run(recorder.stop())  # an async_http transport's thread has posted all it holds once closed
    runs = [event["run"]["runId"] for event in taking.events]
    assert len(runs) == len(set(runs)) == 2, runs  # before: 3, the count event's run twice
    assert failing.events == []
    assert (recorder.counts["sent"], recorder.counts["failed"]) == (2, 0)  # before: 1 and 2
    said = [r.getMessage() for r in caplog.records if "one of its transports took or queued" in r.getMessage()]
    assert len(said) == 1, said  # said once, not for each event


_QUEUES_THEN_RAISES = "tests.record.test_openlineage_async_http_exact.QueuesThenRaises"


# alone, and first in a fail-fast composite (which raises what it raised, the next transport never tried)
@pytest.mark.parametrize("inside", [False, True])
def test_an_event_an_async_transport_queued_then_raised_on_is_not_sent_again(
    vllm: Any, marquez: tuple[Marquez, str], answers_500: tuple[Failing, str], make_proxy: Any,
    loop_thread: LoopThread, inside: bool,
) -> None:  # fmt: skip
    taking, up = marquez
    failing, down = answers_500
    transport = f'{{type: {_QUEUES_THEN_RAISES}, url: "{up}", retry: {{total: 0}}}}'
    if inside:
        parts = f'{transport}, {{type: http, url: "{down}", retry: {{total: 0}}}}'
        transport = f"{{type: composite, continue_on_failure: false, transports: [{parts}]}}"
    _, upstream = vllm
    proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
    recorder = sink(proxy)
    chat(proxy)  # the new flow's event: queued (its thread posts it), then the emit raised
    taking.wait_for(1)
    loop_thread.run(recorder.flush())  # its count event: the same
    taking.wait_for(2)
    loop_thread.run(recorder.flush())  # before: the count event sent again, queued and posted a second time
    loop_thread.run(recorder.stop())  # an async_http transport's thread has posted all it holds once closed
    runs = [event["run"]["runId"] for event in taking.events]
    assert len(runs) == len(set(runs)) == 2, runs  # before: 3, the count event's run twice
    assert failing.events == []
    assert (recorder.counts["sent"], recorder.counts["failed"]) == (2, 0)  # before: 0 and 2 (the second flush's too)


@pytest.mark.parametrize("first", ["http", "async_http"])
def test_a_later_transport_of_a_fail_fast_composite_that_keeps_failing_is_an_outage(
    vllm: Any, marquez: tuple[Marquez, str], answers_500: tuple[Failing, str], make_proxy: Any,
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, first: str,
) -> None:  # fmt: skip
    """Before 2026-12-05 the events it failed were counted sent (the first took them) and said once for the process's
    life: `outages_total` stayed 0 while its backend was down, and one that came back and went down again was unsaid."""
    taking, up = marquez
    failing, down = answers_500
    parts = [f'{{type: {first}, url: "{up}"}}', f'{{type: http, url: "{down}", retry: {{total: 0}}}}']
    proxy, recorder = composite(make_proxy, vllm, parts, FAIL_FAST)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the new flow's event: the first takes it, the second fails it
        loop_thread.run(recorder.flush())  # its count event: the same
        taking.wait_for(2)
        assert until(lambda: failing.failed == 2)
        assert metric(proxy, OUTAGES) == 1  # before: 0
        failing.up.set()
        chat(proxy)
        loop_thread.run(recorder.flush())  # taken by both: the outage ends
        assert until(lambda: len(failing.events) == 1)
        failing.up.clear()
        chat(proxy)
        loop_thread.run(recorder.flush())  # failed by the second again: a new outage
        assert until(lambda: failing.failed == 3)
        assert metric(proxy, OUTAGES) == 2  # before: 0
        loop_thread.run(recorder.stop())
    said = [r.getMessage() for r in caplog.records if "counted in outages_total" in r.getMessage()]
    assert len(said) == 2, said  # once an outage, not an event
    assert any("take events again" in r.getMessage() for r in caplog.records)
    assert recorder.counts["failed"] == 0  # (the first took each: not sent again)


def test_an_outage_of_every_transport_then_of_a_later_one_alone_is_one_outage(
    vllm: Any, failing: tuple[Failing, str], answers_500: tuple[Failing, str], make_proxy: Any,
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Both backends down, then the first back while the second stays down: one outage, said ended once both take
    events. Before 2026-12-05 (9b8fa0c) the first's return ended it ('takes events again', while the second was down)
    and began another, counted twice in `outages_total`."""
    first, first_url = failing
    second, second_url = answers_500
    once = "retry: {total: 0}"
    parts = [f'{{type: http, url: "{first_url}", {once}}}', f'{{type: http, url: "{second_url}", {once}}}']
    proxy, recorder = composite(make_proxy, vllm, parts, FAIL_FAST)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the new flow's event: the first fails it (the composite stops there), kept to be sent again
        assert until(lambda: first.failed == 1)
        assert until(lambda: recorder.counts["failed"] == 1)
        first.up.set()
        loop_thread.run(recorder.flush())  # sent again: the first takes it, the second fails it
        first.wait_for(1)
        assert until(lambda: second.failed == 1)
        second.up.set()
        chat(proxy)
        loop_thread.run(recorder.flush())  # taken by both: the outage ends
        assert until(lambda: len(second.events) == 1)
        loop_thread.run(recorder.stop())
    assert metric(proxy, OUTAGES) == 1  # before: 2
    said = [r.getMessage() for r in caplog.records]
    ended = [m for m in said if "again" in m and "take" in m and "not sent again" not in m]
    assert len(ended) == 1 and "all the transports" in ended[0], said  # before: 'takes events again' while down too


# `continue_on_failure` true, and left out (openlineage-python's default: true); the one that fails first or last
@pytest.mark.parametrize("goes_on", ["continue_on_failure: true, ", ""], ids=["true", "default"])
@pytest.mark.parametrize(("taker", "down_first"), [("http", False), ("async_http", False), ("http", True)])
def test_a_transport_a_composite_goes_on_past_that_keeps_failing_is_an_outage(
    vllm: Any, marquez: tuple[Marquez, str], answers_500: tuple[Failing, str], make_proxy: Any,
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, goes_on: str, taker: str, down_first: bool,
) -> None:  # fmt: skip
    """A composite that goes on past a transport failing an event (`continue_on_failure: true`) logs it and returns,
    another having taken it: before 2026-12-05 the proxy counted no outage (`outages_total` 0, no WARNING of its own)
    while that one's backend failed every event. Now one outage, as in a fail-fast composite: said once, ended when all
    take an event, a new one when it fails again."""
    taking, up = marquez
    failing, down = answers_500
    parts = [f'{{type: {taker}, url: "{up}"}}', f'{{type: http, url: "{down}", retry: {{total: 0}}}}']
    if down_first:
        parts.reverse()
    proxy, recorder = composite(make_proxy, vllm, parts, goes_on)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the new flow's event: one takes it, the other fails it, the composite returns
        loop_thread.run(recorder.flush())  # its count event: the same
        taking.wait_for(2)
        assert until(lambda: failing.failed == 2)
        assert until(lambda: metric(proxy, OUTAGES) == 1)  # before: 0
        failing.up.set()
        chat(proxy)
        loop_thread.run(recorder.flush())  # taken by both: the outage ends
        assert until(lambda: len(failing.events) == 1)
        failing.up.clear()
        chat(proxy)
        loop_thread.run(recorder.flush())  # failed by it again: a new outage
        assert until(lambda: failing.failed == 3)
        assert until(lambda: metric(proxy, OUTAGES) == 2)  # before: 0
        loop_thread.run(recorder.stop())
    said = [r.getMessage() for r in caplog.records if "counted in outages_total" in r.getMessage()]
    assert len(said) == 2, said  # once an outage, not an event
    assert any("take events again" in r.getMessage() for r in caplog.records)
    assert recorder.counts["failed"] == 0  # (another took each: not sent again, as openlineage-python does not)
