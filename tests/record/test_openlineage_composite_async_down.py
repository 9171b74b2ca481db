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
from tests.record.test_openlineage import Marquez, chat, config, marquez, metric, sink
from tests.record.test_openlineage_async_http_counts import answers_500
from tests.test_openlineage_single_try import Failing

__all__ = ["answers_500", "marquez"]  # the fixtures, imported


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
    transport = f"{{type: composite, {goes_on}transports: [{', '.join(parts)}]}}"
    _, upstream = vllm
    proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
    recorder = sink(proxy)
    outages = "lineage_proxy_openlineage_outages_total"
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        chat(proxy)  # the new flow's event: http takes it, async_http queues it, its thread then gives it up
        loop_thread.run(recorder.flush())  # its count event: the same
        taking.wait_for(2)
        assert until(lambda: failing.failed == 2)
        assert until(lambda: recorder.counts["sent"] == 2)  # (counted once both copies are reported)
        assert metric(proxy, outages) == 1  # before: 0
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
        assert metric(proxy, outages) == 2  # before: 0
        loop_thread.run(recorder.stop())
    said = [r.getMessage() for r in caplog.records if "counted in outages_total" in r.getMessage()]
    assert len(said) == 2, said  # once an outage, not an event
    assert any("take events again" in r.getMessage() for r in caplog.records)
    assert recorder.counts["failed"] == 0  # (http took each: not sent again, as openlineage-python does not)
