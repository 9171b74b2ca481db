"""What a policy remembers of its decisions (`Policy.decisions`, a memo by what `decide` reads of a call) is bounded in
bytes, not only in count and in the characters of each entry. An entry keeps the call's label set and the decision's,
each a set of the caller's labels: their characters were bounded (1,024 a call), not their number, and a label costs
a set's slot and a string's header besides its characters (~100 bytes a set). 4,096 decisions of 64 labels of two
characters (what `x-data-labels` may send, a new set on every call) kept 26 MB (RSS +45 MiB through HTTP with labels of
8 characters); of 256 labels (what a sequence or a stored reply carries with a request's own) 96 MB, per worker."""

from __future__ import annotations

import itertools
import string

from proxy.config import parse
from proxy.flow import Call
from proxy.policy import DECISION_BYTES_KEPT
from tests.harness import offline_pipeline

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "http://127.0.0.1:1", checkpoint: m@1}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
"""
POOL = ["".join(pair) for pair in itertools.product(string.ascii_lowercase + string.digits, repeat=2)]
CALLS = 1000


def test_decisions_of_many_short_labels_are_remembered_within_a_bound() -> None:
    pipeline = offline_pipeline(parse(CONFIG))
    for n in range(CALLS):  # 256 labels of 2 or 3 characters (~770 characters: remembered), a new set on every call
        labels = frozenset(POOL[n : n + 255]) | {f"n{n}"}
        call = Call("openai", "chat", "m", pipeline.trace({}.get), purpose="assistant", labels=labels)
        assert pipeline.decide(call).forwards
    decisions = pipeline.policy.decisions.kept
    assert decisions  # remembered, within the bound
    # what its entries hold: their keys' label sets and their decisions', ~100 bytes a label each besides its characters
    held = sum(100 + len(label) for key, decision in decisions.items() for label in (*key[2], *decision.labels))
    assert held <= DECISION_BYTES_KEPT, f"{held} bytes of {len(decisions)} decisions"  # before: ~51 MB, 1,000 kept


def test_a_decision_made_again_is_remembered() -> None:
    pipeline = offline_pipeline(parse(CONFIG))
    labels = frozenset(POOL[:256])
    for _ in range(3):
        call = Call("openai", "chat", "m", pipeline.trace({}.get), purpose="assistant", labels=labels)
        pipeline.decide(call)
    assert len(pipeline.policy.decisions) == 1
