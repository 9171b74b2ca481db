"""A store (or baseline) whose file name is not UTF-8 (`café.db` written in Latin-1, as a file copied from an older
system or an archive is named): Python reads such a name from the command line with its bytes as lone surrogates,
which no UTF-8 holds. The readers opened the store, then failed as they wrote what they had read: `report` with a
traceback after emptying the file it was to write (a report there before was lost), `verify --json` and
`verify --integrity --json` with a traceback (orjson refuses the name), `verify --write-baseline` with "internal
error: the written baseline does not read back". They now show such a name with its bytes escaped (`caf\\xe9.db`),
as they show bytes that are not UTF-8 in a store's rows."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from proxy.cli import main
from proxy.record.store import EdgeKey, SqliteStore

SHOWN = "caf\\xe9"  # how the name's byte 0xe9 is shown
BASELINE = "version: 1\nflows:\n  - {caller: app, purpose: assistant, labels: [a]}\n"


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = os.path.join(tmp_path, os.fsdecode(b"caf\xe9.db"))
    written = SqliteStore(path)
    written.upsert([(EdgeKey("app", "assistant", "a", "org/m@v1", "a", "allow"), 0.0, 1.0, 3, None)])
    written.close()
    return path


def test_report_shows_the_names(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = os.path.join(tmp_path, os.fsdecode(b"r\xe9.html"))  # its name said in the line that says it is written
    assert main(["report", "--store", store, "--out", out]) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert said.startswith("wrote ") and "r\\xe9.html: 1 flows" in said, said
    text = Path(out).read_text(encoding="utf-8")
    assert f"{SHOWN}.db" in text and "org/m@v1" in text


def test_verify_and_its_json_show_the_names(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = os.path.join(tmp_path, os.fsdecode(b"b\xe9.yaml"))
    Path(baseline).write_text(BASELINE)
    assert main(["verify", "--store", store, "--baseline", baseline]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: ") and f"{SHOWN}.db" in out, out + err
    assert main(["verify", "--store", store, "--baseline", baseline, "--json"]) == 0
    out, err = capsys.readouterr()
    document = orjson.loads(out)
    assert document["ok"] is True, out + err
    assert document["store"].endswith(f"{SHOWN}.db") and document["baseline"].endswith("b\\xe9.yaml")
    assert main(["verify", "--store", store, "--integrity", "--json"]) == 0
    out, err = capsys.readouterr()
    document = orjson.loads(out)
    assert document["intact"] is True and document["store"].endswith(f"{SHOWN}.db"), out + err


def test_a_written_baseline_names_the_store(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = os.path.join(tmp_path, os.fsdecode(b"baseline-\xe9.yaml"))
    assert main(["verify", "--store", store, "--write-baseline", written]) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert said.startswith("wrote ") and "baseline-\\xe9.yaml: 1 entry" in said, said
    text = Path(written).read_text(encoding="utf-8")
    assert f"{SHOWN}.db" in text and "- caller: app" in text
