"""A stderr that refuses the log writer's write (its file's disk full, `2>/dev/full`: ENOSPC; a pipe whose reader is
gone: EPIPE) lost the lines of that write uncounted: `lineage_proxy_log_lines_dropped_total` said 0 and no line said
so once the disk had room again. With `telemetry.exporter: none` (the default), a call that carries no data (a model
listing, which has no edge) was then in no record and counted lost nowhere. Its lines are now counted as they are
lost, and said in one ERROR line once stderr takes a write again. Driven with the real openai SDK, stderr a file on a
real tmpfs filled to its last block."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.harness import fill
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: origin, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}"}
logging: {access: true}
"""
WAIT_S = 30.0


def _dropped(admin: str) -> int:
    text = httpx.get(f"http://{admin}/metrics", timeout=WAIT_S).text
    found = re.search(r"^lineage_proxy_log_lines_dropped_total (\S+)$", text, re.M)
    assert found is not None, text
    return int(float(found.group(1)))


def _until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # a poll of what the proxy writes, not a synchronisation of it


def test_lines_a_full_disk_refused_are_counted_and_said(vllm, tiny_disk: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    log = tiny_disk / "proxy.log"
    with log.open("ab") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config)], stdout=subprocess.PIPE,
                                stderr=stderr, text=True,
                                env={**os.environ, "UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("lineage-proxy ready "), ready
        addresses = dict(part.split("=", 1) for part in ready.split()[2:])
        client = openai.OpenAI(base_url=f"http://{addresses['http']}/v1", api_key="unused", max_retries=0)
        _until(lambda: "serving" in log.read_text(), "the serving line never came")
        fill(tiny_disk)  # the log file's last page has room left; past it, each write fails: ENOSPC
        calls = 0
        while calls < 400 and not _dropped(addresses["admin"]):
            assert client.models.list().data  # no edge: its access line is its record (no span: exporter none)
            client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
            calls += 2
        assert _dropped(addresses["admin"]), "the lines lost were never counted"
        (tiny_disk / "filler").unlink()  # room again: the next write says what was lost
        assert client.models.list().data
        _until(lambda: "were lost: stderr refused" in log.read_text(), "the lines lost were never said")
        lost = _dropped(addresses["admin"])  # (none since: the write that said them succeeded)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0
    text = log.read_text()
    whole = [line for line in text.splitlines() if re.search(r" INFO proxy\[\d+\] lineage_proxy\.access: ", line)]
    # every call's line whole in the file or counted lost, not both (the one a short write cut is counted; those it
    # wrote whole are not: review revrec12)
    assert len(whole) + lost == calls + 1 > len(whole), (len(whole), lost, calls)
    (said,) = [line for line in text.splitlines() if "were lost: stderr refused" in line]
    assert said.endswith(f"lineage_proxy: {lost} log lines (access lines among them) were lost: stderr refused their "
                         "write (OSError: [Errno 28] No space left on device) (counted in "
                         "lineage_proxy_log_lines_dropped_total)"), said  # fmt: skip
