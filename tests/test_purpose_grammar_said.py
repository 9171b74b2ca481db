"""A purpose refused as malformed says what a purpose must be, as a refused label says what a label must be: an
`x-purpose: Customer Support` (a first user's natural spelling) was answered "x-purpose: invalid purpose 'Customer
Support'", without the grammar nor that it is checked lower-cased (so the capitals are not what is wrong, the space
is); `check --explain --purpose` said the same."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from proxy.cli import main
from tests.harness import dead_port, proxy_error

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: chat, url: "http://127.0.0.1:PORT"}]
routes: [{model: "*", upstream: chat}]
policy: {anonymous: allow}
telemetry: {exporter: none}
lineage: {store: null}
"""
SAID = ": purposes match [a-z0-9][a-z0-9._:/-]{0,127}, once lower-cased"


def test_serve_says_what_a_purpose_must_be(make_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = make_proxy(CONFIG.replace("PORT", str(dead_port())), wait="none")
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=30, headers={"x-purpose": "Customer Support"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 400
    assert proxy_error(reply)["message"] == "x-purpose: invalid purpose 'Customer Support'" + SAID


def test_check_explain_says_it_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("PORT", "9"))
    assert main(["check", "--config", str(config), "--explain", "--purpose", "Customer Support"]) == 1
    assert (
        capsys.readouterr().err.strip() == "lineage-proxy check: --purpose: invalid purpose 'Customer Support'" + SAID
    )


def test_the_readme_quotes_it() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "`x-purpose: invalid purpose 'Customer Support'" + SAID + "`" in readme
