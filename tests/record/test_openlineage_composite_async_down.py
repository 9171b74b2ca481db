"""An `async_http` transport inside a composite one that goes on past a failure (`continue_on_failure: true`,
openlineage-python's default), whose backend is down while another transport takes each event: its emit only queues the
event, its own thread posts it and gives it up later (`_mark_failed`, which the proxy watches to count its events). The
proxy counted each such event sent (another took it) and no outage: `outages_total` 0, no WARNING of its own, while that
backend failed every event. Now one outage, as for a composite's `http` transport that fails (helper records2): said
once, ended when every transport takes an event (the async one's copy reported sent), a new one when it fails again.
Real backends on 127.0.0.1 (aiohttp), openlineage-python's own composite, http and async_http transports."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.harness import LoopThread
from tests.held import until
from tests.record.test_openlineage import Marquez, chat, marquez, metric
from tests.record.test_openlineage_async_http_counts import answers_500
from tests.record.test_openlineage_composite_once import OUTAGES, composite
from tests.test_openlineage_single_try import Failing, failing

__all__ = ["answers_500", "failing", "marquez"]  # the fixtures, imported


@pytest.mark.parametrize("goes_on", ["continue_on_failure: true, ", ""], ids=["true", "default"])
@pytest.mark.parametrize("down_first", [False, True], ids=["down-last", "down-first"])
def test_an_async_transport_a_composite_goes_on_past_that_keeps_failing_is_an_outage(
    vllm: Any, marquez: tuple[Marquez, str], answers_500: tuple[Failing, str], make_proxy: Any,
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, goes_on: str, down_first: bool,
) -> None:  # fmt: skip
    taking, up = marquez
    failing, down = answers_500
    parts = [f'{{type: http, url: "{up}"}}', f'{{type: async_http, url: "{down}", retry: {{total: 0}}}}']
    if down_first:
        parts.reverse()
    proxy, recorder = composite(make_proxy, vllm, parts, goes_on)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the new flow's event: http takes it, async_http queues it, its thread then gives it up
        loop_thread.run(recorder.flush())  # its count event: the same
        taking.wait_for(2)
        assert until(lambda: failing.failed == 2)
        assert until(lambda: recorder.counts["sent"] == 2)  # (counted once both copies are reported)
        assert metric(proxy, OUTAGES) == 1  # before: 0
        failing.up.set()
        chat(proxy)
        loop_thread.run(recorder.flush())  # taken by both: the outage ends
        assert until(lambda: len(failing.events) == 1)
        assert until(lambda: recorder.counts["sent"] == 3)
        failing.up.clear()
        chat(proxy)
        loop_thread.run(recorder.flush())  # failed by it again: a new outage
        assert until(lambda: failing.failed == 3)
        assert until(lambda: recorder.counts["sent"] == 4)
        assert metric(proxy, OUTAGES) == 2  # before: 0
        loop_thread.run(recorder.stop())
    said = [r.getMessage() for r in caplog.records if "counted in outages_total" in r.getMessage()]
    assert len(said) == 2, said  # once an outage, not an event
    assert any("take events again" in r.getMessage() for r in caplog.records)
    assert recorder.counts["failed"] == 0  # (http took each: not sent again, as openlineage-python does not)


def test_an_async_transports_outage_begun_inside_an_http_ones_is_not_said_ended_when_that_one_recovers(
    vllm: Any, marquez: tuple[Marquez, str], answers_500: tuple[Failing, str], failing: tuple[Failing, str],
    make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """An http transport's backend goes down (an outage), then an async_http one's, then the http one's comes back while
    the async one still gives its copies up: the outage goes on, one, until that one's copy is reported sent. Before
    2026-12-05 (helper revrecords4) the http one's recovery ended it ('all the transports ... take events again', said
    while the async one failed each event) and the async one's next given-up copy counted a second outage."""
    taking, up = marquez
    sync_down, sync_url = failing
    async_down, async_url = answers_500
    async_down.up.set()  # (up at first)
    parts = [f'{{type: http, url: "{up}"}}', f'{{type: http, url: "{sync_url}", retry: {{total: 0}}}}',
             f'{{type: async_http, url: "{async_url}", retry: {{total: 0}}}}']  # fmt: skip
    proxy, recorder = composite(make_proxy, vllm, parts)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the http one's backend down: an outage
        assert until(lambda: recorder.counts["sent"] == 1)
        assert metric(proxy, OUTAGES) == 1
        async_down.up.clear()  # the async one's too
        loop_thread.run(recorder.flush())
        assert until(lambda: async_down.failed == 1)
        assert until(lambda: recorder.counts["sent"] == 2)
        sync_down.up.set()  # the http one's back, the async one's still down
        chat(proxy)
        loop_thread.run(recorder.flush())
        assert until(lambda: async_down.failed == 2)
        assert until(lambda: recorder.counts["sent"] == 3)
        assert metric(proxy, OUTAGES) == 1  # before: 2
        assert not any("take events again" in r.getMessage() for r in caplog.records)  # before: said
        async_down.up.set()  # all back: the outage ends
        chat(proxy)
        loop_thread.run(recorder.flush())
        assert until(lambda: recorder.counts["sent"] == 4)
        assert until(lambda: any("take events again" in r.getMessage() for r in caplog.records))
        assert metric(proxy, OUTAGES) == 1
        loop_thread.run(recorder.stop())
    assert recorder.counts["failed"] == 0


def test_an_async_transports_outage_that_becomes_one_of_them_all_is_counted_once(
    vllm: Any, marquez: tuple[Marquez, str], answers_500: tuple[Failing, str], failing: tuple[Failing, str],
    make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """An async_http transport's backend down while an http one takes each event (an outage), then the http one's too:
    the event is failed, and the outage, now of them all, is the same one (as when a composite's http transports fail
    one after the other, `_emit`), not a second counted. Before 2026-12-05 (helper revrecords4) `_settle` began another."""
    sync_down, sync_url = failing
    async_down, async_url = answers_500
    sync_down.up.set()  # (up at first)
    parts = [f'{{type: http, url: "{sync_url}", retry: {{total: 0}}}}',
             f'{{type: async_http, url: "{async_url}", retry: {{total: 0}}}}']  # fmt: skip
    proxy, recorder = composite(make_proxy, vllm, parts)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the async one's backend down, the http one takes it: an outage
        assert until(lambda: async_down.failed == 1)
        assert until(lambda: recorder.counts["sent"] == 1)
        assert metric(proxy, OUTAGES) == 1
        sync_down.up.clear()  # the http one's too: the event failed, the same outage
        loop_thread.run(recorder.flush())
        assert until(lambda: async_down.failed == 2 and sync_down.failed == 1)
        assert until(lambda: recorder.counts["failed"] == 1)
        assert metric(proxy, OUTAGES) == 1  # before: 2
        sync_down.up.set()  # the http one's back, the async one's still down: the same outage goes on
        chat(proxy)
        loop_thread.run(recorder.flush())
        assert until(lambda: async_down.failed == 3)
        assert until(lambda: recorder.counts["sent"] == 2)
        assert metric(proxy, OUTAGES) == 1
        loop_thread.run(recorder.stop())
