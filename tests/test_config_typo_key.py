"""A key typed one letter wrong, the config mistake a first user makes at once: `check` listed every known key, then
said the key it stood for was required twice (`is required`, then `expected a non-empty string, got null`). It now
names the key meant and says the missing one once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MINIMAL = """listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: http://127.0.0.1:8000
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
"""


def check(directory: Path, text: str) -> list[str]:
    """What `lineage-proxy check` of `text` says, a line each, run as a first user runs it (exit 1, no traceback)."""
    (directory / "proxy.yaml").write_text(text)
    result = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", "proxy.yaml"], cwd=directory,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.splitlines()


def test_a_required_key_typed_wrong_is_named_and_said_missing_once(tmp_path: Path) -> None:
    assert check(tmp_path, MINIMAL.replace("upstream: vllm", "upstrem: vllm")) == [
        "lineage-proxy check: proxy.yaml: invalid configuration:",
        "  routes[0].upstrem: unknown key (did you mean 'upstream'? known: model, upstream, purposes)",
        "  routes[0].upstream: is required",
    ]


@pytest.mark.parametrize(
    ("typed", "meant"), [("anonymus", "anonymous"), ("default_purpse", "default_purpose"), ("Mode", "mode")]
)
def test_an_optional_key_typed_wrong_is_named(tmp_path: Path, typed: str, meant: str) -> None:
    (line,) = check(tmp_path, MINIMAL.replace("anonymous:", f"{typed}:"))[1:]
    assert line.startswith(f"  policy.{typed}: unknown key (did you mean {meant!r}? known: mode, anonymous, ")


def test_a_key_near_none_gets_the_list_alone(tmp_path: Path) -> None:
    (line,) = check(tmp_path, MINIMAL.replace("anonymous:", "retries:"))[1:]
    assert line.startswith("  policy.retries: unknown key (known: mode, anonymous, ")


def test_a_secret_shaped_key_is_near_none(tmp_path: Path) -> None:
    key = "sk-proj-" + "a1" * 20
    (line,) = check(tmp_path, MINIMAL.replace("anonymous:", f"{key}: x\n  anonymous:"))[1:]
    assert line.startswith("  policy.<key 1: 48 characters>: unknown key (known: ") and key not in line
