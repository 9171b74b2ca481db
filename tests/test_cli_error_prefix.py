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

from proxy.record.store import SqliteStore

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


@pytest.mark.parametrize("command", ["serve", "check", "report"])
def test_a_configs_problems_are_said_by_the_command_under_its_file(tmp_path: Path, command: str) -> None:
    """A config's problems: `lineage-proxy <command>: PATH: invalid configuration:`, then each at its key, one a line
    (CONTRACT §1's `routes[2].upstream: unknown upstream "vlm"`), whichever command reads the file. Until 2026-12-07
    `serve`'s and `check`'s header began with the path alone, while `report --config` said it so."""
    config = tmp_path / "proxy.yaml"
    config.write_text("listen:\n  http: 127.0.0.1:0\nupstreams:\n  - name: u\n    url: http://127.0.0.1:9\nroutes:\n"
                      "  - model: '*'\n    upstream: vlm\n")  # fmt: skip
    store = tmp_path / "l.db"
    args = {"serve": ["serve", "--config", str(config)], "check": ["check", "--config", str(config)],
            "report": ["report", "--store", str(store), "--config", str(config), "--out", str(tmp_path / "r.html")]}  # fmt: skip
    SqliteStore(store).close()  # a store `report` reads: one the proxy wrote
    result = subprocess.run([sys.executable, "-m", "proxy", *args[command]], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)  # fmt: skip
    assert (result.returncode, result.stderr.splitlines()) == (
        1, [f"lineage-proxy {command}: {config}: invalid configuration:",
            "  routes[0].upstream: unknown upstream 'vlm'"]), result.stderr  # fmt: skip


def test_checks_store_serve_could_not_open_is_said_so_too(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(f"listen:\n  http: 127.0.0.1:0\nupstreams:\n  - name: u\n    url: http://127.0.0.1:9\nroutes:\n  - model: '*'\n    upstream: u\n"
                      f"lineage:\n  store: {tmp_path / 'none' / 'l.db'}\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1 and result.stderr.splitlines()[0] == (
        f"lineage-proxy check: {config}: serve could not start:"), result.stderr  # fmt: skip
    assert result.stderr.splitlines()[1].startswith("  lineage.store: cannot open the lineage store ")


def test_the_readmes_example_of_a_configs_problems_is_what_check_says(tmp_path: Path) -> None:
    """The README's lines, `lineage-proxy check: proxy.yaml: invalid configuration:` then `  routes[2].upstream: unknown
    upstream 'vlm'`, are check's, of a third route naming an upstream not configured (review revconfig17: the README
    quoted it `"vlm"`, which check never said: a problem quotes with Python's repr)."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    header, problem = (
        "lineage-proxy check: proxy.yaml: invalid configuration:",
        "routes[2].upstream: unknown upstream 'vlm'",
    )
    assert " ".join(f"`{header}`, then `  {problem}`".split()) in readme  # (its spaces as the README's are joined)
    (tmp_path / "proxy.yaml").write_text("listen:\n  http: 127.0.0.1:0\nupstreams:\n  - name: u\n    url: http://127.0.0.1:9\n"
                                         "routes:\n  - model: a\n    upstream: u\n  - model: b\n    upstream: u\n"
                                         "  - model: '*'\n    upstream: vlm\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", "proxy.yaml"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert (result.returncode, result.stderr.splitlines()) == (1, [header, f"  {problem}"]), result.stderr
