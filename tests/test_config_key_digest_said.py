"""A caller's `api_key_sha256` that is no digest says how to make one. Found by a first user's afternoon (helper
huntuser): the key itself written there (`api_key_sha256: test`) was `expected 64 hex digits (sha256 of the key, never
the key)`, and how to get the digest was in the README's example alone. The key written is never echoed."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


def test_a_key_written_as_its_digest_says_how_to_make_the_digest() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + "callers: [{name: app, api_key_sha256: s3cret-key}]\n", env={})
    (problem,) = caught.value.problems
    assert "s3cret" not in problem
    command = problem.split("`")[1]
    assert command == "printf %s KEY | sha256sum", problem
    made = subprocess.run(["sh", "-c", command.replace("KEY", "test")], capture_output=True, text=True, check=True)
    assert made.stdout.split()[0] == hashlib.sha256(b"test").hexdigest()
