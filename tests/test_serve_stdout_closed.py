"""`serve` started with no stdout (`1>&-`: Python's `sys.stdout` is None) stops on SIGTERM with exit 0, as it does
otherwise; before, its exit flushed `sys.stdout` and exited 1 with an AttributeError's traceback. With
`exporter: console`, whose spans would then have nowhere to go (nor with a stdout open for reading alone, or a pipe
whose reader is gone), it refuses its start in one line, exit 1, as a store it cannot open is refused, and a reload to
that exporter is refused: before, it served and every span failed, said once in an export's line. With another
exporter a stdout that refuses the ready line (its reader gone, a disk full) ends no start: it said nothing and exited
141, or exited 1 with a traceback, its `--workers` stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.harness import dead_port
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: "127.0.0.1:PORT"}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: SPANS_TO}
lineage: {store: "STORE"}
"""


def _config(tmp_path: Path, port: int, upstream: str, exporter: str) -> Path:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("PORT", str(port)).replace("UPSTREAM", upstream).replace("SPANS_TO", exporter)
                      .replace("STORE", str(tmp_path / "l.db")))  # fmt: skip
    return config


REFUSED: Final = (
    "lineage-proxy serve: telemetry.exporter: console: {why}, where its spans would have nowhere to go (start it with a "
    "stdout, a file or a pipe, or set telemetry.exporter to otlp or none)\n"
)

# (a stdout open for reading alone, `1</dev/null`: until 2026-12-07 the ready line's write raised EBADF there, and the
# start ended with a traceback, exit 1, whatever the exporter)
READER_GONE: Final = "(a pipe whose reader is gone)"  # no redirect: bash started with that pipe as its stdout
NO_STDOUT: Final = [
    ("1>&-", "the proxy was started with no stdout (1>&-)"),
    ("1</dev/null", "the proxy's stdout is open for reading only (1</dev/null)"),
    (READER_GONE, "the proxy's stdout is a pipe or socket whose reader is gone (EPIPE)"),
]


def _watched(
    proc: subprocess.Popen[str], marks: list[tuple[tuple[str, ...], threading.Event]]
) -> tuple[list[str], threading.Thread]:
    """Read the process's stderr into a list on a thread, setting each event once a line holds all its words."""
    lines: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            for words, event in marks:
                if all(word in line for word in words):
                    event.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def _chat(port: int) -> None:
    reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200


@contextlib.contextmanager
def _started_with(redirect: str) -> Iterator[tuple[str, int | None]]:
    """The redirect to start `serve` with and the stdout its shell gets (None: the test's own)."""
    if redirect != READER_GONE:
        yield redirect, None
        return
    read, write = os.pipe()
    os.close(read)  # (until 2026-12-07 the ready line's write found it: EPIPE, exit 141, nothing said)
    try:
        yield "", write
    finally:
        os.close(write)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("redirect", "why"), NO_STDOUT)
def test_a_console_exporter_with_no_stdout_refuses_the_start(  # type: ignore[no-untyped-def]
    vllm, tmp_path: Path, redirect: str, why: str, workers: int
) -> None:
    _, upstream = vllm
    port = dead_port()
    config = _config(tmp_path, port, upstream, "console")
    with _started_with(redirect) as (shell, stdout):
        command = f"exec {sys.executable} -m proxy serve --config {config} --workers {workers} {shell}"
        done = subprocess.run(["bash", "-c", command], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(REFUSED.format(why=why)), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "l.db").exists()  # refused before anything was opened, nor a port claimed
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)


@pytest.mark.parametrize(("redirect", "why"), NO_STDOUT)
def test_a_serve_without_stdout_stops_with_0_and_refuses_a_reload_to_console(  # type: ignore[no-untyped-def]
    vllm, tmp_path: Path, redirect: str, why: str
) -> None:
    _, upstream = vllm
    port = dead_port()
    config = _config(tmp_path, port, upstream, "none")
    with _started_with(redirect) as (shell, stdout):
        command = f"exec {sys.executable} -m proxy serve --config {config} {shell}"
        proc = subprocess.Popen(["bash", "-c", command], stdout=stdout, stderr=subprocess.PIPE, text=True)
    serving = threading.Event()
    refused = threading.Event()
    lines, reader = _watched(proc, [((" serving http=",), serving), (("reload refused",), refused)])
    try:
        assert serving.wait(30), "".join(lines)
        _chat(port)
        config.write_text(config.read_text().replace("exporter: none", "exporter: console"))
        proc.send_signal(signal.SIGHUP)
        assert refused.wait(30), "".join(lines)
        _chat(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        reader.join(10)
    said = "".join(lines)
    assert code == 0, said
    assert "Traceback" not in said
    refusal = next(line for line in lines if "reload refused" in line)
    assert REFUSED.format(why=why)[len("lineage-proxy serve: ") : -1] in refusal
    assert "span export failed" not in said


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stdout_that_refuses_the_ready_line_ends_no_start(vllm, tmp_path: Path, workers: int) -> None:  # type: ignore[no-untyped-def]
    """`1>/dev/full`: every write ENOSPC, the ready line's first. Until 2026-12-07 it ended the start with a traceback,
    exit 1 (with `--workers 2`, its supervisor's, its workers stopped); now it is said in a line and the proxy serves."""
    _, upstream = vllm
    port = dead_port()
    config = _config(tmp_path, port, upstream, "none")
    command = f"exec {sys.executable} -m proxy serve --config {config} --workers {workers} 1>/dev/full"
    proc = subprocess.Popen(["bash", "-c", command], stderr=subprocess.PIPE, text=True)
    serving = threading.Event()
    announcer = "proxy[" if workers == 1 else "supervisor["  # the process that writes the ready line
    lines, reader = _watched(proc, [((announcer, " serving http="), serving)])
    try:
        assert serving.wait(30), "".join(lines)
        _chat(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        reader.join(30)
    said = "".join(lines)
    assert code == 0, said
    assert "Traceback" not in said
    warned = [line for line in lines if "the ready line could not be written" in line]
    assert len(warned) == 1 and announcer in warned[0], said
    assert warned[0].rstrip().endswith("the ready line could not be written to stdout (OSError: [Errno 28] No space "
                                       "left on device)"), warned  # fmt: skip
