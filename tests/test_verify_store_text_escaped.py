"""`verify` shows the store's names and reasons as `edges` and `verify --integrity` do: escaped. Whoever can write
the store (the point of its hash chain: a sidecar of a PostgreSQL fleet, a hand with `sqlite3`) chose what `verify
--baseline` printed raw, terminal controls included (`\\x1b[2K\\r` wrote a line of its own over the line naming the
unapproved flow); and `verify --write-baseline` wrote a reason into a `#` comment raw, so a line break in one
ended the comment and the lines after it were entries of the baseline: one approving every caller, purpose,
label and decision, in a file written as "one entry per recorded flow"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.baseline import load_baseline
from proxy.cli import main
from proxy.record.store import EdgeKey, SqliteStore

FORGED_CALLER = "app\x1b[2K\r\x1b[32mok: 0 unapproved flows\x1b[0m\nUNSEEN x"
# a reason that closes its comment and adds an entry approving everything
FORGED_REASON = ("told\n  - caller: '*'\n    purpose: '*'\n    labels: ['*']\n"
                 "    decisions: [allow, reroute, deny, audit-deny]\n#")  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "a", "org/m@v1", "a", "allow"), 0.0, 1.0, 3, None),
                  (EdgeKey("app", "ads", "a", "", "", "deny", "zone:z"), 0.0, 1.0, 2, "purpose 'ads' denied")])  # fmt: skip
    store.close()
    db = sqlite3.connect(path)  # edited as a writer of the store could, with or without the chain's key
    db.execute("UPDATE edges SET caller = ? WHERE decision = 'allow'", (FORGED_CALLER,))
    db.execute("UPDATE edges SET reason = ? WHERE decision = 'deny'", (FORGED_REASON,))
    db.commit()
    db.close()
    return path


def test_verify_prints_a_stored_name_and_reason_escaped(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows: []\n")
    assert main(["verify", "--store", str(store), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    lines = out.splitlines()
    assert [line.split(" ", 1)[0] for line in lines if not line.startswith(" ")] == [
        "UNAPPROVED", "UNAPPROVED", "FAIL:"]  # fmt: skip
    assert len(lines) == 6, lines  # each flow: its finding, its edge; the denial: what the caller was told
    assert "caller app\\x1b[2K\\r\\x1b[32mok: 0 unapproved flows\\x1b[0m\\nUNSEEN x, purpose assistant" in out
    assert "    the caller was told: told\\n  - caller: '*'\\n" in out


def test_a_written_baseline_holds_a_stored_reason_in_its_comment(store: Path, tmp_path: Path) -> None:
    written = tmp_path / "written.yaml"
    assert main(["verify", "--store", str(store), "--write-baseline", str(written)]) == 0
    approvals = load_baseline(written).approvals
    assert len(approvals) == 2, [(a.caller, a.purpose, a.decisions) for a in approvals]  # one a recorded flow
    assert {a.caller for a in approvals} == {"app", FORGED_CALLER}
    assert "  # the caller was told: told\\n  - caller: '*'\\n" in written.read_text()
