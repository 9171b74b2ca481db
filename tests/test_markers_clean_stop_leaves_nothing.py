"""A clean stop removed its running marker (`proxy.markers`) but left the directory that held it, `<store>.running`,
beside the user's store for good: `lineage.db.running/` in the directory a `serve` ran from, after every clean run,
`--workers N` too. The last process of a run to stop now removes the directory once it is empty; a start whose
directory is removed that way as it makes its marker makes it again (it kept no marker before: a kill went unsaid)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from proxy import markers
from tests.test_markers import config
from tests.test_workers import Serve, chat

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "STORE"}
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_a_clean_stop_leaves_no_marker_directory(vllm, tmp_path: Path, workers: int) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(data / "lineage.db")))
    more = ["--workers", str(workers)] if workers else []
    args = [sys.executable, "-m", "proxy", "serve", "--config", str(path), *more]
    serve = Serve(args, env={"PYTHONPATH": str(ROOT)})  # the code under test, whichever copy the venv installed
    try:
        addresses = serve.ready()
        assert (data / "lineage.db.running").is_dir()  # held while it runs
        assert chat(f"http://{addresses['http']}") == 200
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
    # before: lineage.db.running too (SQLite's -wal and -shm files may be there or not, as the last connection left them)
    assert [name for name in os.listdir(data) if not name.startswith("lineage.db-")] == ["lineage.db"], os.listdir(data)


def test_a_start_whose_directory_goes_as_it_begins_makes_it_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The last process of another run stopping removes the directory between this start's `mkdir` and its marker."""
    where = tmp_path / "lineage.db.running"  # (not there: removed just now)
    with caplog.at_level(logging.WARNING, "lineage_proxy"):
        marker = markers._hold(str(where), "r1", "serve", config(str(tmp_path / "lineage.db")))
    assert marker is not None, [r.getMessage() for r in caplog.records]
    assert os.path.exists(marker.path)
    marker.close()
    assert not where.exists()
