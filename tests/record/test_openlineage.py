"""OpenLineage export end to end: real calls through the proxy (openai SDK) reach a stand-in for Marquez's
`/api/v1/lineage` as RunEvents that satisfy the OpenLineage RunEvent schema; a dead or hung backend
never slows a call, is logged once and counted; the file transport works by configuration alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attr
import openai
import pytest
from aiohttp import web
from openlineage.client.event_v2 import RunEvent
from openlineage.client.transport import Config, Transport

from proxy.record import openlineage
from proxy.record.openlineage import CALLERS_NAMESPACE, LABELS_NAMESPACE, OpenLineageRecorder
from tests.conftest import KEYS, sha
from tests.harness import LoopThread, ProxyHandle, dead_port, start_app
from tests.held import until
from tests.servers.vllm_like import ROOT, SERVED

MESSAGES = [{"role": "user", "content": "hello"}]
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
EVENT_TYPES = {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"}


def config(openlineage: str) -> str:
    return f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: llm}}]
callers:
  - {{name: glasses-app, api_key_sha256: {sha(KEYS["glasses"])}, labels: [user-interaction],
     default_purpose: assistant, purposes: [assistant]}}
zones:
  - {{name: interaction-data, labels: [user-interaction], allow_purposes: [assistant]}}
lineage:
  store: ${{STORE}}
  openlineage: {openlineage}
"""


