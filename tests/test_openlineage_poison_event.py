"""One count event an OpenLineage backend fails every time, for what is in it, held back every later count for as long
as the process ran: a failed count is sent again first, and while the first of them fails nothing later is sent.
Older Marquez keeps a dataset's and a job's name in VARCHAR(255) and answered 500 to an event whose name is longer (a
flow of many labels: the input dataset is named after the label set), until the names were cut to NAME_MAX; the
stand-in here does the same, behind a narrower column (a backend that stores less, or fails an event for anything
else in it, every time). Once the first
event has failed SET_ASIDE_FAILURES times and the backend takes another, the first is set aside (dropped, counted,
logged once) and the other flows' counts go out; a backend that fails every event keeps them all, in order."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.record.openlineage import SET_ASIDE_FAILURES
from tests.harness import LoopThread, start_app
from tests.record.test_openlineage import Marquez, config, metric, sink
from tests.servers.vllm_like import SERVED

LABELS = ",".join(f"l{n:02d}-" + "x" * 40 for n in range(8))  # 359 characters: a dataset name past VARCHAR(64)
NAME_COLUMN = 255  # older Marquez: datasets.name and jobs.name VARCHAR(255)
NARROWER = 64  # a backend's narrower column: the names cut to NAME_MAX (255) are past it


class NarrowMarquez(Marquez):
    """Marquez's stand-in as older Marquez stores an event: 500 (PostgreSQL's `value too long for type character
    varying(255)`) for a job or dataset name past `name_column` characters; `down` fails every event."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.name_column = NAME_COLUMN
        self.shed: set[str] = set()  # input dataset names answered 429 (a backend shedding load), whatever else

    async def _lineage(self, request: web.Request) -> web.Response:
        event = orjson.loads(await request.read())
        names = [event["job"]["name"]] + [d["name"] for d in event.get("inputs", []) + event.get("outputs", [])]
        if any(d["name"] in self.shed for d in event.get("inputs", [])):
            return web.Response(status=429, text="Too Many Requests")
        if self.down or any(len(name) > self.name_column for name in names):
            text = f"ERROR: value too long for type character varying({self.name_column})"
            return web.Response(status=500, text=text)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        return web.Response(status=201)


@pytest.fixture
def narrow(loop_thread: LoopThread) -> Iterator[tuple[NarrowMarquez, str]]:
    server = NarrowMarquez()
    runner, port = loop_thread.run(start_app(server.app()))
    yield server, f"http://127.0.0.1:{port}"
    loop_thread.run(runner.cleanup())


def proxy_for(make_proxy: Any, upstream: str, url: str) -> Any:
    # the http transport as `url:` builds it, without urllib3's own retries of a 500 (5, over ~9 s): the
    # proxy's retries are what is tested
    transport = f'{{type: http, url: "{url}", endpoint: api/v1/lineage, retry: {{total: 0}}}}'
    return make_proxy(config(f"{{transport: {transport}, snapshot_interval_s: 600}}").replace(
        "callers:", "policy: {anonymous: allow, default_purpose: assistant}\ncallers:"), UPSTREAM=upstream)  # fmt: skip


def call(proxy: Any, labels: str) -> None:
    headers = {"x-data-labels": labels} if labels else {}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers=headers, timeout=30,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200


def test_an_event_the_backend_always_fails_is_set_aside_and_holds_back_no_other_count(
    vllm: Any, narrow: tuple[NarrowMarquez, str], make_proxy: Any, loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    _, upstream = vllm
    backend, url = narrow
    backend.name_column = NARROWER
    proxy = proxy_for(make_proxy, upstream, url)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        call(proxy, LABELS)
        loop_thread.run(sink(proxy).flush())  # its first event and its count: 500
        call(proxy, "")
        assert backend.wait_for(1)[0]["inputs"][0]["name"] == "(no labels)"  # the plain flow's first event
        for _ in range(SET_ASIDE_FAILURES):  # the wide count sent again with each snapshot, failing each time
            loop_thread.run(sink(proxy).flush())
            call(proxy, "")
        loop_thread.run(sink(proxy).flush())  # waits until all is handed over
    counts = [e["run"]["facets"]["lineageProxy_count"]["count"] for e in backend.events if e["run"]["facets"].get(
        "lineageProxy_count")]  # fmt: skip
    assert sum(counts) == 1 + SET_ASIDE_FAILURES  # the plain flow's calls, every one
    assert all(e["inputs"][0]["name"] == "(no labels)" for e in backend.events)
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="dropped"}') == 1  # the wide count
    aside = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(aside) == 1 and "l00-" in aside[0] and "1 calls" in aside[0], aside


def test_a_backend_that_fails_every_event_loses_none_and_keeps_their_order(
    vllm: Any, narrow: tuple[NarrowMarquez, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    backend, url = narrow
    proxy = proxy_for(make_proxy, upstream, url)
    backend.down = True
    call(proxy, "")
    loop_thread.run(sink(proxy).flush())  # the first flow's count: failed, to be sent again
    call(proxy, "a")
    call(proxy, "b")
    for _ in range(SET_ASIDE_FAILURES + 2):  # more than one event fails past SET_ASIDE_FAILURES: none set aside
        loop_thread.run(sink(proxy).flush())
        call(proxy, "b")
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="dropped"}') == 0
    backend.down = False
    loop_thread.run(sink(proxy).flush())
    counts: dict[str, int] = {}
    for event in backend.events:
        name = event["inputs"][0]["name"]
        counts[name] = counts.get(name, 0) + event["run"]["facets"]["lineageProxy_count"]["count"]
    assert counts == {"(no labels)": 1, "a": 1, "b": 1 + SET_ASIDE_FAILURES + 2}
    assert backend.events[0]["inputs"][0]["name"] == "(no labels)"  # the first to fail goes out first


def test_an_event_a_backend_answers_busy_is_never_set_aside(
    vllm: Any, narrow: tuple[NarrowMarquez, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    """A backend shedding load (429) refuses some events and takes others, whatever is in them: the first in line
    refused so, however often, while another is taken, is its load's, not the event's. It is kept and goes out once
    the backend takes it (set aside before, a good flow's counts were dropped)."""
    _, upstream = vllm
    backend, url = narrow
    proxy = proxy_for(make_proxy, upstream, url)
    backend.shed = {"busy"}
    call(proxy, "busy")
    loop_thread.run(sink(proxy).flush())  # its first event and its count: 429
    for _ in range(SET_ASIDE_FAILURES + 2):  # the busy flow's count first in line, 429 each time; others taken
        call(proxy, "")
        loop_thread.run(sink(proxy).flush())
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="dropped"}') == 0
    backend.shed = set()
    call(proxy, "")  # the next snapshot: what failed is sent again first
    loop_thread.run(sink(proxy).flush())
    counts: dict[str, int] = {}
    for event in backend.events:
        count = event["run"]["facets"].get("lineageProxy_count")
        if count:
            name = event["inputs"][0]["name"]
            counts[name] = counts.get(name, 0) + count["count"]
    assert counts == {"busy": 1, "(no labels)": SET_ASIDE_FAILURES + 3}
