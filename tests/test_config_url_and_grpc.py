"""An upstream with both `url` and `grpc` and no `protocol` is said in one line naming both keys and what each means
(`lineage-proxy check`). Until 2026-12-07 it was told only `upstreams[0].protocol: a grpc upstream speaks oip`, of a
key it had not written (the default, openai, was meant)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BASE = "listen:\n  http: 127.0.0.1:0\nroutes:\n  - model: '*'\n    upstream: u\nupstreams:\n  - name: u\n"
BOTH = "    url: http://127.0.0.1:9\n    grpc: 127.0.0.1:8001\n"
SAID = ("upstreams[0]: both url and grpc are given, without a protocol: url is a server's HTTP address (protocol "
        "openai unless written), grpc its Open Inference Protocol gRPC host:port; one server serving OIP on both is "
        "`protocol: oip`, an OpenAI server and a gRPC one are two upstreams")  # fmt: skip


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)  # fmt: skip


@pytest.mark.parametrize(("written", "said"), [
    ("", [SAID]),
    ("    protocol: oip\n", []),  # one server, OIP on both: loads
    ("    protocol: openai\n", ["upstreams[0].protocol: a grpc upstream speaks oip"]),  # the key written: said of it
])  # fmt: skip
def test_url_and_grpc(tmp_path: Path, written: str, said: list[str]) -> None:
    result = check(tmp_path, BASE + BOTH + written)
    assert (result.returncode, result.stderr.splitlines()[1:]) == (1 if said else 0, [f"  {line}" for line in said])


def test_grpc_alone_unchanged(tmp_path: Path) -> None:
    result = check(tmp_path, BASE + "    grpc: 127.0.0.1:8001\n")
    assert result.stderr.splitlines()[1:] == ["  upstreams[0].protocol: a grpc upstream speaks oip"]