class Marquez:
    """Stands in for Marquez's lineage endpoint: keeps every event; `hold` makes it hang until released."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.came = 0  # the requests that came, held ones too
        self._cond = threading.Condition()
        self.hold: asyncio.Event | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/lineage", self._lineage)
        return app

    async def _lineage(self, request: web.Request) -> web.Response:
        with self._cond:
            self.came += 1
            self._cond.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        event = await request.json()
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        return web.Response(status=201)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.events) >= count, timeout), self.events
            return list(self.events)

    def wait_came(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.came >= count, timeout), self.came


@pytest.fixture
def marquez(loop_thread: LoopThread) -> Iterator[tuple[Marquez, str]]:
    server = Marquez()
    runner, port = loop_thread.run(start_app(server.app()))
    yield server, f"http://127.0.0.1:{port}"
    if server.hold is not None:
        loop_thread.loop.call_soon_threadsafe(server.hold.set)
    loop_thread.run(runner.cleanup())


def check_run_event(event: dict[str, Any]) -> None:
    """The OpenLineage 2-0-2 RunEvent schema's required fields and shapes, and every facet's base fields.
    (openlineage-python does not ship the JSON schema, so its requirements are written out here.)"""
    assert event["schemaURL"] == RUN_EVENT_SCHEMA
    assert event["eventType"] in EVENT_TYPES
    assert "T" in event["eventTime"] and event["eventTime"].endswith("Z")
    assert event["producer"].startswith("https://")
    assert uuid.UUID(event["run"]["runId"]).version == 7
    assert event["job"]["namespace"] and event["job"]["name"]
    facets: list[dict[str, Any]] = [
        *event["run"]["facets"].values(),
        *event["job"]["facets"].values(),
    ]
    for dataset in [*event["inputs"], *event["outputs"]]:
        assert dataset["namespace"] and dataset["name"]
        facets.extend(dataset["facets"].values())
    for facet in facets:
        assert facet["_producer"].startswith("https://"), facet
        assert facet["_schemaURL"].startswith("https://") and "#/$defs/" in facet["_schemaURL"], facet
    for name, facet in event["run"]["facets"].items():
        if name.startswith("lineageProxy_"):
            assert facet["_schemaURL"].endswith("/proxy/record/openlineage_facets.json#/$defs/" + type_of(name))
            # the raw file, which is JSON: GitHub's blob/ page for it is HTML, no schema to a consumer fetching it
            assert facet["_schemaURL"].startswith("https://raw.githubusercontent.com/"), facet["_schemaURL"]
    job_type = event["job"]["facets"]["jobType"]
    assert (job_type["processingType"], job_type["integration"], job_type["jobType"]) == (
        "SERVICE",
        "LINEAGE-PROXY",
        "INFERENCE",
    )


def type_of(facet_name: str) -> str:
    return {
        "lineageProxy_purpose": "PurposeRunFacet",
        "lineageProxy_decision": "DecisionRunFacet",
        "lineageProxy_zones": "ZonesRunFacet",
        "lineageProxy_count": "CountRunFacet",
        "lineageProxy_sidecar": "SidecarRunFacet",
    }[facet_name]


def sink(proxy: ProxyHandle) -> OpenLineageRecorder:
    found = proxy.process.runtime.sinks.get("openlineage")
    assert isinstance(found, OpenLineageRecorder)
    return found


def chat(proxy: ProxyHandle, **headers: str) -> None:
    client = openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key=KEYS["glasses"], max_retries=0, timeout=10, default_headers=headers
    )
    client.chat.completions.create(model=SERVED, messages=MESSAGES)  # type: ignore[arg-type]


def metric(proxy: ProxyHandle, line_start: str) -> float:
    for line in proxy.process.metrics_text().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start} in /metrics")


def test_each_new_flow_then_its_counts_reach_marquez(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    backend, url = marquez
    proxy = make_proxy(config(f'{{url: "{url}", namespace: prod-eu, snapshot_interval_s: 600}}'), UPSTREAM=upstream)
    for _ in range(3):
        chat(proxy)
    chat(proxy, **{"x-data-labels": "health"})

    new = backend.wait_for(2)  # one event per new flow, not per call
    assert len(new) == 2
    for event in new:
        check_run_event(event)
        assert event["eventType"] == "COMPLETE"
        assert event["job"]["namespace"] == "prod-eu" and event["job"]["name"].startswith(ROOT)
        assert event["outputs"][0]["namespace"] == CALLERS_NAMESPACE
        assert event["outputs"][0]["name"] == "glasses-app/assistant"
        assert "lineageProxy_count" not in event["run"]["facets"]
        assert event["job"]["facets"]["jobType"]["emissionPattern"]["eventTrigger"] == "EVENT_BASED"
    inputs = {event["inputs"][0]["name"] for event in new}
    assert inputs == {"user-interaction", "health,user-interaction"}
    assert {event["inputs"][0]["namespace"] for event in new} == {LABELS_NAMESPACE}
    first = next(event for event in new if event["inputs"][0]["name"] == "user-interaction")
    assert first["run"]["facets"]["lineageProxy_purpose"]["purpose"] == "assistant"
    assert first["run"]["facets"]["lineageProxy_decision"]["decision"] == "allow"
    assert first["run"]["facets"]["lineageProxy_zones"]["zones"] == ["interaction-data"]
    assert first["inputs"][0]["facets"]["lineageProxy_labels"]["labels"] == ["user-interaction"]

    loop_thread.run(sink(proxy).flush())  # what the snapshot timer does every snapshot_interval_s
    snapshots = backend.wait_for(4)[2:]
    counts = {e["inputs"][0]["name"]: e["run"]["facets"]["lineageProxy_count"]["count"] for e in snapshots}
    assert counts == {"user-interaction": 3, "health,user-interaction": 1}
    for event in snapshots:
        check_run_event(event)
        window = event["run"]["facets"]["nominalTime"]
        assert window["nominalStartTime"] <= window["nominalEndTime"]
        assert event["job"]["facets"]["jobType"]["emissionPattern"]["eventTrigger"] == "PERIODIC"

    loop_thread.run(sink(proxy).flush())  # nothing changed: no snapshot event
    assert len(backend.events) == 4
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="sent"}') == 4


def test_a_denied_flow_has_no_output(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    backend, url = marquez
    proxy = make_proxy(config(f'{{url: "{url}"}}'), UPSTREAM=upstream)
    with pytest.raises(openai.PermissionDeniedError):
        chat(proxy, **{"x-purpose": "ads"})
    (event,) = backend.wait_for(1)
    check_run_event(event)
    assert event["outputs"] == [] and event["job"]["name"] == "(policy boundary)"
    decision = event["run"]["facets"]["lineageProxy_decision"]
    assert decision["decision"] == "deny" and decision["rule"] and "ads" in decision["reason"]


def test_each_kind_of_denial_of_one_flow_is_a_flow_of_its_own(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any
) -> None:
    """The rule is part of the flow's key: the route's refusal then the zone's, for one caller, purpose and
    labels, go out as two flows, each with its rule (one flow kept the first rule and hid the second)."""
    _, upstream = vllm
    backend, url = marquez
    text = f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "${{UPSTREAM}}"}}]
routes: [{{model: restricted, upstream: llm, purposes: [assistant]}}, {{model: "*", upstream: llm}}]
callers: [{{name: ads-ranker, api_key_sha256: {sha(KEYS["ads"])}, purposes: [ads]}}]
zones: [{{name: interaction-data, labels: [user-interaction], allow_purposes: [assistant]}}]
lineage: {{store: "${{STORE}}", openlineage: {{url: "{url}"}}}}
"""
    proxy = make_proxy(text, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["ads"], max_retries=0, timeout=10,
                           default_headers={"x-purpose": "ads", "x-data-labels": "user-interaction"})  # fmt: skip
    for model in ("restricted", SERVED, SERVED):
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    events = backend.wait_for(2)
    assert len(events) == 2
    rules = [event["run"]["facets"]["lineageProxy_decision"]["rule"] for event in events]
    assert rules == ["route:restricted", "zone:interaction-data"]
    assert {(event["job"]["name"], event["inputs"][0]["name"]) for event in events} == {
        ("(policy boundary)", "user-interaction")
    }


