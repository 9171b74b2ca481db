"""`check --explain` without `--model` decides a call of the `'*'` route. A config without one (the demo's
sample policy, which `lineage-proxy demo` offers to copy) answered `deny`, `no route for model '*'`, exit 2,
as if the policy refused a model the user never named; it is a usage problem, said as one, naming the models
routed."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main

CONFIG = """listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: us-model, url: "http://127.0.0.1:9"}
routes:
  - {model: demo-chat, upstream: us-model}
  - {model: other-chat, upstream: us-model}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: null}
"""


def test_explain_without_a_model_where_no_route_is_the_default_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(CONFIG)
    code = main(["check", "--config", str(config), "--explain"])
    said = capsys.readouterr()
    assert "decision:" not in said.out
    assert said.err == (
        f"lineage-proxy check: --model is needed: {config} has no '*' route, so a call names its model "
        "(routed: demo-chat, other-chat)\n"
    )
    assert code == 1  # not 2, which says the policy denied the call


def test_explain_with_a_routed_model_decides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(CONFIG)
    assert main(["check", "--config", str(config), "--explain", "--model", "demo-chat"]) == 0
    assert "decision:  allow" in capsys.readouterr().out
