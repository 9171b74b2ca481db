"""With the plain `lineage.openlineage.url:` setting, openlineage-python's http transport retried an event the
backend answered 500 to inside one emit, five times with backoff (~9 s), on top of the proxy's own retry at the
next snapshot: the sender thread was held that long per event, and a shutdown (which waits 5 s) said events and
counts were not sent. The transport built from `url:` tries each event once; the proxy sends it again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from proxy.config import parse
from tests.harness import LoopThread, start_app
from tests.record.test_openlineage import Marquez, chat, check_run_event, config, counts_by_flow, metric, sink


class Failing(Marquez):
    """Answers 500 (and keeps nothing) until `up` is set, then takes events as Marquez does."""

    def __init__(self) -> None:
        super().__init__()
        self.up = threading.Event()
        self.failed = 0  # requests answered 500

    async def _lineage(self, request: web.Request) -> web.Response:
        if not self.up.is_set():
            await request.read()
            with self._cond:
                self.failed += 1
            return web.Response(status=500)
        return await super()._lineage(request)


@pytest.fixture
def failing(loop_thread: LoopThread) -> Iterator[tuple[Failing, str]]:
    server = Failing()
    runner, port = loop_thread.run(start_app(server.app()))
    yield server, f"http://127.0.0.1:{port}"
    loop_thread.run(runner.cleanup())


def test_an_event_a_backend_fails_is_tried_once_and_the_proxy_sends_it_again_by_shutdown(
    vllm: Any, failing: tuple[Failing, str], make_proxy: Any, loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    _, upstream = vllm
    backend, url = failing
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600}}'), UPSTREAM=upstream)
    chat(proxy)
    loop_thread.run(sink(proxy).flush())  # the new flow's event, then its count: each answered 500
    assert backend.failed == 2  # one request per event (openlineage-python's retries made it 12)
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="failed"}') == 2
    backend.up.set()
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(sink(proxy).stop())  # the count event, sent again at shutdown
    (counted,) = backend.wait_for(1)
    assert counted["run"]["facets"]["lineageProxy_count"]["count"] == 1
    assert counted["job"]["name"] and counted["inputs"][0]["name"] == "user-interaction"
    assert [r.getMessage() for r in caplog.records if "shutdown" in r.getMessage()] == []


def test_a_transport_of_one_s_own_keeps_its_retry_settings() -> None:
    base = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: m, url: "http://127.0.0.1:8000"}]
routes: [{model: "*", upstream: m}]
lineage:
  store: null
  openlineage: OL
"""
    own = parse(base.replace("OL", '{transport: {type: http, url: "http://127.0.0.1:5000", retry: {total: 3}}}'))
    assert own.lineage.openlineage is not None
    assert own.lineage.openlineage.transport["retry"] == {"total": 3}
    plain = parse(base.replace("OL", '{url: "http://127.0.0.1:5000"}'))
    assert plain.lineage.openlineage is not None
    assert plain.lineage.openlineage.transport["retry"]["total"] == 0
    # an http transport whose config says nothing of retries: one try too (openlineage-python's default held ~9 s)
    unsaid = parse(base.replace("OL", '{transport: {type: http, url: "http://127.0.0.1:5000"}}'))
    assert unsaid.lineage.openlineage is not None
    assert unsaid.lineage.openlineage.transport["retry"] == {"total": 0, "status_forcelist": []}


def test_an_http_transport_that_says_nothing_of_retries_tries_each_event_once(
    vllm: Any, failing: tuple[Failing, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    backend, url = failing
    transport = f'{{type: http, url: "{url}", endpoint: api/v1/lineage}}'
    proxy = make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}"), UPSTREAM=upstream)
    chat(proxy)
    loop_thread.run(sink(proxy).flush())  # the new flow's event, then its count: each answered 500
    assert backend.failed == 2  # one request per event (openlineage-python's retries made it 12)


def test_flows_whose_first_events_failed_reach_the_backend_whole_once_it_is_back(
    vllm: Any, failing: tuple[Failing, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    """A new flow's first event that the backend fails is not sent again (it is counted failed): what the backend
    shows of the flow comes from its count events, each a self-contained COMPLETE run of the same job with the same
    datasets and facets (no START to miss: no event of the proxy's is one). So every flow reaches the backend once
    it is back, with all its calls: here two flows whose first events and first counts all failed."""
    _, upstream = vllm
    backend, url = failing
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600}}'), UPSTREAM=upstream)
    chat(proxy)
    chat(proxy, **{"x-data-labels": "health"})
    loop_thread.run(sink(proxy).flush())  # two new flows' events, then their counts: all failed
    chat(proxy)
    loop_thread.run(sink(proxy).flush())  # the first count, sent again, fails: the new one is held
    assert backend.failed == 5
    backend.up.set()
    chat(proxy)
    loop_thread.run(sink(proxy).flush())  # the two counts that failed, then the calls held, merged
    events = backend.wait_for(3)
    for event in events:
        check_run_event(event)
        assert event["eventType"] == "COMPLETE"
        assert event["job"] == events[0]["job"]
        assert [output["name"] for output in event["outputs"]] == ["glasses-app/assistant"]
        assert event["run"]["facets"]["lineageProxy_purpose"]["caller"] == "glasses-app"
    assert counts_by_flow(events) == {"user-interaction": 3, "health,user-interaction": 1}