def test_a_dead_backend_is_logged_once_counted_and_never_slows_a_call(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    _, upstream = vllm
    dead = f"http://127.0.0.1:{dead_port()}"
    transport = f'{{type: http, url: "{dead}", endpoint: api/v1/lineage, retry: {{total: 0}}}}'
    proxy = make_proxy(config(f"{{transport: {transport}}}"), UPSTREAM=upstream)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        for index in range(5):
            chat(proxy, **{"x-data-labels": f"set-{index}"})  # five new flows: five events to lose
        loop_thread.run(sink(proxy).flush())
    outage_lines = [r for r in caplog.records if "cannot send events" in r.getMessage()]
    assert len(outage_lines) == 1 and dead in outage_lines[0].getMessage()
    assert metric(proxy, "lineage_proxy_openlineage_outages_total") == 1
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="failed"}') == 10  # 5 new + 5 counted
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="sent"}') == 0


def test_a_hung_backend_fills_the_queue_drops_are_counted_and_the_counts_catch_up(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    backend, url = marquez

    async def hold() -> asyncio.Event:
        return asyncio.Event()

    backend.hold = loop_thread.run(hold())
    # the held send outlasts the calls however slow the machine (the default 5 s timeout did not, on a busy CI
    # host: the sender timed out and took a fourth event)
    transport = f'{{type: http, url: "{url}", timeout: 120}}'
    proxy = make_proxy(
        config(f"{{transport: {transport}, queue_size: 2, snapshot_interval_s: 600}}"), UPSTREAM=upstream
    )
    chat(proxy, **{"x-data-labels": "set-0"})
    # the sender is in the first new flow's request, the backend holding it: its queue is empty. (Not waited for, the
    # queue held two or three events as the machine went: five or six dropped.)
    backend.wait_came(1)
    for index in range(1, 8):
        chat(proxy, **{"x-data-labels": f"set-{index}"})
    assert backend.events == []  # every call ended while the sender is stuck in that request (no wall clock timed)
    # two queued, five dropped: counted by the sink on the loop's turn after each reply, not by the time the client
    # has it (read at once from this thread, the last ones were not counted yet at times)
    assert until(lambda: metric(proxy, 'lineage_proxy_openlineage_events_total{result="dropped"}') == 5)
    dropped = 5

    assert backend.hold is not None
    loop_thread.loop.call_soon_threadsafe(backend.hold.set)
    loop_thread.run(sink(proxy).flush())
    events = backend.wait_for(int(8 - dropped + 8))
    counted = {e["inputs"][0]["name"] for e in events if "lineageProxy_count" in e["run"]["facets"]}
    assert counted == {f"set-{index},user-interaction" for index in range(8)}  # no flow lost


def test_the_file_transport_by_configuration(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    _, upstream = vllm
    path = tmp_path / "openlineage.jsonl"
    proxy = make_proxy(
        config(f'{{transport: {{type: file, log_file_path: "{path}", append: true}}}}'), UPSTREAM=upstream
    )
    chat(proxy)
    chat(proxy)
    loop_thread.run(sink(proxy).flush())
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(events) == 2  # the new flow, then its count
    for event in events:
        check_run_event(event)
    assert events[1]["run"]["facets"]["lineageProxy_count"]["count"] == 2


@attr.define
class TapConfig(Config):
    tap: str = ""
    refuse: bool = False

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> TapConfig:
        return cls(tap=str(params.get("tap", "")), refuse=bool(params.get("refuse", False)))


class TapTransport(Transport):
    """Your own transport by dotted path, as openlineage-python loads it: keeps the events it is given,
    under its `tap` name, and says when it is closed. `refuse: true` raises while it is built, as a transport
    whose backend refuses its settings does: `lineage-proxy check` only sees the config, which is fine."""

    kind = "tap"
    config_class = TapConfig
    built: ClassVar[dict[str, TapTransport]] = {}

    def __init__(self, config: TapConfig) -> None:
        if config.refuse:
            raise RuntimeError(f"tap {config.tap} cannot be built")
        self.events: list[RunEvent] = []
        self.closed = threading.Event()
        TapTransport.built[config.tap] = self

    def emit(self, event: Any) -> None:
        assert not self.closed.is_set(), "an event after close"
        self.events.append(event)

    def close(self, timeout: float = -1) -> bool:
        self.closed.set()
        return True


def tap(name: str, *, refuse: bool = False) -> str:
    return f"{{transport: {{type: {__name__}.TapTransport, tap: {name}, refuse: {str(refuse).lower()}}}}}"


def counted(events: list[RunEvent]) -> list[tuple[str, int | None]]:
    """(input dataset, snapshot count or None for a new flow's event), in the order sent."""
    found = []
    for event in events:
        count = event.run.facets.get("lineageProxy_count") if event.run.facets else None
        found.append((event.inputs[0].name, getattr(count, "count", None)))
    return found


def test_a_transport_that_cannot_be_built_is_logged_counted_and_calls_go_on(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    """The transport is built on the sender thread, after start: the proxy serves, says once why no
    event goes out, and counts every event it could not send as failed, and the outage."""
    _, upstream = vllm
    name = uuid.uuid4().hex
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.openlineage"):
        proxy = make_proxy(config(tap(name, refuse=True)), UPSTREAM=upstream)
        chat(proxy)
        chat(proxy)
        chat(proxy, **{"x-data-labels": "health"})  # three calls, two new flows
        loop_thread.run(sink(proxy).flush())  # and their two counts: four events, none sent
    assert name not in TapTransport.built
    (line,) = [r for r in caplog.records if "cannot build" in r.getMessage()]
    assert "no events will be sent" in line.getMessage() and "TapTransport" in line.getMessage()
    assert (
        line.exc_info is None and f"tap {name} cannot be built" in line.getMessage()
    )  # no traceback: it may hold the URL
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="failed"}') == 4
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="sent"}') == 0
    assert metric(proxy, "lineage_proxy_openlineage_outages_total") == 1


def test_a_reload_sends_later_flows_to_the_new_transport_and_closes_the_old(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    _, upstream = vllm
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    proxy = make_proxy(config(tap(first)), UPSTREAM=upstream)
    old = sink(proxy)
    chat(proxy)
    chat(proxy)  # counted in the old recorder's window, not yet sent
    path = tmp_path / "reloaded.yaml"
    text = config(tap(second)).replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db"))
    path.write_text(text)

    async def reload() -> bool:
        return proxy.process.reload(str(path))

    assert loop_thread.run(reload())
    assert sink(proxy) is not old
    before = TapTransport.built[first]
    assert before.closed.wait(10)  # the old recorder was stopped: its window went out, then its transport closed
    assert counted(before.events) == [("user-interaction", None), ("user-interaction", 2)]

    chat(proxy, **{"x-data-labels": "health"})
    loop_thread.run(sink(proxy).flush())
    after = TapTransport.built[second]
    assert counted(after.events) == [("health,user-interaction", None), ("health,user-interaction", 1)]
    assert len(before.events) == 2 and not after.closed.is_set()


def test_a_reload_s_new_recorder_counts_on_from_the_events_the_old_one_sent(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """A reload that changes lineage.openlineage replaces the recorder: its counters started again from 0, and
    the events the old one sent as it stopped (its last window's counts) were counted nowhere, so
    lineage_proxy_openlineage_events_total went down. Now the new recorder counts on from the old one's."""
    _, upstream = vllm
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    proxy = make_proxy(config(tap(first)), UPSTREAM=upstream)
    chat(proxy)
    chat(proxy)
    path = tmp_path / "reloaded.yaml"
    text = config(tap(second)).replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db"))
    path.write_text(text)

    async def reload() -> bool:
        return proxy.process.reload(str(path))

    assert loop_thread.run(reload())
    assert TapTransport.built[first].closed.wait(10)  # the old recorder has stopped: its two events went out
    chat(proxy, **{"x-data-labels": "health"})
    loop_thread.run(sink(proxy).flush())
    assert len(TapTransport.built[first].events) == len(TapTransport.built[second].events) == 2
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="sent"}') == 4
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="failed"}') == 0


@attr.define
class GateConfig(Config):
    gate: str = ""

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> GateConfig:
        return cls(gate=str(params.get("gate", "")))


class GateTransport(Transport):
    """A transport that refuses every event (raises, as the http transport does on a 429) while its gate
    is closed; keeps those it takes, and says when one comes."""

    kind = "gate"
    config_class = GateConfig
    built: ClassVar[dict[str, GateTransport]] = {}

    def __init__(self, config: GateConfig) -> None:
        self.open = threading.Event()
        self.events: list[RunEvent] = []
        self.cond = threading.Condition()
        GateTransport.built[config.gate] = self

    def emit(self, event: Any) -> None:
        if not self.open.is_set():
            raise RuntimeError("429 Too Many Requests")
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RunEvent]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= count, timeout), self.events
            return list(self.events)


