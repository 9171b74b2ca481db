"""A call refused for an upstream's `max_queue` (503 `overloaded`: its connections all held, no room to wait)
is a refusal: `x-lineage-decision: deny`, as on every refusal, and as the connection limit's 503 says. It said
`allow`, with `x-lineage-upstream` and `x-lineage-checkpoint`, and its span, access line and lineage edge
recorded it allowed, its labels reaching the checkpoint and coming back as output, though it never left the
proxy. Every record now says `deny`, rule `upstream:NAME`, no upstream, checkpoint or output labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.record.store import SqliteStore
from tests.harness import LoopThread
from tests.held import one_call_held
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED, VllmLike
from tests.test_refusals_recorded import AccessLines, access_lines

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: busy, url: "{url}", max_connections: 1, max_queue: 0}}
routes: [{{model: "*", upstream: busy}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp}"}}
lineage: {{store: "${{STORE}}"}}
"""


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


def test_an_upstream_s_max_queue_refusal_is_recorded_as_a_denial(
    vllm: tuple[VllmLike, str], make_proxy: Any, loop_thread: LoopThread, otlp: OtlpReceiver,
    access: AccessLines, tmp_path: Path,
) -> None:  # fmt: skip
    server, url = vllm
    proxy = make_proxy(CONFIG.format(url=url, otlp=otlp.port))
    with one_call_held(proxy.url, server, loop_thread):  # it holds the pool's one connection
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": "pii"}, timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "overloaded", reply.text
        assert len(server.data_requests()) == 1  # it never reached the upstream
        trace = reply.headers["x-trace-id"]
        assert reply.headers["x-lineage-decision"] == "deny"  # was: allow
        assert "x-lineage-upstream" not in reply.headers and "x-lineage-checkpoint" not in reply.headers
        assert reply.headers["x-data-labels"] == "pii"  # the input's, as on every denial

        span = otlp.by_trace(trace).attributes
        assert span["lineage.decision"] == "deny" and span["error.type"] == "overloaded"
        assert span["lineage.rule"] == "upstream:busy"
        assert "saturated" in span["lineage.reason"]
        assert "lineage.upstream" not in span and "lineage.checkpoint" not in span
        assert list(span["lineage.input.labels"]) == ["pii"] and not list(span.get("lineage.output.labels", []))

        line = access.of(trace)
        fields = (line.decision, line.code, line.upstream, line.checkpoint)  # type: ignore[attr-defined]
        assert fields == ("deny", "overloaded", "", ""), line.__dict__

        store = SqliteStore(tmp_path / "lineage.db", readonly=True)
        try:
            rows = {row.key.input_labels: row for row in store.rows()}
        finally:
            store.close()
        key = rows["pii"].key
        assert (key.decision, key.rule, key.checkpoint, key.output_labels) == ("deny", "upstream:busy", "", "")
        assert rows["pii"].count == 1
