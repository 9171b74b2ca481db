"""What start-up made is frozen (gc.freeze) once the proxy serves, in `serve` and in each worker of
`serve --workers N`: a full collection under load walked the ~50,000 objects of the imports, the config and
the pipeline again each time, a 40-90 ms pause on the hot path (#12)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import proxy.workers as workers_module

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
"""

# `serve` in this subprocess (so the test's own process is not frozen): once the serving process has said
# it is ready (`_take_held_sighup` runs right after, in both modes; in a supervisor too, which serves
# nothing), it reports what the collector tracks and stops the proxy
SERVE = """
import gc, multiprocessing, os, signal, sys
from proxy import workers
from proxy.config import load

taken = workers._take_held_sighup
workers_n = int(sys.argv[2])

def serving():
    if workers_n and multiprocessing.parent_process() is None:  # the supervisor, once its workers serve
        return taken()
    print(f"serving: frozen {gc.get_freeze_count()} tracked {len(gc.get_objects())} thresholds {gc.get_threshold()}",
          file=sys.stderr, flush=True)
    os.kill(os.getppid() if workers_n else os.getpid(), signal.SIGTERM)  # the supervisor stops its workers
    return taken()

workers._take_held_sighup = serving
config = load(sys.argv[1])
sys.exit(workers.run_workers(sys.argv[1], config, workers_n) if workers_n else workers.run_single(sys.argv[1], config))
"""


@pytest.mark.parametrize("workers", [0, 1], ids=["serve", "worker"])
def test_what_start_up_made_is_frozen_once_the_proxy_serves(vllm, tmp_path: Path, workers: int) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db")))
    done = subprocess.run([sys.executable, "-c", SERVE, str(config), str(workers)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = re.search(r"serving: frozen (\d+) tracked (\d+) thresholds (.*)", done.stderr)
    assert found, done.stderr
    frozen, tracked = int(found.group(1)), int(found.group(2))
    # everything start-up made is in the permanent generation; what the collector still walks is the little
    # made since (the ready line, the loop's handles)
    assert frozen > 10_000, done.stderr
    assert tracked < frozen // 10, done.stderr
    assert found.group(3) == str(workers_module.GC_THRESHOLDS)  # young collections every 10,000 allocations