def gated(name: str, interval: float) -> str:
    return f"{{snapshot_interval_s: {interval}, transport: {{type: {__name__}.GateTransport, gate: {name}}}}}"


def test_counts_a_refused_snapshot_kept_go_out_an_interval_later_without_new_calls(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread
) -> None:
    """The receiver refuses the snapshot (429), then takes events again, and no call comes after: the
    counts went out only with a next snapshot that had counts of its own, so never."""
    _, upstream = vllm
    name = uuid.uuid4().hex
    proxy = make_proxy(config(gated(name, 0.5)), UPSTREAM=upstream)
    for _ in range(3):
        chat(proxy)
    loop_thread.run(sink(proxy).flush())  # the new flow's event and the counts' snapshot, both refused
    gate = GateTransport.built[name]
    gate.open.set()
    # the three calls' counts, in one snapshot, or two when the 0.5 s timer ended a window between the calls (a
    # loaded machine: a CI run's), each refused then, each sent again an interval later with no new call
    with gate.cond:
        assert gate.cond.wait_for(lambda: sum(n or 0 for _, n in counted(gate.events)) >= 3, 10), gate.events
        sent = counted(gate.events)
    assert {flow for flow, _ in sent} == {"user-interaction"} and sum(n or 0 for _, n in sent) == 3, sent
    assert all(n is not None for _, n in sent), sent  # (the new flow's event, refused, is not sent again)


