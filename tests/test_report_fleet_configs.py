"""A fleet's store holds every sidecar's calls, and `report --config` showed one sidecar's policy beside them: the
denials of another sidecar's zone (`zone:payment-data`, B's) sat next to a "Policy in force" that did not list it (A's
config), and nothing said whose policy it was. A second `--config` silently replaced the first. Now `--config` is
taken once for each sidecar's config, each policy shown under its file's name, and the denials no config given
decided are named plainly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from proxy.record.store import EdgeKey, SqliteStore
from tests.test_report import browse, console

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, this tree's code (not the venv's installed one)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60, env=env)


SIDECAR = """listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llama, url: "http://127.0.0.1:9/v1"}}]
routes: [{{model: "*", upstream: llama}}]
zones:
  - {{name: {zone}, labels: [{label}], allow_purposes: [assistant]}}
callers: [{{name: {caller}, purposes: [assistant, evaluation], api_key_sha256: "{digest}"}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: none}}
lineage: {{store: "{store}"}}
"""


def fleet(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A store written by sidecars A (zone interaction-data) and B (zone payment-data, which refused evaluation)."""
    store = tmp_path / "fleet.db"
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(
        SIDECAR.format(zone="interaction-data", label="email", caller="glasses-app", digest="a" * 64, store=store)
    )
    b.write_text(SIDECAR.format(zone="payment-data", label="card", caller="eval-batch", digest="b" * 64, store=store))
    now = time.time()
    writer = SqliteStore(str(store))
    writer.upsert([
        (EdgeKey("glasses-app", "assistant", "email", "llama@v1", "", "allow"), now, now, 52, None),
        (EdgeKey("eval-batch", "assistant", "", "llama@v1", "", "allow"), now, now, 120, None),
        (EdgeKey("eval-batch", "evaluation", "card", "", "", "deny", "zone:payment-data"), now, now, 14,
         "zone payment-data does not allow purpose 'evaluation'"),
    ])  # fmt: skip
    writer.close()
    return store, a, b


def policy(page: str) -> str:
    found = re.search(r'<section id="policy">(.*?)</section>', page, re.S)
    assert found is not None, page[-2000:]
    return found.group(1)


def test_each_sidecars_config_is_shown_under_its_name(tmp_path: Path) -> None:
    store, a, b = fleet(tmp_path)
    out = tmp_path / "fleet.html"
    done = cli("report", "--store", str(store), "--config", str(a), "--config", str(b), "--out", str(out))
    assert done.returncode == 0, done.stderr
    shown = policy(out.read_text())
    headings = re.findall(r'<h3 class="config">Config <code>([^<]+)</code></h3>', shown)
    assert headings == [str(a), str(b)], shown[:2000]  # HEAD: [] (b's alone, unnamed: the first --config dropped)
    mine, theirs = shown.split(f"<code>{b}</code></h3>")
    assert "<b>interaction-data</b>" in mine and "<b>payment-data</b>" in theirs
    assert "Not in any config given" not in shown  # B's config decided its denials
    # in a real browser: renders, no console error, both policies there
    dom = browse(out, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0 and console(dom.stderr) == [], dom.stderr[-2000:]
    assert len(re.findall(r'<h3 class="config">', dom.stdout)) == 2
    shot = tmp_path / "fleet.png"
    assert browse(out, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1300,1400").returncode == 0


def test_one_sidecars_config_says_whose_policy_it_is_and_what_it_did_not_decide(tmp_path: Path) -> None:
    store, a, _ = fleet(tmp_path)
    out = tmp_path / "a.html"
    done = cli("report", "--store", str(store), "--config", str(a), "--out", str(out))
    assert done.returncode == 0, done.stderr
    shown = policy(out.read_text())
    assert f"the config given to the report, <code>{a}</code>" in shown  # HEAD: "From the config given to the report."
    note = re.search(r'<p class="note">(.*?)</p>', shown)
    assert note is not None, shown[:2000]
    assert "zone:payment-data" in note.group(1) and "(14 calls)" in note.group(1), note.group(1)
    assert "<b>interaction-data</b>" in shown and "<b>payment-data</b>" not in shown


def test_configs_naming_different_baselines_ask_for_one(tmp_path: Path) -> None:
    store, a, b = fleet(tmp_path)
    for path, name in ((a, "a"), (b, "b")):
        (tmp_path / f"{name}.baseline.yaml").write_text("version: 1\nflows: []\n")
        path.write_text(
            path.read_text().replace('lineage: {store: "', f'lineage: {{baseline: {name}.baseline.yaml, store: "')
        )
    done = cli(
        "report", "--store", str(store), "--config", str(a), "--config", str(b), "--out", str(tmp_path / "r.html")
    )
    assert done.returncode == 1 and "different baselines" in done.stderr and "--baseline" in done.stderr, done.stderr
    given = cli("report", "--store", str(store), "--config", str(a), "--config", str(b), "--baseline",
                str(tmp_path / "a.baseline.yaml"), "--out", str(tmp_path / "r.html"))  # fmt: skip
    assert given.returncode == 0, given.stderr
