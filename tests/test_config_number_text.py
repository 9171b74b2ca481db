"""A number key given as text, quoted (`sample_ratio: "0.5"`) or made by a `${VAR}` (always text), read by one rule
for every number key, as `lineage-proxy check` says it: text that is a decimal number, as YAML and JSON write one, is
that number (as a true/false key takes `"true"`, and a whole-number key `5.0`); other text is `expected a number, got
'...'`. Until 2026-12-07 Python's float() read the text, which takes white space around it (`" 0.5 "`), `_` between
digits (`"1_000"`) and digits other than ASCII's (`"١٢"`, 12): none of them a number YAML or JSON reads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE = "listen:\n  http: 127.0.0.1:0\nroutes:\n  - model: '*'\n    upstream: u\n"

# every number key the loader reads (path, a value in its bounds), by section; the count is checked against the loader
UPSTREAM = {"timeout_s": "5", "connect_timeout_s": "5", "max_connections": "4", "max_queue": "4",
            "discovery_interval_s": "5"}  # fmt: skip
TELEMETRY = {"sample_ratio": "0.5", "queue_size": "64", "export_timeout_s": "5"}
LINEAGE = {"retention_days": "30", "flush_interval_s": "0.5", "head_log_interval_s": "60", "journal_max_rows": "100"}
OPENLINEAGE = {"snapshot_interval_s": "60", "queue_size": "64", "spool_max_events": "100"}
LIMITS = {"max_body_bytes": "1048576", "scan_max_chars": "1000", "drain_timeout_s": "5", "buffer_max_bytes": "1048576",
          "idle_timeout_s": "5", "header_timeout_s": "5", "max_header_bytes": "8192", "max_headers": "64",
          "max_connections": "64", "max_concurrent_streams": "64", "bodies_max_bytes": "1048576",
          "grpc_stream_window_bytes": "65536", "grpc_max_calls": "64", "grpc_request_timeout_s": "5",
          "grpc_arriving_max_bytes": "1048576", "grpc_max_reply_bytes": "1048576", "worker_stall_s": "0"}  # fmt: skip
KEYS = [(f"upstreams[0].{k}", v) for k, v in UPSTREAM.items()] + [
    (f"{section}.{k}", v)
    for section, keys in (
        ("telemetry", TELEMETRY),
        ("lineage", LINEAGE),
        ("lineage.openlineage", OPENLINEAGE),
        ("limits", LIMITS),
    )
    for k, v in keys.items()
]


def config(value: str) -> str:
    """A config with every number key written, each as `value` makes it from the key's own (a YAML scalar as written)."""

    def lines(keys: dict[str, str], indent: str) -> str:
        return "".join(f"{indent}{key}: {value.format(v)}\n" for key, v in keys.items())

    return (BASE + "upstreams:\n  - name: u\n    url: http://127.0.0.1:9\n" + lines(UPSTREAM, "    ")
            + "telemetry:\n" + lines(TELEMETRY, "  ") + "lineage:\n" + lines(LINEAGE, "  ")
            + "  openlineage:\n    url: http://127.0.0.1:9\n" + lines(OPENLINEAGE, "    ")
            + "limits:\n" + lines(LIMITS, "  "))  # fmt: skip


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env=env)  # fmt: skip


def test_every_number_key_is_listed() -> None:
    """The table above is every key the loader reads as a number (a new one is added here, read by the same rule)."""
    source = (ROOT / "proxy" / "config" / "loader.py").read_text()
    read = re.findall(r's\.read\(\s*"(\w+)",\s*(?:partial\()?self\.(?:number|integer|positive_or_none)\b', source)
    assert sorted(read) == sorted(path.rpartition(".")[2] for path, _ in KEYS)


@pytest.mark.parametrize("written", ["{}", '"{}"', "'{}'"], ids=["plain", "double-quoted", "single-quoted"])
def test_a_number_key_quoted_is_its_number(tmp_path: Path, written: str) -> None:
    result = check(tmp_path, config(written))
    assert result.returncode == 0, result.stderr


# text no YAML or JSON number is, each made from a key's value: white space around it, a `_` in it, other digits,
# a float's words, hex
REFUSED = {"spaced": " {} ", "underscore": "{}_0", "arabic-indic": "١٢", "nan": "nan", "hex": "0x10"}


@pytest.mark.parametrize("form", REFUSED.values(), ids=REFUSED.keys())
def test_a_number_key_refuses_other_text(tmp_path: Path, form: str) -> None:
    """Every key said, in the words of a wrong kind's problem, its text quoted as written."""
    result = check(tmp_path, config(f'"{form}"'))
    said = [f"  {path}: expected a number, got {form.format(value)!r}" for path, value in KEYS]
    assert (result.returncode, sorted(result.stderr.splitlines()[1:])) == (1, sorted(said))


def test_a_variables_text_is_read_by_the_same_rule(tmp_path: Path) -> None:
    """`${VAR}` expands to text: a decimal number is its number; text around it is said, as the variable."""
    import os

    text = BASE + "upstreams:\n  - name: u\n    url: http://127.0.0.1:9\ntelemetry:\n  sample_ratio: ${LP_RATIO}\n"
    assert check(tmp_path, text, {**os.environ, "LP_RATIO": "0.25"}).returncode == 0
    result = check(tmp_path, text, {**os.environ, "LP_RATIO": "0.25 "})
    assert (result.returncode, result.stderr.splitlines()[1:]) == (
        1, ["  telemetry.sample_ratio: expected a number, got '${LP_RATIO}' as expanded"])  # fmt: skip
