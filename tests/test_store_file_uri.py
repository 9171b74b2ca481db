"""A SQLite store named as a `file:` URI (`file:lineage.db`, `file:/srv/lineage.db`, `file:///srv/lineage.db`,
`file://localhost/...`, `%XX` a byte) is one file, the URI's, to the writer (`lineage.store`) and to every reader
(`edges`, `verify`, `report` given it as `--store`): one function says which (`sqlite_file`). Until 2026-12-07 the
writer's SQLite (Debian's, built with URIs on) read the value as a URI, or refused it at the start, looking for a
directory named `file:` (`file:/srv/lineage.db`), while the readers looked for a file named `file:lineage.db` and said
"no lineage store there". A URI's parameters (`?mode=ro`) are refused by both, in the same words (proof13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage:
  store: "${URI}"
"""

# how the writer is given the store (its file: tmp_path / "run#2" / "lineage.db"), as a URI each
WRITTEN = {
    "file:/abs": "file:{dir}/run%232/lineage.db",
    "file:///abs": "file://{dir}/run%232/lineage.db",
    "file://localhost/abs": "file://localhost{dir}/run%232/lineage.db",
}
# and how each reader is given it, run in tmp_path
READ = [
    "file:run%232/lineage.db",
    "file:{dir}/run%232/lineage.db",
    "file:///{dir}/run%232/lineage.db#x",
    "run#2/lineage.db",
]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.mark.parametrize("written", WRITTEN)
def test_the_writer_and_every_reader_take_a_file_uri_as_its_file(  # type: ignore[no-untyped-def]
    vllm, make_proxy, loop_thread, tmp_path: Path, written: str
) -> None:
    _, upstream = vllm
    (tmp_path / "run#2").mkdir()
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, URI=WRITTEN[written].format(dir=tmp_path))
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10, headers={"x-data-labels": "team-a"},
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200, reply.text
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert (tmp_path / "run#2" / "lineage.db").is_file()
    assert not (tmp_path / "file:").exists() and not list(tmp_path.glob("*lineage.db*"))
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: anonymous, purpose: assistant, labels: [team-a]}\n")
    for store in (given.format(dir=tmp_path) for given in READ):
        listed = cli(tmp_path, "edges", "--store", store, "--json")
        assert listed.returncode == 0 and '"input_labels":["team-a"]' in listed.stdout, (store, listed)
        verified = cli(tmp_path, "verify", "--integrity", "--store", store)
        assert verified.returncode == 0 and ": intact: 2 chain entries" in verified.stdout, (store, verified)
        judged = cli(tmp_path, "verify", "--baseline", str(baseline), "--store", store)
        assert judged.returncode == 0, (store, judged)
        drawn = cli(tmp_path, "report", "--store", store, "--out", str(tmp_path / "report.html"))
        assert drawn.returncode == 0 and "team-a" in (tmp_path / "report.html").read_text(), (store, drawn)


PARAMETERS = "'file:lineage.db?mode=ro': a file: URI's parameters ('mode=ro') are not taken"


def test_a_file_uri_with_parameters_is_refused_by_check_and_every_reader(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("${UPSTREAM}", "http://127.0.0.1:9").replace("${URI}", "file:lineage.db?mode=ro"))
    (tmp_path / "lineage.db").write_bytes(b"")  # a file there: the readers would otherwise say none is
    checked = cli(tmp_path, "check", "--config", str(config))
    assert checked.returncode == 1 and f"lineage.store: {PARAMETERS}" in checked.stderr, checked
    for args, code in ((["edges"], 1), (["verify", "--integrity"], 2), (["report", "--out", "r.html"], 1)):
        said = cli(tmp_path, args[0], "--store", "file:lineage.db?mode=ro", *args[1:])
        assert said.returncode == code and PARAMETERS in said.stderr, (args, said)
        assert "no lineage store there" not in said.stderr, said


@pytest.mark.parametrize("store", READ)
def test_a_reader_given_a_file_uri_reads_its_file(tmp_path: Path, store: str) -> None:
    """The store written by path (a writer of a release before, or `lineage.store: run#2/lineage.db`)."""
    from proxy.record.store import EdgeKey, SqliteStore

    (tmp_path / "run#2").mkdir()
    written = SqliteStore(tmp_path / "run#2" / "lineage.db")
    written.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    written.close()
    listed = cli(tmp_path, "edges", "--store", store.format(dir=tmp_path), "--json")
    assert listed.returncode == 0 and '"count":3' in listed.stdout, listed


def test_a_value_beginning_with_file_in_capitals_is_a_file_so_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite reads a URI by a `file:` so written alone (`sqlite3ParseUri`'s memcmp): `FILE:lineage.db` is the file so
    named to it, and to the writer and every reader alike, as it was before `file:` URIs were read, not `lineage.db`:
    an upgrade that read it so would leave the record written there and start another (review revproof13)."""
    import sqlite3

    from proxy.record.store import EdgeKey, SqliteStore

    monkeypatch.chdir(tmp_path)
    sqlite3.connect("FILE:made-by-sqlite.db").close()  # what SQLite itself makes of such a value
    assert (tmp_path / "FILE:made-by-sqlite.db").is_file() and not (tmp_path / "made-by-sqlite.db").exists()
    written = SqliteStore("FILE:lineage.db")
    written.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    written.close()
    assert (tmp_path / "FILE:lineage.db").is_file() and not (tmp_path / "lineage.db").exists()
    listed = cli(tmp_path, "edges", "--store", "FILE:lineage.db", "--json")
    assert listed.returncode == 0 and '"count":3' in listed.stdout, listed
    verified = cli(tmp_path, "verify", "--integrity", "--store", "FILE:lineage.db")
    assert verified.returncode == 0 and ": intact: 2 chain entries" in verified.stdout, verified
    assert not (tmp_path / "lineage.db").exists()


@pytest.mark.parametrize("store", ["file:run\udcff.db", "file:run%FF.db"])
def test_a_file_uri_whose_bytes_are_not_utf8_names_the_file_of_those_bytes(tmp_path: Path, store: str) -> None:
    """A reader given `file:` and a name whose bytes are not UTF-8 (a command line's, read as Python reads one: byte
    0xff is '\\udcff') reads the file of those bytes, as `%FF` names it, as SQLite reads the URI; it stopped with a
    traceback (UnicodeEncodeError: `unquote_to_bytes` encodes text as UTF-8) (review revproof13)."""
    import os

    from proxy.record.store import EdgeKey, SqliteStore

    written = SqliteStore(tmp_path / os.fsdecode(b"run\xff.db"))
    written.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    written.close()
    listed = cli(tmp_path, "edges", "--store", store, "--json")
    assert listed.returncode == 0 and '"count":3' in listed.stdout, listed
    verified = cli(tmp_path, "verify", "--integrity", "--store", store)
    assert verified.returncode == 0 and ": intact: 2 chain entries" in verified.stdout, verified
    assert "Traceback" not in listed.stderr + verified.stderr


def test_a_refused_file_uri_shows_a_byte_that_is_not_utf8_as_a_byte(tmp_path: Path) -> None:
    """A refused URI's byte 0xff (a command line's, Python's '\\udcff') is said `\\xff`, as every reader shows such a
    byte in a path (`shown_path`), not `\\udcff`, a character no name holds (rec15)."""
    said = cli(tmp_path, "edges", "--store", "file:run\udcff.db?mode=ro")
    assert said.returncode == 1, said
    assert "'file:run\\xff.db?mode=ro': a file: URI's parameters ('mode=ro') are not taken" in said.stderr, said
    assert "udcff" not in said.stderr and "Traceback" not in said.stderr
