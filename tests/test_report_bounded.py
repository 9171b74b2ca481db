"""The report of a store a caller filled through the proxy: a new label set on every call (each call a flow of its
own, its labels as long and as many as a call may send) made a report of about 24 KB a flow, every flow's labels
again in its checkpoint's row; 100,000 such calls, gigabytes no browser opens. Its tables show their first rows and
say what they leave out, its cells their first labels (zoned ones first): the file stays a few megabytes, whatever
the store holds, and opens in a real browser."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from proxy.report import PILLS_MOST, TABLE_MOST
from tests.servers.vllm_like import SERVED
from tests.test_report import browse, console
from tests.traffic import KEYS_BY_CALLER, proxy_config

FLOWS = TABLE_MOST + 100


def labels(call: int) -> str:
    """60 labels of 110 characters, new on every call, and the zoned `user-interaction` after them."""
    return ",".join([*(f"l{call}-{n}-" + "x" * 100 for n in range(60)), "user-interaction"])


def section(text: str, name: str) -> str:
    start = text.index(f'<section id="{name}">')
    return text[start : text.index("</section>", start)]


def test_a_store_of_many_flows_of_many_labels_makes_a_bounded_report(vllm, make_proxy, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config_text = proxy_config()
    proxy = make_proxy(config_text, UPSTREAM=upstream)
    headers = {"authorization": f"Bearer {KEYS_BY_CALLER['glasses-app']}", "x-purpose": "assistant"}
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        for call in [0, *range(FLOWS)]:
            reply = client.post("/v1/chat/completions", headers={**headers, "x-data-labels": labels(call)},
                                json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert reply.status_code == 200, reply.text
    loop_thread.run(proxy.process.runtime.sinks.flush())
    store, config, out = tmp_path / "lineage.db", tmp_path / "proxy.yaml", tmp_path / "report.html"
    config.write_text(config_text.replace("${UPSTREAM}", upstream).replace("${STORE}", str(store)))
    result = subprocess.run([sys.executable, "-m", "proxy", "report", "--store", str(store), "--config", str(config),
                             "--out", str(out)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0 and f": {FLOWS} flows, {FLOWS + 1} calls" in result.stdout, result.stderr
    text = out.read_text(encoding="utf-8")
    assert len(text) < 4_000_000, len(text)  # 14 MB of it before, 30 MB of it the checkpoint's one row of labels
    flows, checkpoints = section(text, "flows"), section(text, "checkpoints")
    assert flows.count("<tr>") == 1 + TABLE_MOST  # the head, then the newest flows
    assert "100 more flows (of fewer calls, 100 calls) not shown here" in flows
    assert "<code>lineage-proxy edges</code> lists every one" in flows
    assert f"l{FLOWS - 1}-0-" in flows and "l1-0-" not in flows  # the newest shown, the oldest left out
    assert "l0-0-" in flows  # but the flow of two calls, the oldest: a caller's flows of one call hide no busier one
    # each cell: the zoned label first, then the others up to PILLS_MOST, then how many more
    cell = re.search(r"<td>(<span class=\"pill[^<]*</span>)+<span class=\"muted\">\+(\d+) more</span></td>", flows)
    assert cell is not None and int(cell.group(2)) == 61 - (PILLS_MOST - 1)
    assert cell.group(0).startswith('<td><span class="pill zoned">user-interaction</span>')
    assert checkpoints.count('<span class="pill') <= PILLS_MOST + 1  # one checkpoint: its row's labels, not 36,000
    dom = browse(out, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0 and console(dom.stderr) == [], dom.stderr[-2000:]
    assert '<svg id="flow-graph"' in dom.stdout and "not shown here" in dom.stdout


def test_each_table_shows_its_first_rows_and_says_what_it_left_out() -> None:
    """Denials by calls, unapproved flows, checkpoints by calls, a caller's checkpoint changes: each cut alike."""
    import time

    from proxy.baseline import parse_baseline
    from proxy.record.store import EdgeKey, EdgeRow
    from proxy.report import STEPS_MOST, render

    now = time.time()
    n = TABLE_MOST + 20
    rows = [EdgeRow(EdgeKey("app", f"p{i}", "public", "", "", "deny", "zone:z"), now, now, 1 + (i < 5), "told")
            for i in range(n)]  # fmt: skip
    # one caller and purpose served by n checkpoints in turn, each seen once; and n more purposes changing checkpoint
    rows += [
        EdgeRow(EdgeKey("app", "chat", "", f"ck{i:04d}", "", "allow"), now + i, now + i, 1, None) for i in range(n)
    ]
    rows += [EdgeRow(EdgeKey("app", f"q{i}", "", f"ck{j:04d}", "", "allow"), now, now, 1, None)
             for i in range(n) for j in (0, 1)]  # fmt: skip
    text = render(rows, store="s.db", window="all", baseline=parse_baseline("version: 1\nflows: []\n"))
    denials = section(text, "denials")
    assert denials.count("<tr>") == 1 + TABLE_MOST and "p0</td>" in denials  # the busiest first
    assert "20 more denied flows (of fewer calls, 20 calls) not shown here" in denials
    unapproved = section(text, "unapproved")
    assert unapproved.count("<tr>") == 1 + TABLE_MOST
    assert f"{len(rows) - TABLE_MOST} more unapproved flows (of fewer calls, " in unapproved
    assert "p0</td>" in unapproved and "ck0000</td>" not in unapproved  # flows of 2 calls first, then the newest
    assert "<code>lineage-proxy verify --baseline</code> lists every one" in unapproved
    checkpoints = section(text, "checkpoints")
    table, changes = checkpoints.split("<h3>Changes</h3>")
    assert table.count("<tr>") == 1 + TABLE_MOST and "ck0000</td>" in table and "ck0001</td>" in table
    assert f"{n - TABLE_MOST} more checkpoints (of fewer calls, {n - TABLE_MOST} calls) not shown here" in table
    assert changes.count("<li>") == TABLE_MOST  # of n + 1: chat, and each q
    assert "21 more callers and purposes served by more than one checkpoint not shown here" in changes
    chat = next(item for item in changes.split("<li>") if "<b>chat</b>" in item)
    assert chat.count('class="mono"') == STEPS_MOST and f"{n - STEPS_MOST} earlier checkpoints" in chat
    assert f"ck{n - 1:04d}" in chat and "ck0000<" not in chat  # the newest changes