def test_counts_not_sent_go_out_at_stop_or_are_said_lost_in_one_line(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    _, upstream = vllm
    taken, refused = uuid.uuid4().hex, uuid.uuid4().hex
    proxies = [make_proxy(config(gated(name, 600)), UPSTREAM=upstream) for name in (taken, refused)]
    for proxy in proxies:
        for _ in range(3):
            chat(proxy)
        chat(proxy, **{"x-data-labels": "health"})
        loop_thread.run(sink(proxy).flush())  # refused
    GateTransport.built[taken].open.set()  # takes events again by the time the proxy stops
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        for proxy in proxies:
            loop_thread.run(sink(proxy).stop())
    assert sorted(counted(GateTransport.built[taken].events)) == [("health,user-interaction", 1),
                                                                  ("user-interaction", 3)]  # fmt: skip
    assert GateTransport.built[refused].events == []
    (line,) = [r.getMessage() for r in caplog.records if "before shutdown" in r.getMessage()]
    assert "the counts of 2 flows (4 calls) could not be sent" in line and "GateTransport" in line


class SlowMarquez(Marquez):
    """Keeps each event, then answers only once `release` is set (after the client gave up)."""

    def __init__(self) -> None:
        super().__init__()
        self.release: asyncio.Event | None = None

    async def _lineage(self, request: web.Request) -> web.Response:
        event = await request.json()
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        if self.release is not None:
            await self.release.wait()
        return web.Response(status=201)


def test_counts_sent_again_after_a_timeout_keep_their_run_id_so_a_receiver_counts_them_once(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread
) -> None:
    """A receiver that stores each event but answers after the transport's timeout: the counts are sent
    again as the same run (runId, eventTime, window), never inside a new run with later counts."""
    _, upstream = vllm
    backend = SlowMarquez()

    async def slow() -> asyncio.Event:
        return asyncio.Event()

    runner, port = loop_thread.run(start_app(backend.app()))
    try:
        transport = f'{{type: http, url: "http://127.0.0.1:{port}", timeout: 0.5, retry: {{total: 0}}}}'
        proxy = make_proxy(config(f"{{snapshot_interval_s: 600, transport: {transport}}}"), UPSTREAM=upstream)
        chat(proxy)
        chat(proxy)
        backend.wait_for(1)  # the new flow's event (answered at once)
        backend.release = loop_thread.run(slow())
        loop_thread.run(sink(proxy).flush())  # stored, but answered after the client gave up
        assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="failed"}') == 1
        loop_thread.loop.call_soon_threadsafe(backend.release.set)
        backend.release = None
        for _ in range(3):
            chat(proxy)
        loop_thread.run(sink(proxy).flush())
        snapshots = [e for e in backend.wait_for(4) if "lineageProxy_count" in e["run"]["facets"]]
    finally:
        if backend.release is not None:
            loop_thread.loop.call_soon_threadsafe(backend.release.set)
        loop_thread.run(runner.cleanup())
    assert len(snapshots) == 3
    assert snapshots[0] == snapshots[1]  # the same event again: runId, eventTime, window, count
    runs = {e["run"]["runId"]: e["run"]["facets"]["lineageProxy_count"]["count"] for e in snapshots}
    assert sum(runs.values()) == 5  # the calls, each once for a receiver keyed by runId


