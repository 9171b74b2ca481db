"""An unknown config key is named by its path; one shaped like a secret (a token or a URL pasted where a key
goes) by its place and length only, since a reload logs every problem (2026-12-05: the key was quoted)."""

from __future__ import annotations

import pytest

from proxy.config import parse
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
    assert problems(key)[0].startswith(f"upstreams[0].{key}: unknown key (known: name, url,")


def test_a_top_level_secret_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE % "timeout_s" + f"{TOKEN}: 1\n", env={})
    assert any(p.startswith(f"<key 4: {len(TOKEN)} characters>: unknown key") for p in caught.value.problems)
    assert not any(TOKEN in p for p in caught.value.problems)
