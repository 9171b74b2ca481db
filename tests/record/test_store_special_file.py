"""A SQLite store path naming a FIFO (a store replaced by one, or a link to one): SQLite opening it waits for a writer
to open the FIFO, for ever, so `verify` (a CI gate), `edges` and `report` hung, and so did `check` and `serve` at
their start, where each now says what the path names and stops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: m, url: "http://127.0.0.1:1"}]
routes: [{model: "*", upstream: m}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: STORE}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "lineage.db"
    os.mkfifo(path)
    link = tmp_path / "link.db"  # a link to it is read as what it names
    link.symlink_to(path)
    return link


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("verify", "--integrity"), 2),
        (("verify", "--baseline", "BASELINE"), 2),
        (("edges",), 1),
        (("report", "--out", "OUT"), 1),
        (("report", "--integrity", "--out", "OUT"), 1),
    ],
    ids=["verify --integrity", "verify --baseline", "edges", "report", "report --integrity"],
)
def test_a_reader_says_what_the_path_names(fifo: Path, tmp_path: Path, args: tuple[str, ...], code: int) -> None:
    (tmp_path / "baseline.yaml").write_text("version: 1\nflows: []\n")
    given = [str(tmp_path / "baseline.yaml") if a == "BASELINE" else str(tmp_path / "r.html") if a == "OUT" else a
             for a in args]  # fmt: skip
    done = cli(given[0], "--store", str(fifo), *given[1:])
    assert done.returncode == code, done.stdout + done.stderr
    assert f"{fifo}: is a FIFO, not a lineage store" in done.stderr, done.stderr
    assert not (tmp_path / "r.html").exists()


def test_check_names_it(fifo: Path, tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("STORE", str(fifo)))
    done = cli("check", "--config", str(config))
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert f"lineage.store: cannot open the lineage store {fifo} (a link to" in said, said
    assert "it is a FIFO, not a file" in said, said


@pytest.fixture
def beside(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A store (a file, one edge in it) with a FIFO beside it, where SQLite opens its -journal (or -wal, -shm)."""
    from proxy.record.store import EdgeKey, SqliteStore

    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 100.0, 100.0, 1, None)])
    store.close()
    os.mkfifo(f"{path}{request.param}")
    return path


@pytest.mark.parametrize("beside", ["-journal"], indirect=True)
@pytest.mark.parametrize(("args", "code"), [(("verify", "--integrity"), 2), (("edges",), 1)], ids=["verify", "edges"])
def test_a_reader_names_a_fifo_beside_the_store(beside: Path, args: tuple[str, ...], code: int) -> None:
    """SQLite opens the store's -journal, to see whether it is a journal to roll back, before it reads the store: a
    FIFO there hung `verify` and `edges` as the store's own file did (review revproof12)."""
    done = cli(args[0], "--store", str(beside), *args[1:])
    assert done.returncode == code, done.stdout + done.stderr
    assert f"{beside}: {beside}-journal beside it is a FIFO, not a file SQLite makes (remove it)" in done.stderr, (
        done.stderr
    )


WRITE = """import sys
from proxy.record.store import EdgeKey, SqliteStore
SqliteStore(sys.argv[1]).upsert([(EdgeKey("app", "assistant", "b", "ck", "", "allow"), 101.0, 101.0, 1, None)])
"""


@pytest.mark.parametrize("beside", ["-journal", "-wal"], indirect=True)
def test_check_and_a_writer_name_a_fifo_beside_the_store(beside: Path, tmp_path: Path) -> None:
    """`check` called such a store valid, and a writer (`serve`) opening it hung at its start (-journal) or failed
    each write, `disk I/O error` (-wal): it names the FIFO at its start (review revproof12)."""
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("STORE", str(beside)))
    done = cli("check", "--config", str(config))
    said = done.stdout + done.stderr
    fifo = next(name for name in (f"{beside}-journal", f"{beside}-wal") if os.path.exists(name))
    assert done.returncode == 1, said
    assert f"lineage.store: cannot open the lineage store {beside}: {fifo} beside it is a FIFO" in said, said
    wrote = subprocess.run([sys.executable, "-c", WRITE, str(beside)], capture_output=True, text=True, timeout=60)
    assert wrote.returncode == 1 and f"{fifo} beside it is a FIFO" in wrote.stderr, wrote.stderr