class HeldMarquez(Marquez):
    """Takes each request, says it came, then answers only once `hold` is set (a receiver that hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()

    async def _lineage(self, request: web.Request) -> web.Response:
        self.arrived.set()
        return await super()._lineage(request)


def counts_by_flow(events: list[dict[str, Any]]) -> dict[str, int]:
    calls: dict[str, int] = {}
    for event in events:
        facet = event["run"]["facets"].get("lineageProxy_count")
        if facet is not None:
            name = event["inputs"][0]["name"]
            calls[name] = calls.get(name, 0) + facet["count"]
    return calls


def spooled_runs(directory: Path = Path("lineage-openlineage-spool")) -> dict[str, tuple[str, int]]:
    """The count events a stop spooled (the default spool, in the test's directory): runId -> (input, calls)."""
    runs: dict[str, tuple[str, int]] = {}
    for path in sorted(directory.glob("*.jsonl")) if directory.exists() else []:
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            runs[entry["runId"]] = (entry["key"][2] or "(no labels)", entry["count"])
    return runs


def sent_or_spooled(events: list[dict[str, Any]]) -> dict[str, int]:
    """`counts_by_flow` of what the receiver got and what the stop spooled for the next start, each run once (one
    the sender had in flight when the stop gave up on it is both)."""
    runs = spooled_runs()
    for event in events:
        facet = event["run"]["facets"].get("lineageProxy_count")
        if facet is not None:
            runs[event["run"]["runId"]] = (event["inputs"][0]["name"], facet["count"])
    calls: dict[str, int] = {}
    for name, count in runs.values():
        calls[name] = calls.get(name, 0) + count
    return calls


def test_a_stuck_sender_s_shutdown_line_says_what_was_not_sent(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    """The receiver hangs on the first new flow's event; behind it wait two new flows' events and two
    snapshots (one taken during the calls, one by the stop). The line counted the stop's own marker and
    the snapshots as events (5) and none of the snapshots' flows; it says 3 events, 3 flows, 7 calls, and
    what the receiver gets once it answers again is exactly that."""
    monkeypatch.setattr(openlineage, "STOP_WAIT_S", 0.2)  # the stop gives up on the stuck sender
    _, upstream = vllm
    backend = HeldMarquez()

    with _held_receiver(loop_thread, backend, make_proxy, upstream) as (proxy, recorder):
        chat(proxy, **{"x-data-labels": "set-0"})
        assert backend.arrived.wait(10)  # the sender is stuck in set-0's event
        chat(proxy, **{"x-data-labels": "set-0"})
        chat(proxy, **{"x-data-labels": "set-1"})
        _snapshot(loop_thread, recorder)
        chat(proxy, **{"x-data-labels": "set-1"})
        for _ in range(3):
            chat(proxy, **{"x-data-labels": "set-2"})
        line = _stopped_stuck(loop_thread, recorder, backend, caplog)
        assert line.startswith("openlineage: 3 events not sent to http ") and line.endswith(
            "at shutdown, and the counts of 3 flows (7 calls)"
        ), line
    new_flows = [e["inputs"][0]["name"] for e in backend.events if "lineageProxy_count" not in e["run"]["facets"]]
    assert sorted(new_flows) == [f"set-{index},user-interaction" for index in range(3)]  # 3 events
    calls = sent_or_spooled(backend.events)  # the one in flight sent, the rest spooled for the next start
    assert len(calls) == 3 and sum(calls.values()) == 7, calls  # 3 flows, 7 calls


def test_a_dead_receiver_s_shutdown_line_counts_each_flow_once(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A flow's refused count (kept to send again) and its later calls (held meanwhile) are one flow not
    sent, not two."""
    _, upstream = vllm
    dead = f"http://127.0.0.1:{dead_port()}"
    transport = f'{{type: http, url: "{dead}", retry: {{total: 0}}}}'
    proxy = make_proxy(config(f"{{snapshot_interval_s: 600, transport: {transport}}}"), UPSTREAM=upstream)
    for _ in range(2):
        chat(proxy)
    loop_thread.run(sink(proxy).flush())  # the count of 2 calls refused: kept to send again
    for _ in range(3):
        chat(proxy)  # held while that fails
    chat(proxy, **{"x-data-labels": "health"})
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(sink(proxy).stop())
    (line,) = [r.getMessage() for r in caplog.records if "before shutdown" in r.getMessage()]
    assert line.startswith("openlineage: the counts of 2 flows (6 calls) could not be sent to http "), line


class RefusingThenHeldMarquez(Marquez):
    """Takes new flows' events; refuses the first count event (500), then hangs on the next until `hold` is
    set, saying it came."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0
        self.arrived = threading.Event()

    async def _lineage(self, request: web.Request) -> web.Response:
        event = await request.json()
        if "lineageProxy_count" in event["run"]["facets"]:
            if not self.refused:
                self.refused += 1
                return web.Response(status=500)
            self.arrived.set()
            if self.hold is not None:
                await self.hold.wait()
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        return web.Response(status=201)


def test_a_stuck_sender_s_shutdown_line_counts_the_snapshot_it_took_before_sending_a_refused_one_again(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    """A snapshot's count event is refused (kept to send again); the sender takes the next snapshot off the
    queue and sends the refused event again first, on which the receiver hangs. The line left out the snapshot
    taken (neither queued nor held yet): it says both flows, the 5 calls, and the receiver gets exactly those
    once it answers again."""
    monkeypatch.setattr(openlineage, "STOP_WAIT_S", 0.2)  # the stop gives up on the stuck sender
    _, upstream = vllm
    backend = RefusingThenHeldMarquez()

    with _held_receiver(loop_thread, backend, make_proxy, upstream) as (proxy, recorder):
        for _ in range(2):
            chat(proxy, **{"x-data-labels": "set-0"})
        loop_thread.run(recorder.flush())  # set-0's count of 2 refused: kept to send again
        assert backend.refused == 1 and not backend.arrived.is_set()
        for _ in range(3):
            chat(proxy, **{"x-data-labels": "set-1"})
        _snapshot(loop_thread, recorder)  # set-1's 3 calls: taken off the queue, then set-0's count sent again
        assert backend.arrived.wait(10)  # the sender is stuck in set-0's count event
        line = _stopped_stuck(loop_thread, recorder, backend, caplog)
        assert line.startswith("openlineage: 0 events not sent to http ") and line.endswith(
            "at shutdown, and the counts of 2 flows (5 calls)"
        ), line
    new_flows = [e["inputs"][0]["name"] for e in backend.events if "lineageProxy_count" not in e["run"]["facets"]]
    assert sorted(new_flows) == ["set-0,user-interaction", "set-1,user-interaction"]
    assert sent_or_spooled(backend.events) == {"set-0,user-interaction": 2, "set-1,user-interaction": 3}


def _stopped_stuck(loop_thread: Any, recorder: Any, backend: Any, caplog: pytest.LogCaptureFixture) -> str:
    """Stops `recorder` while its sender is stuck on `backend`; returns the shutdown line, once the backend has
    answered again and the sender has sent what was left and ended."""
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(recorder.stop())
    (line,) = [r.getMessage() for r in caplog.records if "at shutdown" in r.getMessage()]
    assert backend.hold is not None
    loop_thread.loop.call_soon_threadsafe(backend.hold.set)  # the receiver answers again: what was not sent goes
    recorder._thread.join(30)
    assert not recorder._thread.is_alive()
    return line


@contextlib.contextmanager
def _held_receiver(loop_thread: LoopThread, backend: Any, make_proxy: Any, upstream: str) -> Iterator[tuple[Any, Any]]:
    """`backend` (a receiver that can hang: its `hold`) serving a proxy whose snapshots are taken by hand (an
    interval of 600 s); yields the proxy and its OpenLineage sink, and lets the receiver answer again at the end."""

    async def start() -> tuple[web.AppRunner, int]:
        backend.hold = asyncio.Event()
        return await start_app(backend.app())

    runner, port = loop_thread.run(start())
    try:
        transport = f'{{type: http, url: "http://127.0.0.1:{port}", timeout: 60, retry: {{total: 0}}}}'
        proxy = make_proxy(config(f"{{snapshot_interval_s: 600, transport: {transport}}}"), UPSTREAM=upstream)
        yield proxy, sink(proxy)
    finally:
        if backend.hold is not None:
            loop_thread.loop.call_soon_threadsafe(backend.hold.set)
        loop_thread.run(runner.cleanup())


def _snapshot(loop_thread: LoopThread, recorder: Any) -> None:
    """What the snapshot loop does each interval: the window's counts taken and queued for the sender."""

    async def snapshot() -> None:
        taken = recorder._take_window()
        assert taken is not None and recorder._put(taken)

    loop_thread.run(snapshot())
