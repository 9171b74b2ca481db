"""`lineage_proxy_edge_store_failing`, `_edge_database_failing` and `_edge_journal_failing` are 1 while the store,
the database or the journal refuses writes (README), whatever `--workers N`: they were summed over workers, so a
sidecar of `--workers 2` whose database was down read 2 (an alert or a dashboard written for 1, as the README has it,
never matched; a fleet's `sum()` counted workers, not sidecars). Two workers' processes publish as a scrape makes them
(`Metrics.render`: each worker copies its sinks' lines into the shared files), the second answering the scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
FAILING = (
    "lineage_proxy_edge_store_failing",
    "lineage_proxy_edge_database_failing",
    "lineage_proxy_edge_journal_failing",
)

WORKER = """
import sys
from proxy import metrics

metrics.share(sys.argv[1])
lines = []
for name, value in zip(sys.argv[2].split(","), sys.argv[3].split(",")):
    lines += [f"# HELP {name} 1 while it refuses writes.", f"# TYPE {name} gauge", f"{name} {value}"]
lines += ["# HELP lineage_proxy_edge_journaled_total Edge writes journaled.",
          "# TYPE lineage_proxy_edge_journaled_total counter", "lineage_proxy_edge_journaled_total 3"]
print(metrics.Metrics().render(lines, []))
"""


def worker(shared: Path, values: tuple[int, int, int]) -> str:
    """One worker's scrape answer, its sinks' gauges at `values` (in FAILING's order)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", WORKER, str(shared), ",".join(FAILING), ",".join(map(str, values))],
                          capture_output=True, text=True, timeout=60, env=env, check=True)  # fmt: skip
    return done.stdout


def scraped(text: str) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_worker_failing_reads_1_not_the_number_of_workers(tmp_path: Path) -> None:
    worker(tmp_path, (1, 1, 1))  # the database down: every worker's writes fail, and its journal's too (disk full)
    seen = scraped(worker(tmp_path, (1, 1, 1)))
    assert {name: seen[name] for name in FAILING} == dict.fromkeys(FAILING, 1.0)  # HEAD: 2.0 each
    assert seen["lineage_proxy_edge_journaled_total"] == 6  # a counter is still the workers' sum


def test_one_worker_failing_reads_1_and_none_reads_0(tmp_path: Path) -> None:
    worker(tmp_path, (0, 1, 0))
    seen = scraped(worker(tmp_path, (0, 0, 0)))
    assert [seen[name] for name in FAILING] == [0.0, 1.0, 0.0]
