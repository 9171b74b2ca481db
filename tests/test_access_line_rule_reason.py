"""An access line says why a call was refused, not only that it was: the rule that decided it (`zone:NAME`,
`caller:NAME`, `route:MODEL`, ...) and the reason its caller was given, as the span (`lineage.rule`,
`lineage.reason`) and `edges` say. Before, a refusal's line held its code alone (`purpose_denied`): an operator
reading the log could not tell which zone, caller or route refused it. An allowed call's are empty; an audit-deny's
say what would have refused it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

import proxy
from tests.conftest import KEYS, sha
from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: vllm, url: "${{UPSTREAM}}", region: eu}}]
routes: [{{model: "*", upstream: vllm}}]
callers:
  - {{name: app, api_key_sha256: {sha(KEYS["glasses"])}, purposes: [assistant, evaluation]}}
zones:
  - {{name: customer-data, labels: [customer], allow_purposes: [assistant]}}
lineage: {{store: "${{STORE}}"}}
logging: {{format: FORMAT, access: true}}
"""


def call(base: str, purpose: str, labels: str = "") -> httpx.Response:
    headers = {"authorization": f"Bearer {KEYS['glasses']}", "x-purpose": purpose, "x-data-labels": labels}
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_a_refusal_line_names_its_rule_and_reason(vllm: Any, tmp_path: Path) -> None:
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("FORMAT", "json"))
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db"), "PYTHONPATH": root})
    try:
        denied = call(serve.url, "evaluation", "customer")
        refused_purpose = call(serve.url, "ads")
        allowed = call(serve.url, "assistant", "customer")
        assert (denied.status_code, refused_purpose.status_code, allowed.status_code) == (403, 403, 200)
        lines = [orjson.loads(serve.wait_log(f'"trace_id":"{r.headers["x-trace-id"]}"'))
                 for r in (denied, refused_purpose, allowed)]  # fmt: skip
    finally:
        assert serve.stop() == 0
    zone, caller, ok = lines
    message = denied.json()["error"]["message"]
    assert (zone["code"], zone["rule"], zone["reason"]) == ("purpose_denied", "zone:customer-data", message)
    assert "zone customer-data allows: assistant" in zone["reason"]
    assert (caller["rule"], caller["reason"]) == ("caller:app", refused_purpose.json()["error"]["message"])
    assert (ok["decision"], ok["rule"], ok["reason"]) == ("allow", "", "")


def test_a_text_line_quotes_the_reason(vllm: Any, tmp_path: Path) -> None:
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("FORMAT", "text"))
    root = str(Path(proxy.__file__).parents[1])
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db"), "PYTHONPATH": root})
    try:
        denied = call(serve.url, "evaluation", "customer")
        line = serve.wait_log(f"trace_id={denied.headers['x-trace-id']}")
    finally:
        assert serve.stop() == 0
    assert " code=purpose_denied rule=zone:customer-data reason=" in line, line
    assert "(zone customer-data allows: assistant)" in line, line
