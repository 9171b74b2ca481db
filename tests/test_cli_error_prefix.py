"""Every command's line saying why it stops begins `lineage-proxy <command>: `, run as a user runs it (a real process,
its stderr and exit code). Until 2026-12-07 `verify` and `report` said theirs so while `serve`, `demo`, `check`
(`--explain`) and `edges` began `lineage-proxy: `, naming no command."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example.yaml"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _cases(tmp: Path, port: int) -> dict[str, tuple[list[str], int, str]]:
    """command: (its arguments, its exit, the start of the line it stops on)."""
    config = tmp / "serve.yaml"
    config.write_text(f"listen:\n  http: 127.0.0.1:{port}\nupstreams:\n  - name: u\n    url: http://127.0.0.1:9\n"
                      f"routes:\n  - model: '*'\n    upstream: u\nlineage:\n  store: {tmp / 'l.db'}\n")  # fmt: skip
    baseline = tmp / "baseline.yaml"
    baseline.write_text("flows: []\n")
    none = str(tmp / "none.db")
    return {
        "serve": (["serve", "--config", str(config)], 1, f"cannot listen on 127.0.0.1:{port}: address already in use"),
        "demo": (["demo", "--keep", "--port", str(port)], 1, f"cannot listen on 127.0.0.1:{port}: address already in use"),
        "check": (["check", "--config", str(EXAMPLE), "--explain", "--caller", "nobody"], 1, "unknown caller 'nobody'"),
        "edges": (["edges", "--store", none], 1, f"{none}: no lineage store there"),
        "verify": (["verify", "--store", none, "--baseline", str(baseline)], 2, f"{none}: no lineage store there"),
        "report": (["report", "--store", none, "--out", str(tmp / "r.html")], 1, f"{none}: no lineage store there"),
    }  # fmt: skip


@pytest.mark.parametrize("command", ["serve", "demo", "check", "edges", "verify", "report"])
def test_each_commands_error_line_names_it(tmp_path: Path, taken_port: int, command: str) -> None:
    args, code, said = _cases(tmp_path, taken_port)[command]
    result = subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("lineage-proxy")]
    assert len(errors) == 1 and errors[0].startswith(f"lineage-proxy {command}: {said}"), result.stderr
