"""openlineage-python's async_http transport takes an event onto its own queue and returns: its emit never fails, a
worker thread posts the event later and counts what became of it (`get_stats()`: success, failed, pending). The
proxy took emit's return for the backend's word: with the backend answering 500, or gone, every event was counted
`sent`, none failed, no outage. Now the events of such a transport are counted as its worker reports each (since
2026-12-05; from its stats before): sent once the backend took them, failed once the transport gave up on them (its
own retries), and an outage when it fails them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import LoopThread, dead_port, start_app
from tests.held import until
from tests.record.test_openlineage import chat, config, metric, sink
from tests.test_openlineage_single_try import Failing

SENT = 'lineage_proxy_openlineage_events_total{result="sent"}'
FAILED = 'lineage_proxy_openlineage_events_total{result="failed"}'
OUTAGES = "lineage_proxy_openlineage_outages_total"


@pytest.fixture
def answers_500(loop_thread: LoopThread) -> Iterator[tuple[Failing, str]]:
    server = Failing()
    runner, port = loop_thread.run(start_app(server.app()))
    yield server, f"http://127.0.0.1:{port}"
    loop_thread.run(runner.cleanup())


def test_async_http_events_a_backend_answers_500_are_counted_failed_then_sent_once_it_takes_them(
    vllm: Any, answers_500: tuple[Failing, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    backend, url = answers_500
    transport = f'{{type: async_http, url: "{url}", retry: {{total: 0}}}}'
    proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
    chat(proxy)  # the new flow's event
    assert until(lambda: backend.failed == 1)
    assert until(lambda: metric(proxy, FAILED) == 1), proxy.process.metrics_text()
    assert (metric(proxy, SENT), metric(proxy, OUTAGES)) == (0, 1)  # was: sent 1, failed 0, no outage

    backend.up.set()
    chat(proxy, **{"x-data-labels": "health"})  # another new flow: the backend takes it
    (taken,) = backend.wait_for(1)
    assert taken["inputs"][0]["name"] == "health,user-interaction"
    assert until(lambda: metric(proxy, SENT) == 1), proxy.process.metrics_text()
    loop_thread.run(sink(proxy).stop())  # the counts of both flows: the backend takes them
    assert len(backend.wait_for(3)) == 3
    assert (metric(proxy, SENT), metric(proxy, FAILED), metric(proxy, OUTAGES)) == (3, 1, 1)


def test_async_http_events_to_a_dead_backend_are_counted_failed(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    transport = f'{{type: async_http, url: "http://127.0.0.1:{dead_port()}", retry: {{total: 0}}}}'
    proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
    chat(proxy)
    assert until(lambda: metric(proxy, FAILED) == 1), proxy.process.metrics_text()
    assert (metric(proxy, SENT), metric(proxy, OUTAGES)) == (0, 1)
    loop_thread.run(sink(proxy).stop())  # its count event: failed too
    assert (metric(proxy, SENT), metric(proxy, FAILED)) == (0, 2)


def test_async_http_events_a_backend_fails_are_counted_and_said_with_no_scrape_nor_event_after(
    vllm: Any, answers_500: tuple[Failing, str], make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The transport's stats were read only as the sender handed it another event, at a /metrics scrape and at its
    close: a proxy no one scrapes, idle after the backend failed an event, neither counted it nor said the outage
    until its next event, or its stop. Each is counted as the transport's worker reports it (`_reported`)."""
    _, upstream = vllm
    backend, url = answers_500
    transport = f'{{type: async_http, url: "{url}", retry: {{total: 0}}}}'
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
        chat(proxy)  # the new flow's event: the backend fails it
        assert until(lambda: backend.failed == 1)
        recorder = sink(proxy)
        assert until(lambda: recorder.counts["failed"] == 1), recorder.counts["failed"]  # (not without a scrape)
        assert any("cannot send events to async_http " in r.getMessage() for r in caplog.records)
    assert (recorder.counts["sent"], recorder.counts["outages"]) == (0, 1)
