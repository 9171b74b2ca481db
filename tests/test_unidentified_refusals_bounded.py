"""A call refused for its key (401 `invalid_api_key`: a key no caller owns, or none where anonymous calls are denied)
counts toward one lineage edge per caller and rule, whatever purpose and labels it claims. Its claims are a client's
the proxy does not know: keyed by them, every guessed key with a new `x-purpose` or `x-data-labels` was a new flow, a
row and a commit its reply waited for, and an OpenLineage event. A client with no key at all grew the lineage store
by a row a call: 3,000 calls of 64 labels of 121 characters, 3 seconds, a 75 MB store, for as long as it went on
(edges are kept 30 days). Its span and access line still say what it claimed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx

from proxy.flow import DENY, Decision
from proxy.policy import boundary_flow
from proxy.record.store import SqliteStore
from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: vllm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: vllm}}]
callers: [{{name: app, api_key_sha256: "{hashlib.sha256(b"the-key").hexdigest()}", purposes: [assistant]}}]
policy: {{anonymous: deny}}
lineage: {{store: "${{STORE}}"}}
"""
CALLS = 20


def claims(n: int) -> dict[str, str]:
    return {"x-purpose": f"purpose-{n}", "x-data-labels": ",".join(f"label-{n}-{i}" for i in range(64))}


def test_refusals_for_a_key_count_toward_one_edge_whatever_they_claim(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        for n in range(CALLS):
            guessed = client.post(
                "/v1/chat/completions", json=body, headers={**claims(n), "authorization": f"Bearer g{n}"}
            )
            missing = client.post("/v1/chat/completions", json=body, headers=claims(n))
            assert guessed.status_code == missing.status_code == 401
        # a known caller's refusal keeps what it claimed: its edge names the purpose it was refused for
        denied = client.post(
            "/v1/chat/completions", json=body, headers={**claims(0), "authorization": "Bearer the-key"}
        )
        assert denied.status_code == 403
    loop_thread.run(proxy.process.runtime.sinks.flush())
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        rows = {(r.key.caller, r.key.purpose, r.key.input_labels, r.key.rule): r.count for r in store.rows()}
    finally:
        store.close()
    known = [key for key in rows if key[0] == "app"]
    assert len(known) == 1 and known[0][1] == "purpose-0" and "label-0-0" in known[0][2]
    del rows[known[0]]
    assert rows == {("(unknown key)", "", "", "callers"): CALLS, ("anonymous", "", "", "policy.anonymous"): CALLS}


def test_the_baseline_judges_such_a_refusal_as_it_is_recorded() -> None:
    """The flow the boundary verifier judges (and logs once when unapproved) is the edge's: without the claims."""
    refused = Decision(DENY, None, "(unknown key)", "purpose-1", frozenset({"label-1"}), code="invalid_api_key",
                       rule="callers")  # fmt: skip
    flow = boundary_flow(refused_call(), refused)
    assert (flow.caller, flow.purpose, flow.labels, flow.rule) == ("(unknown key)", "", frozenset(), "callers")


def refused_call() -> Any:
    from proxy.flow import Call, TraceContext

    return Call("openai", "chat", SERVED, TraceContext(1, 2), "digest", "purpose-1", frozenset({"label-1"}))
