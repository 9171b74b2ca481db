"""What a process remembers of the flows the approved baseline judged (`Policy.verdicts`, `Policy.unrestricted`) and
of the unapproved flows it has logged (`Runtime.flagged`) is bounded in bytes, not only in count. A flow holds every
label its call carries, and those are the caller's: 64 labels of 128 characters a request (256 with what a sequence
or a stored reply carries), each call a new set. The three memos were bounded at 4,096 flows each: 4,096 calls of 64
labels of 121 characters kept ~60 MB (RSS 51 -> 153 MiB), 256 labels a call would keep ~230 MB, per worker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from proxy.baseline import Flow
from proxy.config import parse
from proxy.flow import Call
from proxy.labels import parse_labels
from proxy.policy import FLOW_BYTES_KEPT
from tests.harness import offline_pipeline

CONFIG = """
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: vllm, url: "http://127.0.0.1:1"}}]
routes: [{{model: "*", upstream: vllm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: null, baseline: {baseline}, on_unapproved: {on_unapproved}}}
"""
# approves the label `public` only (any other flow is unapproved), or any labels at any checkpoint
ONE_FLOW = "version: 1\nflows:\n  - {caller: anonymous, purpose: assistant, labels: [public]}\n"
ANY_LABELS = "version: 1\nflows:\n  - {caller: anonymous, purpose: assistant, labels: ['*']}\n"
CALLS = 1000  # each a new set of 64 labels of 121 characters: ~7.7 MB of label characters in all


def wide(n: int) -> frozenset[str]:
    """64 labels of 121 characters, another set for each `n` (as `x-data-labels` may send them)."""
    return parse_labels(",".join(f"{n:05d}{i:02d}" + "x" * 114 for i in range(64)))


def held(flows: object) -> int:
    """The characters of the labels the flows in a memo (a dict or set of them, or what keeps them) hold."""
    kept = getattr(flows, "kept", flows)
    assert isinstance(kept, (dict, set))
    return sum(len(label) for flow in kept if isinstance(flow, Flow) for label in flow.labels)


@pytest.mark.parametrize(
    ("approved", "on_unapproved"), [(ONE_FLOW, "warn"), (ANY_LABELS, "block")], ids=["unapproved", "unknown-checkpoint"]
)
def test_flows_of_wide_label_sets_are_remembered_within_a_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, approved: str, on_unapproved: str
) -> None:
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(approved)
    pipeline = offline_pipeline(parse(CONFIG.format(baseline=baseline, on_unapproved=on_unapproved)))
    caplog.set_level(logging.ERROR, logger="lineage_proxy.baseline")  # the WARNING per new flow: not formatted
    for n in range(CALLS):  # a caller's labels new on every call, decided as the ingress decides them
        call = Call("openai", "chat", "m", pipeline.trace({}.get), purpose="assistant", labels=wide(n))
        decision = pipeline.decide(call)
        if on_unapproved == "warn":
            assert decision.approved is False and decision.forwards
        else:  # approved whatever the checkpoint, which the metadata (never asked here) has not named
            assert decision.approved is True and decision.forwards
    policy, runtime = pipeline.policy, pipeline.runtime
    memos = {"verdicts": held(policy.verdicts), "unrestricted": held(policy.unrestricted),
             "flagged": held(runtime.flagged)}  # fmt: skip
    assert max(memos.values()) > 0  # the memo of this case was filled
    assert all(chars <= FLOW_BYTES_KEPT for chars in memos.values()), memos  # before: 7.7 million characters


def test_a_flow_judged_again_is_remembered_whatever_its_labels(tmp_path: Path) -> None:
    """Within the bound the memo serves what it is for: one walk of the baseline for a flow that recurs."""
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(ONE_FLOW)
    pipeline = offline_pipeline(parse(CONFIG.format(baseline=baseline, on_unapproved="warn")))
    for _ in range(3):
        call = Call("openai", "chat", "m", pipeline.trace({}.get), purpose="assistant", labels=wide(7))
        assert pipeline.decide(call).approved is False
    assert len(pipeline.policy.verdicts) == 1 and len(pipeline.runtime.flagged) == 1
