"""A refused call reached no checkpoint, so the baseline holds no refusal to `checkpoints` (README: "a refused
call reached none, so refusals skip it"). `verify` reads a recorded denial so (its edge names no checkpoint);
the boundary verifier must read the same denial alike: an OIP call naming a version (`iris` version 2) that
is refused was flagged unapproved (span `lineage.approved=false`, the unapproved-flows counter, a WARNING)
because the boundary gave the refused flow the checkpoint `iris:2` it never reached."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.baseline import parse_baseline
from proxy.config import parse
from proxy.flow import Call, TraceContext
from proxy.policy import Policy, decide
from proxy.record.store import EdgeKey, EdgeRow
from proxy.verify import check
from tests.conftest import KEYS, sha

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: triton, url: "http://127.0.0.1:1", checkpoint: "iris:3"}}]
routes: [{{model: iris, upstream: triton, purposes: [assistant]}}]
callers: [{{name: app, api_key_sha256: {sha(KEYS["glasses"])}, purposes: [assistant, ads]}}]
"""

BASELINE = """
version: 1
flows:
  - caller: app
    purpose: ads
    decisions: [allow, deny]
    checkpoints: ["iris:3"]
"""


@pytest.mark.parametrize("protocol", ["oip", "oip-grpc"])
@pytest.mark.parametrize("version", [None, "3", "2"])
def test_a_refused_call_is_approved_at_the_boundary_as_verify_approves_its_edge(protocol: str, version: str) -> None:
    baseline = parse_baseline(BASELINE)
    policy = Policy.compile(dataclasses.replace(parse(CONFIG), baseline=baseline))
    call = Call(protocol, "infer", "iris", TraceContext(1, 2), sha(KEYS["glasses"]), "ads", model_version=version)  # type: ignore[arg-type]
    decision = decide(call, policy)
    assert (decision.action, decision.code, decision.rule) == ("deny", "purpose_denied", "route:iris")
    # the edge this refusal is recorded as: no checkpoint reached
    edge = EdgeRow(EdgeKey("app", "ads", "", "", "", "deny", "route:iris"), 1.0, 1.0, 1)
    assert check([edge], baseline).ok
    assert decision.approved is True
