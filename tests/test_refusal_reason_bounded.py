"""With `lineage.on_unapproved: block`, the 403 of an unapproved flow named every new label in its error body and in the
stored edge's reason: 64 labels of ~120 characters made a body of ~8 KB and a reason as long (256, ~33 KB). The reason
is bounded as the unapproved-flow WARNING is (`bounded_text`, one helper for both): the first labels, and how much was
left out. An edge is keyed by its flow, never by its reason: two flows whose reasons differ only past the cut stay two
rows, and one flow refused twice stays one row."""

from __future__ import annotations

import sqlite3

import httpx

from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

BASELINE = """
version: 1
flows:
  - {caller: anonymous, purpose: assistant, labels: [public]}
"""

LABELS = [f"l{i:02d}-" + "x" * 116 for i in range(63)]  # 63 labels of 120 characters, and one more each call sends


def test_a_refusals_reason_is_bounded_and_its_flow_stays_one_row(vllm, make_proxy, tmp_path, loop_thread) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(BASELINE)
    store = tmp_path / "lineage.db"
    config = ONE_UPSTREAM_STORED + f"  baseline: {baseline}\n  on_unapproved: block\n"
    proxy = make_proxy(config, UPSTREAM=upstream, STORE=str(store))
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    sent = {}
    for last in ("zz-first", "zz-second", "zz-first"):  # differing only in the last label, past any cut
        labels = ",".join([*LABELS, last])
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-data-labels": labels})
        assert reply.status_code == 403, reply.text
        error = proxy_error(reply)
        assert error["code"] == "flow_not_approved", error
        assert len(reply.content) < 2048, len(reply.content)  # was 8,046 bytes
        message = error["message"]
        assert LABELS[0] in message and last not in message, message
        assert "characters more)" in message, message  # what was left out is said
        sent[last] = labels
    loop_thread.run(proxy.process.runtime.sinks.flush())
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT input_labels, count, reason FROM edges ORDER BY input_labels").fetchall()
    assert [(labels, count) for labels, count, _ in rows] == [(sent["zz-first"], 2), (sent["zz-second"], 1)]
    for _, _, reason in rows:
        assert len(reason) <= 1024 and reason.startswith("flow not in the approved baseline: label"), reason
