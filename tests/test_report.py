"""The report from a store made by real calls: one self-contained file (no external URL), denials with the
reason the caller was given, opened in a real headless Chromium: it renders the graph, logs no console
error, and its screenshot is not blank. In CI (`LP_REQUIRE_REAL_SERVERS=1`) a missing chromium fails."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from proxy.record.store import EdgeKey, SqliteStore
from proxy.report import render
from tests.conftest import require_real_servers
from tests.traffic import approved_traffic, proxy_config, send

BASELINE = """
version: 1
flows:
  - {caller: glasses-app, purpose: assistant, labels: [user-interaction], checkpoints: ["org/llama@*"]}
  - {caller: ads-ranker, purpose: ads, labels: [public]}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def report(vllm, make_proxy, loop_thread, tmp_path) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """A report written by `lineage-proxy report` from real traffic, and its text."""
    _, upstream = vllm
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(BASELINE)
    config_text = proxy_config(baseline=str(baseline))
    proxy = make_proxy(config_text, UPSTREAM=upstream)
    approved_traffic(proxy.url)
    assert send(proxy.url, "ops", "assistant", labels="user-interaction") == 200  # unapproved, let through
    assert send(proxy.url, "ads-ranker", "ads", labels="user-interaction") == 403
    loop_thread.run(proxy.process.runtime.sinks.flush())
    config = tmp_path / "proxy.yaml"
    config.write_text(config_text.replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db")))
    out = tmp_path / "report.html"
    result = cli("report", "--store", str(tmp_path / "lineage.db"), "--config", str(config), "--out", str(out))
    assert result.returncode == 0 and result.stdout.startswith(f"wrote {out}: 5 flows"), result.stderr
    return out, out.read_text(encoding="utf-8")


def test_the_file_is_self_contained_and_says_why_calls_were_denied(report) -> None:  # type: ignore[no-untyped-def]
    _, text = report
    assert not re.search(r"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text and "<img" not in text and "@import" not in text
    assert "Content-Security-Policy\" content=\"default-src 'none'" in text
    # the reason the caller was told, from the store, next to the rule
    assert "purpose &#x27;ads&#x27; is not allowed for data labelled &#x27;user-interaction&#x27;" in text
    assert "zone:interaction-data" in text
    assert "new-caller" in text and "new caller &#x27;ops&#x27;" in text  # the unapproved flow, and why
    assert "Policy Zones" in text and "interaction-data" in text and "org/llama@v1" in text


def test_an_older_store_without_reasons_still_reports(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE edges (caller TEXT, purpose TEXT, input_labels TEXT, checkpoint TEXT, output_labels TEXT, "
               "decision TEXT, first_seen REAL, last_seen REAL, count INTEGER, rule TEXT, PRIMARY KEY (caller, purpose, "
               "input_labels, checkpoint, output_labels, decision)) WITHOUT ROWID")  # fmt: skip
    db.execute("INSERT INTO edges VALUES ('a', 'ads', 'x', '', '', 'deny', 1, 2, 3, 'zone:z')")
    db.commit()
    db.close()
    rows = SqliteStore(path, readonly=True).rows()
    assert rows[0].reason is None  # read-only: the file is not changed
    assert "not recorded (a store older than reasons)" in render(rows, store=str(path), window="all recorded")
    store = SqliteStore(path)  # a writer adds the column
    store.upsert([(EdgeKey("a", "ads", "x", "", "", "deny", "zone:z"), 5, 6, 1, "told why")])
    assert [(r.count, r.reason) for r in store.rows()] == [(4, "told why")]
    store.close()


def test_each_kind_of_denial_of_a_flow_is_its_own_row_and_only_the_unapproved_one_is_marked() -> None:
    """A route's refusal then a zone's, for one caller, purpose and labels: two edges, so the report shows
    the kind the baseline does not approve (one edge showed the last kind only)."""
    from proxy.baseline import parse_baseline
    from proxy.record.store import EdgeRow

    flow = ("ads-ranker", "ads", "user-interaction", "", "", "deny")
    rows = [EdgeRow(EdgeKey(*flow, "route:restricted"), 1, 1, 1, "the route refuses"),
            EdgeRow(EdgeKey(*flow, "zone:interaction-data"), 2, 3, 2, "the zone refuses")]  # fmt: skip
    assert rows[0].key != rows[1].key and rows[1].key.rule == "zone:interaction-data"
    baseline = parse_baseline("version: 1\nflows:\n  - {caller: ads-ranker, purpose: ads, labels: [user-interaction], "
                              "decisions: [deny], rules: ['zone:interaction-data']}\n")  # fmt: skip
    text = render(rows, store="s.db", window="all recorded", baseline=baseline)
    flows = text[text.index('<section id="flows">') :]
    assert re.search(r'route:restricted</td><td><span class="chip unapproved">no</span>', flows)
    assert re.search(r'zone:interaction-data</td><td><span class="chip ok">yes</span>', flows)
    assert "deny by rule route:restricted" in text[text.index('<section id="unapproved">') :]


# -- in a real browser


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if require_real_servers():
            pytest.fail("chromium is missing: the report must be tested in a real browser (.ci/run installs "
                        "Debian's chromium: apt-get install chromium)")  # fmt: skip
        pytest.skip("chromium is not installed (apt-get install chromium); CI requires it")
    return found


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium headless on a local file, offline, with its console on stderr."""
    command = [
        chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def console(stderr: str) -> list[str]:
    """What the page wrote to its console (uncaught errors, refused fetches): Chromium logs it as CONSOLE."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (still filtered) scanlines of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, at = [], 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
        if kind == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    return width, height, zlib.decompress(b"".join(chunks))


def busy(path: Path) -> float:
    """The share of filtered scanline bytes that are not zero: a blank page filters to zeros."""
    _, _, raw = png_pixels(path)
    return 1 - raw.count(0) / len(raw)


def test_the_page_has_no_console_error_detector_blind_spot(tmp_path: Path) -> None:
    """The console check below would see a broken page: it is not passing by seeing nothing."""
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><p>x</p><script>throw new Error('boom')</script></body></html>")
    result = browse(broken, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console(result.stderr)), result.stderr[-2000:]


def test_it_renders_in_chromium_with_the_graph_and_no_console_error(report, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page, _ = report
    dom = browse(page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console(dom.stderr) == [], console(dom.stderr)
    assert '<svg id="flow-graph"' in dom.stdout
    names = set(re.findall(r'<g class="node[^"]*" data-name="([^"]+)"', dom.stdout))
    assert {"user-interaction", "public", "org/llama@v1", "refused at the boundary", "assistant · glasses-app",
            "ads · ads-ranker", "assistant · ops"} <= names, names  # fmt: skip
    kinds = set(re.findall(r'<path class="link ([a-z-]+)"', dom.stdout))
    assert kinds == {"allow", "deny", "unapproved"}, kinds


def test_the_screenshot_shows_the_report(report, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page, _ = report
    shot = tmp_path / "report.png"
    result = browse(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1300,1400")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert console(result.stderr) == []
    width, height, raw = png_pixels(shot)
    assert (width, height) == (1300, 1400) and len(raw) >= height * (1 + width * 3)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    control = tmp_path / "blank.png"
    browse(blank, tmp_path / "profile", f"--screenshot={control}", "--window-size=1300,1400")
    assert busy(control) < 0.001 < 0.02 < busy(shot), (busy(control), busy(shot))
    if os.environ.get("LP_REPORT_SCREENSHOT"):  # where a person can look at it
        shutil.copy(shot, os.environ["LP_REPORT_SCREENSHOT"])
