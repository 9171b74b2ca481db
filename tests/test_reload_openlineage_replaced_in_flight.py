"""A SIGHUP that replaces the OpenLineage sink (another backend, another namespace) stopped the one it replaced at once,
and the calls in flight as it applied (begun under the config that named that backend) were counted by the new one: a
stream begun under `namespace: before`, whose backend was A, was counted at B as `after`, and A never heard of it. As
the span exporter a reload replaces (`Replacing`), the replaced sink is kept for those calls, their counts go to its
backend under its namespace, and it stops once the last is recorded; the calls begun since go to the new one. Driven
with a real `serve` process reloaded by SIGHUP, the real openai SDK, a stream the upstream holds across the reload, and
two HTTP receivers taking openlineage-python's http transport's POSTs: each call is counted exactly once, where it
began."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness import LoopThread, ServeProcess, start_app
from tests.record.test_openlineage import Marquez

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage:
  store: "STORE"
  openlineage: {url: "URL", namespace: NAMESPACE, snapshot_interval_s: 600, spool: "SPOOL"}
"""


@pytest.fixture
def backends(loop_thread: LoopThread) -> Iterator[list[tuple[Marquez, str]]]:
    made = []
    for _ in range(3):
        server = Marquez()
        runner, port = loop_thread.run(start_app(server.app()))
        made.append((server, f"http://127.0.0.1:{port}", runner))
    yield [(server, url) for server, url, _ in made]
    for _, _, runner in made:
        loop_thread.run(runner.cleanup())


def counted(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """The calls the count events say, by (namespace, input dataset)."""
    calls: dict[tuple[str, str], int] = {}
    for event in events:
        facet = event["run"]["facets"].get("lineageProxy_count")
        if facet is not None:
            key = (event["job"]["namespace"], event["inputs"][0]["name"])
            calls[key] = calls.get(key, 0) + facet["count"]
    return calls


def write(path: Path, upstream: str, url: str | None, namespace: str) -> None:
    """The config at `path` (its store and spool beside it), its sink at `url` under `namespace` (None: no sink)."""
    text = (CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(path.parent / "lineage.db"))
            .replace("SPOOL", str(path.parent / "spool")).replace("NAMESPACE", namespace))  # fmt: skip
    if url is None:
        text = "\n".join(line for line in text.splitlines() if "openlineage:" not in line)
    path.write_text(text.replace("URL", url or ""))


@contextmanager
def a_stream_in_flight(
    path: Path, server: Any, loop_thread: LoopThread
) -> Iterator[tuple[ServeProcess, openai.OpenAI]]:
    """`serve` with the config at `path`, and a stream labelled `streamed` through it, its first chunk read: (the
    process, the client) while the stream is in flight; then the stream read to its end and the process stopped, which
    must exit 0."""
    serve = ServeProcess(str(path))
    try:
        client = openai.OpenAI(base_url=f"{serve.url}/v1", api_key="none", max_retries=0, timeout=20)
        stream = client.chat.completions.create(model="m", stream=True, extra_headers={"x-data-labels": "streamed"},
                                                messages=[{"role": "user", "content": "__gate__ hello"}])  # fmt: skip
        server.release(loop_thread.loop)
        chunks = iter(stream)
        next(chunks)  # the stream is in flight
        yield serve, client
        for _ in range(20):
            server.release(loop_thread.loop)
        assert list(chunks)
        assert serve.stop() == 0, "".join(serve.stderr)
    finally:
        serve.stop()


def test_a_stream_in_flight_across_a_sighup_that_replaces_openlineage_is_counted_once_where_it_began(
    vllm: Any, backends: list[tuple[Marquez, str]], loop_thread: LoopThread, tmp_path: Path
) -> None:
    """On main: A got nothing; B counted both calls, the stream as `after`."""
    server, upstream = vllm
    (a, a_url), (b, b_url), _ = backends
    path = tmp_path / "proxy.yaml"
    write(path, upstream, a_url, "before")
    with a_stream_in_flight(path, server, loop_thread) as (serve, client):
        write(path, upstream, b_url, "after")
        serve.signal(signal.SIGHUP)
        serve.wait_log("reloaded ")
        client.chat.completions.create(model="m", extra_headers={"x-data-labels": "since"},
                                       messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert counted(a.events) == {("before", "streamed"): 1}, a.events
    assert counted(b.events) == {("after", "since"): 1}, b.events
    assert {event["job"]["namespace"] for event in a.events} == {"before"}
    assert {event["job"]["namespace"] for event in b.events} == {"after"}


def reloads(serve: ServeProcess, count: int) -> None:
    """Wait until `serve` has said `count` reloads applied."""
    with serve._stderr_cond:
        said = serve._stderr_cond.wait_for(lambda: sum("reloaded " in line for line in serve.stderr) >= count, 10)
    assert said, "".join(serve.stderr)


@pytest.mark.parametrize("between", ["replaced", "removed"])
def test_a_stream_in_flight_across_two_sighups_is_counted_once_where_it_began(
    vllm: Any, backends: list[tuple[Marquez, str]], loop_thread: LoopThread, tmp_path: Path, between: str
) -> None:
    """Two reloads while one stream runs, A then B (or none: `lineage.openlineage` taken out) then C: the stream is
    counted at A under its namespace, a call between them at B (or nowhere: its config named no sink), one after at C;
    each once, and every replaced sink stops (serve's stop exits 0, each count sent). Pinned by review revrec15."""
    server, upstream = vllm
    (a, a_url), (b, b_url), (c, c_url) = backends
    path = tmp_path / "proxy.yaml"
    write(path, upstream, a_url, "first")
    with a_stream_in_flight(path, server, loop_thread) as (serve, client):
        for n, (url, namespace, label) in enumerate(
            [(b_url if between == "replaced" else None, "second", "between"), (c_url, "third", "after")], 1
        ):
            write(path, upstream, url, namespace)
            serve.signal(signal.SIGHUP)
            reloads(serve, n)
            client.chat.completions.create(model="m", extra_headers={"x-data-labels": label},
                                           messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert counted(a.events) == {("first", "streamed"): 1}, a.events
    assert counted(b.events) == ({("second", "between"): 1} if between == "replaced" else {}), b.events
    assert counted(c.events) == {("third", "after"): 1}, c.events
