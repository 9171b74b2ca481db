"""The unapproved-flow WARNING (`Pipeline._unapproved`) printed the flow's labels and the baseline finding's new labels
in full: a call may carry 256 labels of 128 characters, ~66 KB a line, and 64 of ~120 (what one request may send) made a
line of ~16 KB, past what Docker keeps of a log line (16 KiB: the rest is another line, or lost). The line shows the
first labels up to a budget and how many more there are; the lineage record keeps every label."""

from __future__ import annotations

import logging
import sqlite3

import httpx

from tests.configs import ONE_UPSTREAM_STORED
from tests.servers.vllm_like import SERVED

BASELINE = """
version: 1
flows:
  - {caller: anonymous, purpose: assistant, labels: [public]}
"""


def test_the_warning_names_the_first_labels_and_how_many_more(vllm, make_proxy, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(BASELINE)
    store = tmp_path / "lineage.db"
    proxy = make_proxy(ONE_UPSTREAM_STORED + f"  baseline: {baseline}\n", UPSTREAM=upstream, STORE=str(store))
    caplog.set_level(logging.WARNING, logger="lineage_proxy.baseline")
    labels = [f"l{i:02d}-" + "x" * 116 for i in range(64)]  # 64 labels of 120 characters: 7,743 in the wire form
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-data-labels": ",".join(labels)})
    assert reply.status_code == 200, reply.text
    lines = [r.getMessage() for r in caplog.records if "unapproved flow" in r.getMessage()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert len(line) < 4096, len(line)
    assert labels[0] in line and labels[-1] not in line
    assert " more" in line and "+" in line  # the labels left out are counted
    with sqlite3.connect(store) as db:
        (recorded,) = db.execute("SELECT input_labels FROM edges").fetchone()
    assert recorded.split(",") == labels  # the record has them all


def test_a_few_labels_are_shown_whole(vllm, make_proxy, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(BASELINE)
    proxy = make_proxy(ONE_UPSTREAM_STORED + f"  baseline: {baseline}\n", UPSTREAM=upstream)
    caplog.set_level(logging.WARNING, logger="lineage_proxy.baseline")
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-data-labels": "team-b,team-a"})
    assert reply.status_code == 200, reply.text
    lines = [r.getMessage() for r in caplog.records if "unapproved flow" in r.getMessage()]
    assert len(lines) == 1 and "labels team-a,team-b checkpoint" in lines[0], lines
    assert "more" not in lines[0]
