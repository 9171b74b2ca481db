"""An unknown config key is named by its path; one shaped like a secret (a token or a URL pasted where a key
goes) by its place and length only, since a reload logs every problem (2026-12-05: the key was quoted). So is a key
given twice, and the baseline's unknown and duplicate keys (the same `shown_key`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.baseline import BaselineError, parse_baseline
from proxy.config import load, parse
from proxy.errors import ConfigError

TOKEN = "sk-proj-4f9Qz7TkLm2Xc8VbN1aR6yHs3JdW0pEu"
URL = "https://ops:hunter2@collector.example:4318"
BASE = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - name: llama
    url: "http://127.0.0.1:8000"
    %s: x
routes:
  - {model: "*", upstream: llama}
"""


def problems(key: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(BASE % key, env={})
    return caught.value.problems


@pytest.mark.parametrize("key", [TOKEN, f'"{URL}"', "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
def test_a_secret_shaped_key_is_named_by_place_and_length(key: str) -> None:
    found = problems(key)
    length = len(key.strip('"'))
    assert found == [f"upstreams[0].<key 3: {length} characters>: unknown key (known: " + found[0].split("(known: ")[1]]
    assert not any(secret in problem for problem in found for secret in ("hunter2", "4f9Qz7", "9f86d0"))


@pytest.mark.parametrize("key", ["colour", "max_conections", "api_key_sha256", "timeout s", "http2"])
def test_a_key_shaped_key_is_quoted(key: str) -> None:
    said = problems(key)[0]  # a typo of a known key also names it: `(did you mean 'max_connections'? known: ...`
    assert said.startswith(f"upstreams[0].{key}: unknown key (") and "known: name, url," in said


def test_a_top_level_secret_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE % "timeout_s" + f"{TOKEN}: 1\n", env={})
    assert any(p.startswith(f"<key 4: {len(TOKEN)} characters>: unknown key") for p in caught.value.problems)
    assert not any(TOKEN in p for p in caught.value.problems)


@pytest.mark.parametrize("key", [TOKEN, f'"{URL}"'])
def test_a_secret_shaped_key_given_twice_is_named_by_place_and_length(tmp_path: Path, key: str) -> None:
    """A duplicate key's problem quoted the key (`duplicate key 'sk-proj-...'`); before 2026-12-05."""
    path = tmp_path / "proxy.yaml"
    path.write_text(BASE % "timeout_s" + f"{key}: 1\n{key}: 2\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    length = len(key.strip('"'))
    assert caught.value.problems == [
        f"{path}:10:1: not valid YAML: duplicate key <key 5: {length} characters> (first on line 9): only the last "
        "would be read"
    ]


def test_a_key_shaped_key_given_twice_is_quoted(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(BASE % "timeout_s" + "zones: []\nzones: []\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert "duplicate key 'zones' (first on line 9)" in caught.value.problems[0]


def baseline_problems(text: str) -> list[str]:
    with pytest.raises(BaselineError) as caught:
        parse_baseline(text, source="b.yaml")
    return caught.value.problems


def test_the_baselines_secret_shaped_keys_are_named_by_place_and_length() -> None:
    """The baseline quoted an unknown key, and a duplicate one, whatever its shape; before 2026-12-05."""
    flow = "version: 1\nflows:\n  - {caller: app, purpose: p, labels: [l], %s: x}\n"
    assert baseline_problems(flow % TOKEN) == [
        f"b.yaml:3: flows[0].<key 4: {len(TOKEN)} characters>: unknown key (known: "
        + baseline_problems(flow % "colour")[0].split("(known: ")[1]
    ]
    assert baseline_problems(flow % "colour")[0].startswith("b.yaml:3: flows[0].colour: unknown key")
    twice = baseline_problems(f"version: 1\n{TOKEN}: 1\n{TOKEN}: 2\nflows: []\n")
    assert twice == [f"b.yaml:3:1: not valid YAML: duplicate key <key 3: {len(TOKEN)} characters> (first on line 2): "
                     "only the last would be read"]  # fmt: skip
