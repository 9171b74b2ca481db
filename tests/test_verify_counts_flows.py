"""`verify --baseline` counts flows, as `report` ("distinct flows") and `--write-baseline` ("from N flows") do: a flow
several sidecars recorded (an edge each) is one flow. Before, its summary counted edges: one flow two sidecars
served read "2 approved", and a store upgraded to sidecar names (each flow an edge recorded before names, `-`, and
one under the host name) read twice its flows."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from proxy.record.store import EdgeKey, SqliteStore
from tests.test_readers_sidecar import cli

CHAT = EdgeKey("glasses-app", "assistant", "email", "llama@v1", "", "allow")
SEARCH = EdgeKey("search", "ranking", "", "llama@v1", "", "allow")
ADS = EdgeKey("ads-ranker", "analytics", "", "llama@v1", "", "allow")


def store_of(tmp_path: Path, sidecars: dict[str, list[EdgeKey]]) -> Path:
    store = tmp_path / "lineage.db"
    now = time.time()
    for sidecar, keys in sidecars.items():
        writer = SqliteStore(str(store), sidecar=sidecar)
        writer.upsert([(key, now, now, 3, None) for key in keys])
        writer.close()
    return store


def test_an_upgraded_store_counts_each_flow_once(tmp_path: Path) -> None:
    store = store_of(tmp_path, {"": [CHAT, SEARCH], "laptop": [CHAT, SEARCH]})  # before names, then named
    baseline = tmp_path / "baseline.yaml"
    written = cli("verify", "--store", str(store), "--write-baseline", str(baseline))
    assert "from 2 flows" in written.stdout, written.stdout + written.stderr
    verified = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ok: 0 unapproved flows (0 calls), 2 approved, 0 approved entries unseen" in verified.stdout  # was 4
    as_json = orjson.loads(cli("verify", "--store", str(store), "--baseline", str(baseline), "--json").stdout)
    assert as_json["approved"] == 2


def test_a_flow_approved_for_one_sidecar_only_is_unapproved_once(tmp_path: Path) -> None:
    """Each sidecar's unapproved edge is listed; a flow is counted once, unapproved when any sidecar's edge of it is
    (and not approved too), so the counts add up to the store's flows; `report`'s card counts so too."""
    store = store_of(tmp_path, {"model-a": [CHAT, SEARCH, ADS], "model-b": [CHAT, SEARCH, ADS]})
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "version: 1\nflows:\n"
        "  - {caller: glasses-app, purpose: assistant, labels: [email], sidecars: [model-a]}\n"
        "  - {caller: search, purpose: ranking}\n"
    )
    verified = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert verified.stdout.count("UNAPPROVED new-sidecar") == 1 and verified.stdout.count("UNAPPROVED new-caller") == 2
    # before: "3 unapproved flows (9 calls), 3 approved" (edges)
    assert "FAIL: 2 unapproved flows (9 calls), 1 approved, 0 approved entries unseen" in verified.stdout
    report = tmp_path / "report.html"
    done = cli("report", "--store", str(store), "--baseline", str(baseline), "--out", str(report))
    assert done.returncode == 0, done.stderr
    assert "<b>2</b><span>unapproved flows</span>" in report.read_text(encoding="utf-8")
