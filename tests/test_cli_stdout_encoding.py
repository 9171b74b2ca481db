"""A stdout whose encoding cannot write a name of the store (`PYTHONIOENCODING=ascii`, a Latin-1 one, the C locale
with Python's UTF-8 mode off): `edges`, `verify` and `report` ended with a traceback (UnicodeEncodeError), exit 1,
their output cut where the name came. A character the encoding cannot write is written as a JSON escape (`\\u00e9`,
and two past U+FFFF, `\\ud83d\\ude00`), and `--json` writes every character past ASCII so on any stdout but a UTF-8
one, so that it is JSON a reader taking UTF-8 (jq) reads back to the same names: on a Latin-1 stdout `é` went out as
one byte, no UTF-8. A UTF-8 stdout is written as ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import pytest

from proxy.record.store import EdgeKey, SqliteStore

MODEL: Final = "modèle-中-😀"  # a route's model: its rule is `route:MODEL`, and its reason names it
REASON: Final = f"purpose 'ads' is not allowed for model '{MODEL}' (route {MODEL} allows: assistant)"
# (the environment, stdout's encoding, the model as written there)
STDOUTS: Final = {
    "ascii": ({"PYTHONIOENCODING": "ascii"}, "ascii", "mod\\u00e8le-\\u4e2d-\\ud83d\\ude00"),
    "latin-1": ({"PYTHONIOENCODING": "latin-1"}, "latin-1", "modèle-\\u4e2d-\\ud83d\\ude00"),
    "C locale": ({"LC_ALL": "C", "PYTHONUTF8": "0"}, "ascii", "mod\\u00e8le-\\u4e2d-\\ud83d\\ude00"),
}


def _store(path: Path) -> str:
    store = SqliteStore(path, sidecar="laptop")
    now = time.time()
    store.upsert([(EdgeKey("app", "ads", "pii:email", "", "", "deny", f"route:{MODEL}"), now, now, 2, REASON),
                  (EdgeKey("app", "assistant", "pii:email", "m@1", "pii:email", "allow", ""), now, now, 3, None)])  # fmt: skip
    store.close()
    return str(path)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "LC_ALL", "LANG")}
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, env=environ | env, timeout=60)


@pytest.mark.parametrize("stdout", sorted(STDOUTS))
def test_names_a_stdout_cannot_write_are_escaped(tmp_path: Path, stdout: str) -> None:
    store = _store(tmp_path / "l.db")
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("flows: []\n")
    env, encoding, written = STDOUTS[stdout]
    table = _run(env, "edges", "--store", store)
    assert (table.returncode, table.stderr) == (0, b"")
    header, denied, allowed = table.stdout.decode(encoding).splitlines()
    assert f"route:{written}" in denied
    # the columns keep their places: each cell as wide as it is written
    assert denied.index("laptop") == header.index("recorded by") == allowed.index("laptop"), table.stdout
    for args in (["edges", "--store", store, "--json"], ["verify", "--store", store, "--baseline", str(baseline),
                                                          "--json"]):  # fmt: skip
        result = _run(env, *args)
        assert result.returncode == (0 if args[0] == "edges" else 1) and result.stderr == b"", result.stderr
        assert result.stdout.isascii()  # JSON as UTF-8 reads it, and as stdout's encoding does
        read = [json.loads(line) for line in result.stdout.splitlines()] if args[0] == "edges" else [
            flow | {"rule": flow["edge"]["rule"], "reason": flow["edge"]["reason"]}
            for flow in json.loads(result.stdout)["unapproved"]]  # fmt: skip
        assert {(row["rule"], row["reason"]) for row in read} >= {(f"route:{MODEL}", REASON)}, read
    said = _run(env, "verify", "--store", store, "--baseline", str(baseline))
    assert (said.returncode, said.stderr) == (1, b""), said.stderr
    assert f"the caller was told: purpose 'ads' is not allowed for model '{written}'" in said.stdout.decode(encoding)
    for args in (["verify", "--store", store, "--integrity"], ["report", "--store", store, "--out",
                                                               str(tmp_path / "rapport-é.html")]):  # fmt: skip
        result = _run(env, *args)
        assert (result.returncode, result.stderr) == (0, b""), args


def test_a_utf8_stdout_is_written_as_ever(tmp_path: Path) -> None:
    store = _store(tmp_path / "l.db")
    result = _run({"PYTHONIOENCODING": "utf-8"}, "edges", "--store", store, "--json")
    assert result.returncode == 0
    assert f'"rule":"route:{MODEL}"'.encode() in result.stdout
    assert f"route:{MODEL}".encode() in _run({"PYTHONIOENCODING": "utf-8"}, "edges", "--store", store).stdout


@pytest.mark.parametrize("stdout", sorted(STDOUTS))
def test_json_keeps_a_name_that_reads_as_an_escape_apart(tmp_path: Path, stdout: str) -> None:
    """A name holding `\\u00e9` as its six characters and one holding `é` are written apart by `--json` (the first's
    backslash is JSON's own escape, `\\\\u00e9`), so each reads back as it is in the store (review revrec12): the table
    writes both as `\\u00e9`, as it writes a hidden character's escape (`\\u200b`) beside the same six characters."""
    store = SqliteStore(tmp_path / "l.db", sidecar="laptop")
    now = time.time()
    names = ["a\\u00e9b", "a\u00e9b", "a\\\u00e9b", "a\\\\u00e9b"]
    store.upsert([(EdgeKey("app", "ads", "pii:email", "", "", "deny", f"route:{name}"), now, now, 1, name)
                  for name in names])  # fmt: skip
    store.close()
    result = _run(STDOUTS[stdout][0], "edges", "--store", str(tmp_path / "l.db"), "--json")
    assert result.returncode == 0 and result.stdout.isascii(), result.stderr
    assert sorted(json.loads(line)["reason"] for line in result.stdout.splitlines()) == sorted(names)
