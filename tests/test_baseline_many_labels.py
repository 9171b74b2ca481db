"""A baseline entry of many labels is checked by a set lookup per label, its patterns alone matched one by one.
Each of its labels was matched as a pattern in turn: an entry `verify --write-baseline` wrote from a store a caller
had filled with new labels (18,000 of them) cost 33 ms a flow for `verify` (300 flows: 23 s), and as much on the event
loop for each call making a new flow under `lineage.baseline`. Counted, not timed: the pattern matches a call costs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy import baseline as baseline_module
from tests.servers.vllm_like import SERVED
from tests.traffic import KEYS_BY_CALLER, proxy_config

APPROVED = 3000  # labels the entry names, besides one pattern


@pytest.fixture
def matches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many pattern matches the baseline makes (proxy/baseline.py is not compiled: its global is a seam)."""
    count = [0]
    match = baseline_module.fnmatchcase

    def counted(name: str, pattern: str) -> bool:
        count[0] += 1
        return match(name, pattern)

    monkeypatch.setattr(baseline_module, "fnmatchcase", counted)
    yield count


def test_a_call_checked_against_an_entry_of_many_labels_matches_its_patterns_alone(
    vllm, make_proxy, tmp_path: Path, matches: list[int]
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    baseline = tmp_path / "baseline.yaml"
    labels = ", ".join([*(f"ok-{n}" for n in range(APPROVED)), "'pii:*'"])
    baseline.write_text(f"version: 1\nflows:\n  - {{caller: ops, purpose: assistant, labels: [{labels}]}}\n")
    proxy = make_proxy(proxy_config(baseline=str(baseline)), UPSTREAM=upstream)
    headers = {"authorization": f"Bearer {KEYS_BY_CALLER['ops']}", "x-purpose": "assistant"}
    calls = [",".join(f"new-{call}-{n}" for n in range(60)) for call in range(5)]  # new labels: unapproved flows
    calls.append(",".join([*(f"ok-{n}" for n in range(0, APPROVED, 50)), "pii:email"]))  # approved, by name and pattern
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        for sent in calls:
            before = matches[0]
            reply = client.post("/v1/chat/completions", headers={**headers, "x-data-labels": sent},
                                json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert reply.status_code == 200, reply.text  # on_unapproved: warn
            # a label against the one pattern, a few times over (the decision, the record's verdict): 60 labels made
            # 180,000 matches a time (each against every name)
            assert 0 < matches[0] - before <= 10 * 60, matches[0] - before
    assert baseline_module.Approval("a", "p", ("ok-1", "pii:*", "[x]")).allows("pii:email")
    assert baseline_module.Approval("a", "p", ("ok-1", "pii:*", "[x]")).allows("[x]")  # written as it is, as before
    assert baseline_module.Approval("a", "p", ("ok-1", "pii:*", "[x]")).allows("x")
    assert not baseline_module.Approval("a", "p", ("ok-1", "pii:*", "[x]")).allows("ok-2")
