"""A line indented otherwise than its mapping's keys, the YAML mistake a first user makes most, got PyYAML's words
alone (`expected <block end>, but found '?'`, `mapping values are not allowed here`), which name neither the
indentation nor what to do. `check` (and a baseline's reader) now says to check the indentation there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from proxy.baseline import BaselineError, parse_baseline

MINIMAL = """listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: http://127.0.0.1:8000
    protocol: openai
routes:
  - model: "*"
    upstream: vllm
"""
HINT = (
    "(check the indentation of this line and the one above it: the keys of one mapping start in one column, written"
    " with spaces; a value holding ': ' is quoted)"
)


def check(directory: Path) -> subprocess.CompletedProcess[str]:
    """`lineage-proxy check` of `proxy.yaml` in `directory`, as a first user runs it there."""
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", "proxy.yaml"], cwd=directory,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("good", "bad", "said"),
    [
        ("    url:", "  url:", "proxy.yaml:5:3: not valid YAML: expected <block end>, but found '?'"),
        (
            "    url:",
            "   url:",
            "proxy.yaml:5:4: not valid YAML: expected <block end>, but found '<block mapping start>'",
        ),
        ("    protocol:", "      protocol:", "proxy.yaml:6:15: not valid YAML: mapping values are not allowed here"),
        (
            "routes:",
            " routes:",
            "proxy.yaml:7:2: not valid YAML: expected <block end>, but found '<block mapping start>'",
        ),
    ],
    ids=["key-less", "key-one-less", "key-more", "top-level-key-more"],
)
def test_check_says_to_check_the_indentation(tmp_path: Path, good: str, bad: str, said: str) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(MINIMAL.replace(good, bad, 1))
    result = check(tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == ["lineage-proxy check: proxy.yaml: invalid configuration:", f"  {said} {HINT}"]


def test_the_same_file_well_indented_passes(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text(MINIMAL)
    result = check(tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_baseline_says_it_too() -> None:
    text = "version: 1\nflows:\n  - caller: app\n     purpose: assistant\n"
    with pytest.raises(BaselineError) as raised:
        parse_baseline(text, source="baseline.yaml")
    assert raised.value.problems == [f"baseline.yaml:4:13: not valid YAML: mapping values are not allowed here {HINT}"]


def test_other_yaml_errors_get_no_such_hint(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text(MINIMAL.replace('"*"', '"*'))
    result = check(tmp_path)
    assert result.returncode == 1 and "not valid YAML" in result.stderr and "indentation" not in result.stderr


AFTER_CLOSED: Final = "(text follows a closed quote or bracket on this line: quote the whole value, or remove the text)"


@pytest.mark.parametrize(
    ("good", "bad", "said"),
    [
        (
            "  http: 127.0.0.1:0",
            "  http: '127.0.0.1:0' x",
            "proxy.yaml:2:23: not valid YAML: expected <block end>, but found '<scalar>'",
        ),
        (
            '  - model: "*"',
            '  - model: ["*"] x',
            "proxy.yaml:8:18: not valid YAML: expected <block end>, but found '<scalar>'",
        ),
    ],
    ids=["after-quote", "after-bracket"],
)
def test_text_after_a_closed_value_is_not_called_an_indentation(tmp_path: Path, good: str, bad: str, said: str) -> None:
    """`expected <block end>` in mid-line is no indentation: a value's text goes on past its closing quote or bracket.
    The indentation hint there sent a first user to the wrong line's columns."""
    config = tmp_path / "proxy.yaml"
    config.write_text(MINIMAL.replace(good, bad, 1))
    result = check(tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        "lineage-proxy check: proxy.yaml: invalid configuration:",
        f"  {said} {AFTER_CLOSED}",
    ]
