"""With `logging.format: json` the line saying why `serve` cannot start is a JSON object too.

Every other stderr line of `serve` is one JSON object under `format: json` (tests/test_logging.py), but the one a
failed start writes (a port in use, a store that cannot be opened) was printed as plain text,
`lineage-proxy: cannot listen on ...`: a log pipeline parsing JSON lines dropped or mangled the one line saying why a
sidecar is crash-looping."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.harness import dead_port


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failed_start_says_why_in_a_json_line(tmp_path: Path, taken_port: int, workers: str) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(f"listen: {{http: '127.0.0.1:{taken_port}'}}\n"
                      f"upstreams: [{{name: m, url: 'http://127.0.0.1:{dead_port()}'}}]\n"
                      "routes: [{model: '*', upstream: m}]\nlineage: {store: null}\nlogging: {format: json}\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--workers", workers],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert lines, "nothing said"
    for line in lines:
        assert line.startswith("{"), f"not a JSON line: {line!r}"
    errors = [orjson.loads(line) for line in lines if orjson.loads(line)["level"] == "error"]
    assert [e["message"] for e in errors] == [
        f"cannot listen on 127.0.0.1:{taken_port}: address already in use "
        "(stop what listens there, or set listen.http to a free port)"
    ]
    assert {"time", "process", "pid", "logger"} <= set(errors[0])
