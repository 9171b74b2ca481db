"""The readers name the sidecar that recorded each flow of a fleet's store: `edges` (a `recorded by` column,
`"sidecar"` in `--json`, `--sidecar NAME` to choose), and `report` (a `recorded by` column in its flows and denials
tables), so an auditor who finds a denied or unapproved flow can tell which deployment it came through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson

from proxy.record.store import EdgeKey, SqliteStore
from tests.test_report import browse, console

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = EdgeKey("glasses-app", "assistant", "email", "llama@v1", "", "allow")
DENIED = EdgeKey("eval-batch", "evaluation", "card", "", "", "deny", "zone:payment-data")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, this tree's code (not the venv's installed one)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60, env=env)


def fleet(tmp_path: Path) -> Path:
    """A store two sidecars wrote: both served the allowed flow, only B refused the denied one."""
    store = tmp_path / "fleet.db"
    now = time.time()
    for sidecar, rows in [
        ("model-a-eu", [(ALLOWED, now, now, 52, None)]),
        ("model-b-us", [(ALLOWED, now, now, 7, None), (DENIED, now, now, 14, "zone payment-data: no evaluation")]),
    ]:
        writer = SqliteStore(str(store), sidecar=sidecar)
        writer.upsert(rows)
        writer.close()
    return store


def test_edges_names_the_sidecar_and_chooses_by_it(tmp_path: Path) -> None:
    store = fleet(tmp_path)
    listed = cli("edges", "--store", str(store))
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["checkpoint", "purpose", "caller", "input labels", "output labels",
                                           "decision", "rule", "recorded by", "count", "last seen (UTC)"]  # fmt: skip
    assert sorted(line.split()[7] + ":" + line.split()[8] for line in lines) == [
        "model-a-eu:52", "model-b-us:14", "model-b-us:7"
    ]  # fmt: skip

    chosen = cli("edges", "--store", str(store), "--sidecar", "model-b-us", "--json")
    assert chosen.returncode == 0, chosen.stderr
    rows = [orjson.loads(line) for line in chosen.stdout.splitlines()]
    assert sorted((row["caller"], row["sidecar"], row["count"]) for row in rows) == [
        ("eval-batch", "model-b-us", 14), ("glasses-app", "model-b-us", 7)
    ]  # fmt: skip
    assert cli("edges", "--store", str(store), "--sidecar", "-").stdout == "no edges match\n"  # none before names


def test_the_report_says_which_sidecar_recorded_each_flow_and_denial(tmp_path: Path) -> None:
    store = fleet(tmp_path)
    out = tmp_path / "fleet.html"
    done = cli("report", "--store", str(store), "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    denials = re.search(r'<section id="denials">(.*?)</section>', page, re.S)
    flows = re.search(r'<section id="flows">(.*?)</section>', page, re.S)
    assert denials is not None and flows is not None, page[-3000:]
    assert "<th>recorded by</th>" in denials.group(1) and "<th>recorded by</th>" in flows.group(1)
    # the denial is B's alone; the allowed flow is a row for each sidecar that served it
    assert re.findall(r'<td class="mono">(model-[^<]+)</td>', denials.group(1)) == ["model-b-us"]
    assert sorted(re.findall(r'<td class="mono">(model-[^<]+)</td>', flows.group(1))) == [
        "model-a-eu", "model-b-us", "model-b-us"
    ]  # fmt: skip
    assert "<b>2</b><span>distinct flows</span>" in page  # the allowed flow two sidecars served is one flow
    assert "2 flows, 73 calls" in done.stdout
    # in a real browser: it renders, no console error, and the column is there
    dom = browse(out, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0 and console(dom.stderr) == [], dom.stderr[-2000:]
    assert dom.stdout.count("<th>recorded by</th>") == 2
    shot = tmp_path / "fleet.png"
    taken = browse(out, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1300,3000")
    assert taken.returncode == 0 and shot.stat().st_size > 0, taken.stderr[-2000:]


def test_verify_names_the_sidecar_of_an_unapproved_flow(tmp_path: Path) -> None:
    """A baseline entry approves a flow whatever sidecar recorded it; an unapproved one is named with its sidecar."""
    store = fleet(tmp_path)
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: glasses-app, purpose: assistant, labels: [email]}\n")
    verified = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert verified.returncode == 1, verified.stdout + verified.stderr
    # flows, as `report` and `--write-baseline` count them: the allowed flow both sidecars served is one (before
    # 2026-12-03, "2 approved": its two edges)
    assert "FAIL: 1 unapproved flow (14 calls), 1 approved" in verified.stdout
    assert "; 14 calls, last seen" in verified.stdout and "UTC, recorded by model-b-us\n" in verified.stdout
    as_json = orjson.loads(cli("verify", "--store", str(store), "--baseline", str(baseline), "--json").stdout)
    assert [found["edge"]["sidecar"] for found in as_json["unapproved"]] == ["model-b-us"]


def test_a_baseline_written_from_a_fleet_counts_a_flow_two_sidecars_served_once(tmp_path: Path) -> None:
    store = fleet(tmp_path)
    target = tmp_path / "baseline.yaml"
    written = cli("verify", "--store", str(store), "--write-baseline", str(target))
    assert written.returncode == 0, written.stderr
    assert "2 entries from 2 flows" in written.stdout, written.stdout  # HEAD: "from 3 flows" (an edge per sidecar)
    assert "UTC from the 2 flows of" in target.read_text()
    assert cli("verify", "--store", str(store), "--baseline", str(target)).returncode == 0  # approves every sidecar's
