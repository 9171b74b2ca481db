"""A number key written as a plain YAML scalar that YAML 1.1 reads otherwise than its decimal digits is a problem, as
`lineage-proxy check` says it: `timeout_s: 0755` (octal, 493), `0x10` (16), `0b101` (5), `1_000` (1000), `1:30`
(sexagesimal, 90), `1:30.5`, `1_000.5`. The same text quoted was already `expected a number, got '...'` (h-config16's
rule: a number key's text is a decimal number as YAML and JSON write one); written plain, YAML 1.1 made it a number
first and it loaded as that number: `timeout_s: 0755` was 493 seconds (YAML 1.2 and JSON read 755). A plain number
whose digits are its value (`07`, `1.5e+3`, `+5`, `.5`) loads as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config.loader import parse
from proxy.errors import ConfigError

BASE = "listen:\n  http: 127.0.0.1:0\nroutes:\n  - model: '*'\n    upstream: u\nupstreams:\n  - name: u\n" \
       "    url: http://127.0.0.1:9\n"  # fmt: skip
# a key of each reader: a number (seconds), a whole number, a ratio (at most 1)
KEYS = ("    timeout_s: {}\n", "limits:\n  max_connections: {}\n", "telemetry:\n  sample_ratio: {}\n")
PATHS = ("upstreams[0].timeout_s", "limits.max_connections", "telemetry.sample_ratio")


def problems(text: str) -> list[str]:
    try:
        parse(text, source="c.yaml")
    except ConfigError as exc:
        return list(exc.problems)
    return []


# written plain: what YAML 1.1 (PyYAML) reads it as
# (YAML 1.2 reads `0755` as 755, the others as text; `0x_1`, `-0x1` are YAML 1.1's hexadecimal alone)
READ_OTHERWISE = {"0755": "493", "010": "8", "0b101": "5", "1_000": "1000", "1:30": "90", "1:30.5": "90.5",
                  "1_000.5": "1000.5", "-0x1": "-1", "0x_10": "16", "+0_1": "1"}  # fmt: skip


@pytest.mark.parametrize("key", range(len(KEYS)), ids=PATHS)
@pytest.mark.parametrize(("form", "read"), READ_OTHERWISE.items(), ids=READ_OTHERWISE.keys())
def test_a_plain_number_yaml_reads_otherwise_is_said(key: int, form: str, read: str) -> None:
    said = problems(BASE + KEYS[key].format(form))
    assert said == [f"{PATHS[key]}: expected a number in decimal digits, got {form}, which YAML 1.1 reads as {read}"]


@pytest.mark.parametrize("form", ["07", "5", "+5", "5.0", "0.5", ".5", "5.", "1.5e+3", "1e3", "00.5"])
def test_a_plain_number_in_decimal_digits_loads(form: str) -> None:
    """Each as before (`07` is 7 to YAML 1.1 and 1.2 alike; `1e3` is text to PyYAML, read by the text rule)."""
    assert problems(BASE + KEYS[0].format(form)) == []


@pytest.mark.parametrize(("form", "read"), [("07", 7), ("00", 0), ("5", 5), ("+5", 5), ("5.0", 5), ("0x40", 64)])
def test_a_whole_number_in_decimal_digits_loads(form: str, read: int) -> None:
    """And hexadecimal, `0x40`, 64 to YAML 1.1 and 1.2 alike (`test_config_numbers_as_written`)."""
    assert parse(BASE + f"    max_queue: {form}\n", source="c.yaml").upstreams[0].max_queue == read


def test_the_infinities_and_nan_said_as_before() -> None:
    assert problems(BASE + KEYS[0].format(".inf")) == ["upstreams[0].timeout_s: expected a finite number, got inf"]
    assert problems(BASE + KEYS[0].format(".nan")) == ["upstreams[0].timeout_s: expected a finite number, got nan"]


def test_check_says_it(tmp_path: Path) -> None:
    """As a user runs it: `check` exits 1 on `timeout_s: 0755`, which loaded as 493 seconds."""
    path = tmp_path / "config.yaml"
    path.write_text(BASE + KEYS[0].format("0755"))
    result = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert (result.returncode, result.stderr.splitlines()) == (1, [
        f"lineage-proxy check: {path}: invalid configuration:",
        "  upstreams[0].timeout_s: expected a number in decimal digits, got 0755, which YAML 1.1 reads as 493",
    ])  # fmt: skip
