"""The README's sample sessions (a fenced block whose first line is `$ lineage-proxy ...`) are what the command prints:
each is run here against a store holding the flows it describes, and its output compared line by line. A reader
who copies one, or a script written against one, meets what the command says. Before, the `verify` sample lacked
the `, recorded by SIDECAR` that `verify` has put after each unapproved flow since sidecars were named."""

from __future__ import annotations

import calendar
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.cli import main
from proxy.record.store import EdgeKey, EdgeWrite, SqliteStore

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def sample(command: str) -> tuple[list[str], list[str]]:
    """The README's session that runs `lineage-proxy COMMAND`: its argv (less `lineage-proxy`) and the lines it
    shows printed."""
    blocks = re.findall(r"^```\n\$ (lineage-proxy [^\n]*)\n(.*?)^```$", README, re.M | re.S)
    runs = [(line, out) for line, out in blocks if shlex.split(line)[1] == command]
    assert len(runs) == 1, f"the README shows {len(runs)} sessions of `lineage-proxy {command}`"
    line, out = runs[0]
    return shlex.split(line)[1:], out.splitlines()


def utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")))


def store(path: Path, sidecar: str, rows: list[EdgeWrite]) -> None:
    written = SqliteStore(path, sidecar=sidecar)
    written.upsert(rows)
    written.close()


def printed(argv: list[str], capsys: Any) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().out.splitlines()


def test_the_edges_sample_is_what_edges_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    argv, shown = sample("edges")
    monkeypatch.chdir(tmp_path)
    seen = utc("2026-11-22 20:15:31")
    demo, zone = "lineage-proxy/demo-echo-1", "zone:interaction-data"
    store(Path("lineage.db"), "laptop", [  # what `lineage-proxy demo --store lineage.db` records on host `laptop`
        (EdgeKey("glasses-app", "analytics", "user-interaction", "", "", "deny", zone), seen, seen, 1, None),
        (EdgeKey("glasses-app", "assistant", "pii:email,user-interaction", demo, "pii:email,user-interaction",
                 "reroute", zone), seen, seen, 1, None),
        (EdgeKey("glasses-app", "assistant", "user-interaction", demo, "user-interaction", "reroute", zone),
         seen, seen, 2, None),
        (EdgeKey("analytics-job", "analytics", "public", demo, "public", "allow"), seen, seen, 1, None),
        (EdgeKey("anonymous", "", "", "", "", "deny", "policy.anonymous"), seen, seen, 1, None),
    ])  # fmt: skip
    assert printed(argv, capsys) == (0, shown)


def test_the_verify_sample_is_what_verify_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    argv, shown = sample("verify")
    monkeypatch.chdir(tmp_path)
    seen = utc("2026-11-29 21:29:15")
    llama = "org/llama@v1"
    store(Path("lineage.db"), "laptop", [
        (EdgeKey("ads-ranker", "analytics", "public", llama, "public", "allow"), seen, seen, 1, None),
        (EdgeKey("ads-ranker", "ads", "public", llama, "public", "allow"), seen, seen, 4, None),
        (EdgeKey("ads-ranker", "ads", "pii:email,public", llama, "pii:email,public", "allow"), seen, seen, 2, None),
        (EdgeKey("ads-ranker", "ads", "pii:phone,public", llama, "pii:phone,public", "allow"), seen, seen, 1, None),
    ])  # fmt: skip
    Path("baseline.yaml").write_text(
        "version: 1\nflows:\n  - {caller: ads-ranker, purpose: ads, labels: [public, 'pii:*'], checkpoints: ['org/llama@*']}\n"
    )
    assert printed(argv, capsys) == (1, shown)
