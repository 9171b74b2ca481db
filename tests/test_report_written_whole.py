"""`lineage-proxy report --out FILE` wrote FILE in place: opened (emptied) first, then written. A report that could
not be written whole left FILE empty or cut short, and the report there before (yesterday's, from a timer job) was
gone: a disk that filled up, and text no UTF-8 holds, which `check` let a config have (a YAML `"\\ud800"` in a route's
model or a pin) and which made the report fail with a traceback after emptying FILE. Such a config is now refused, and
the report is written beside FILE and renamed over it: FILE is the new report, or the old one."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.record.store import EdgeKey, SqliteStore

OLD = "<!DOCTYPE html><p>the report written before</p>\n"
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: u, url: "http://127.0.0.1:9", checkpoint: "org/pinned\\ud800"}]
routes: [{model: "x\\ud800", upstream: u}, {model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
"""


def store_of(path: Path, flows: int) -> Path:
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", f"label-{n:05d}", f"org/model-{n:05d}@v1", "", "allow"), 0.0, 1.0, 1,
                   None) for n in range(flows)])  # fmt: skip
    store.close()
    return path


def test_text_no_utf8_holds_is_refused_and_the_report_before_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Such text made `report` fail with a traceback after emptying FILE; `check` now refuses it at its path (as
    start and reload do), and so does `report --config`, before FILE is touched."""
    store = store_of(tmp_path / "lineage.db", 1)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    assert main(["check", "--config", str(config)]) == 1
    assert "routes[0].model: holds '\\ud800'" in capsys.readouterr().err
    out = tmp_path / "report.html"
    out.write_text(OLD)
    assert main(["report", "--store", str(store), "--config", str(config), "--out", str(out)]) != 0
    assert "upstreams[0].checkpoint: holds '\\ud800'" in capsys.readouterr().err
    assert out.read_text() == OLD  # the report there before, whole
    assert not list(tmp_path.glob(".*.tmp"))


def _small_files() -> None:  # in the child: files it writes stop growing at 256 KiB, EFBIG rather than a signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))


def test_a_report_that_cannot_be_written_whole_leaves_the_one_before(tmp_path: Path) -> None:
    store = store_of(tmp_path / "lineage.db", 3000)  # a report of ~2 MB
    out = tmp_path / "report.html"
    out.write_text(OLD)
    done = subprocess.run([sys.executable, "-m", "proxy", "report", "--store", str(store), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, preexec_fn=_small_files)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot write: File too large" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert out.read_text() == OLD  # the report there before, whole
    assert not list(tmp_path.glob(".*.tmp"))
    done = subprocess.run([sys.executable, "-m", "proxy", "report", "--store", str(store), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith(f"wrote {out}: 3000 flows"), done.stderr
    assert out.stat().st_size > 256 << 10 and "org/model-02999@v1" in out.read_text()
