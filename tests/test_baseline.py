"""The baseline: its file format (every problem with file, line and path), the match, why a flow is not
covered, the boundary verifier in the pure decide(), and the property that a written baseline covers
exactly what was recorded."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.baseline import Baseline, BaselineError, Flow, parse_baseline
from proxy.config import parse
from proxy.flow import Call, TraceContext, printable_name
from proxy.policy import Policy, decide, flow_memo
from proxy.record.store import EdgeKey, EdgeRow
from proxy.verify import check, write_baseline
from tests.conftest import KEYS, sha

REVIEWED = """
version: 1
flows:
  - caller: glasses-app
    purpose: assistant
    labels: [user-interaction, "pii:*"]
    checkpoints: ["meta-llama/*@*"]
  - {caller: "glasses-*", purpose: ads, labels: ["*"], decisions: [deny], rules: ["zone:*"]}
"""


def flow(caller: str = "glasses-app", purpose: str = "assistant", labels: str = "user-interaction",
         checkpoint: str | None = "meta-llama/L@1", decision: str = "allow", rule: str | None = None) -> Flow:  # fmt: skip
    return Flow(caller, purpose, frozenset(label for label in labels.split(",") if label), checkpoint, decision, rule)


def problems(text: str) -> list[str]:
    with pytest.raises(BaselineError) as caught:
        parse_baseline(text, source="b.yaml")
    return caught.value.problems


def test_patterns_cover_labels_checkpoints_and_denials() -> None:
    baseline = parse_baseline(REVIEWED, source="b.yaml")
    assert baseline.covering(flow(labels="user-interaction,pii:email")) is baseline.approvals[0]
    assert baseline.approvals[0].location == "b.yaml:4 (flows[0])"
    assert baseline.covering(flow(checkpoint=None)) is not None  # at the boundary, before discovery
    assert baseline.covering(flow(labels="")) is not None  # fewer labels than approved is covered
    assert baseline.covering(flow(purpose="ads", checkpoint="", decision="deny", rule="zone:z"))
    assert baseline.covering(flow(purpose="ads", checkpoint="", decision="deny", rule="caller:x")) is None


@pytest.mark.parametrize(
    ("changed", "kind", "message"),
    [
        ({"caller": "ops"}, "new-caller", "new caller 'ops': no approved flow names it"),
        ({"purpose": "analytics"}, "new-purpose", "new purpose 'analytics' for caller 'glasses-app' (approved purposes: ads, assistant)"),
        ({"labels": "user-interaction,health"}, "new-label", "label 'health' reaching 'meta-llama/L@1', which it never reached"),
        ({"checkpoint": "mistral/M@2"}, "new-checkpoint", "now served by 'mistral/M@2', not a checkpoint approved"),
        ({"decision": "deny", "rule": "caller:glasses-app", "checkpoint": ""}, "new-denial",
         "a new kind of denial for 'glasses-app' acting for 'assistant': deny by rule caller:glasses-app"),
        ({"decision": "audit-deny", "rule": "zone:z"}, "new-denial", "audit-deny by rule zone:z"),
        ({"purpose": ""}, "new-purpose", "no purpose named, by caller 'glasses-app' (approved purposes: ads, assistant)"),
        ({"checkpoint": ""}, "new-checkpoint", "served by no known checkpoint (the upstream failed, or its reply named "
         "none), which no entry approves for 'glasses-app' acting for 'assistant' (approved: meta-llama/*@*)"),
        ({"decision": "deny", "rule": "policy.purpose", "purpose": "", "checkpoint": ""}, "new-purpose",
         "no purpose named"),
    ],
)  # fmt: skip
def test_why_a_flow_is_not_covered(changed: dict[str, str], kind: str, message: str) -> None:
    finding = parse_baseline(REVIEWED).explain(flow(**changed))  # type: ignore[arg-type]
    assert finding is not None and finding.kind == kind and message in finding.message, finding
    assert "''" not in finding.message  # an empty name is said as such, never quoted as if it were one


def test_an_unnamed_purpose_in_a_denial_or_label_finding_is_said_in_words() -> None:
    baseline = parse_baseline("flows:\n  - {caller: a, purpose: '', decisions: [deny], rules: ['zone:*']}\n"
                              "  - {caller: a, purpose: '', checkpoints: ['']}\n")  # fmt: skip
    denial = baseline.explain(flow("a", "", "", "", "deny", "caller:a"))
    assert (
        denial is not None
        and "a new kind of denial for 'a' acting for no purpose: deny by rule caller:a" in denial.message
    )
    label = baseline.explain(flow("a", "", "health", ""))
    assert label is not None and label.message == ("label 'health' reaching no known checkpoint, which it never "
                                                   "reached for 'a' acting for no purpose")  # fmt: skip


def test_every_problem_has_its_file_line_and_path() -> None:
    found = problems("version: 2\nflows:\n  - caller: a\n    purpose: Ads\n    labels: [PII]\n    decisions: [yes]\n"
                     "    colour: red\n  - labels: x\n  - just a string\n")  # fmt: skip
    for expected in [
        "b.yaml:1: version: this lineage-proxy reads version 1",
        "b.yaml:4: flows[0].purpose: purpose 'Ads' never matches: a call's purposes are recorded normalised",
        "b.yaml:5: flows[0].labels[0]: label 'PII' never matches: a call's labels are recorded normalised",
        "b.yaml:6: flows[0].decisions[0]: must be one of allow, reroute, deny, audit-deny, got 'yes'",
        "b.yaml:7: flows[0].colour: unknown key",
        "b.yaml:8: flows[1].caller: is required",
        "b.yaml:9: flows[2]: expected a mapping",
    ]:
        assert any(problem.startswith(expected) for problem in found), (expected, found)
    assert problems("flows: [\n")[0].startswith("b.yaml:2:1: not valid YAML")
    assert problems("version: 1\n") == ["b.yaml:1: flows: is required: the list of approved flows ([] approves none)"]
    assert problems("") == ["b.yaml: empty: expected a mapping with flows:"]
    assert parse_baseline("flows: []").approvals == ()


POLICY_YAML = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: eu, url: "http://127.0.0.1:1", region: eu, checkpoint: "meta-llama/L@1"}}]
routes: [{{model: "*", upstream: eu}}]
callers:
  - {{name: glasses-app, api_key_sha256: {sha(KEYS["glasses"])}, labels: [user-interaction]}}
  - {{name: ops, api_key_sha256: {sha(KEYS["ops"])}}}
policy: {{mode: MODE}}
"""


async def _never_fetched(upstream: object, path: str) -> object:
    raise AssertionError(f"fetched {path}")


def policy(mode: str = "enforce", block: bool = True) -> Policy:
    config = parse(POLICY_YAML.replace("MODE", mode))
    baseline = parse_baseline(REVIEWED)
    return dataclasses.replace(Policy.compile(config), baseline=baseline, block_unapproved=block, verdicts=flow_memo())


def call(key: str, purpose: str = "assistant") -> Call:
    return Call("openai", "chat", "m", TraceContext(1, 2), sha(KEYS[key]), purpose)


PINNED = "Qwen2.5 7B (ft \u00fc)"  # as an operator writes it; calls report Qwen2.5%207B%20(ft%20%C3%BC)


@pytest.mark.parametrize("approved", [PINNED, "Qwen2.5%207B%20(ft%20%C3%BC)", "Qwen2.5 7B*"])
def test_a_pin_and_a_baseline_written_raw_or_encoded_agree_on_the_live_path_and_in_check(tmp_path, approved) -> None:  # type: ignore[no-untyped-def]
    """Checkpoint names are encoded (`printable_name`) where calls report them: the live path's pin came
    out encoded while `check --explain` (the `pinned` lookup) and the baseline kept the operator's raw name,
    so check said allow where serve refused with flow_not_approved (or the other way round)."""
    from proxy.checkpoints import CheckpointBook
    from proxy.protocols import Fetch

    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        f"flows: [{{caller: glasses-app, purpose: assistant, labels: ['*'], checkpoints: ['{approved}']}}]\n"
    )
    config = parse(POLICY_YAML.replace("MODE", "enforce").replace('"meta-llama/L@1"', f'"{PINNED}"')
                   + f"lineage: {{baseline: {baseline}, on_unapproved: block}}\n")  # fmt: skip
    book = CheckpointBook(config.upstreams, fetch=Fetch(_never_fetched))  # a pin never fetches

    def live(upstream, model, version):  # type: ignore[no-untyped-def]  # as the pipeline's `_served`
        found = book.resolve(upstream, model, version, learn=False)
        return found.name if found is not None else None

    checked = decide(call("glasses"), Policy.compile(config))  # `check --explain` without --checkpoint
    served = decide(call("glasses"), Policy.compile(config), live)
    assert (checked.action, checked.approved) == (served.action, served.approved) == ("allow", True)
    assert live(config.upstreams[0], "m", None) == "Qwen2.5%207B%20(ft%20%C3%BC)"


def test_a_baselines_checkpoints_are_read_as_calls_report_them_and_patterns_stay_patterns() -> None:
    entry = "flows: [{caller: a, purpose: p, checkpoints: ['%s']}]"
    read = {name: parse_baseline(entry % name).approvals[0].checkpoints[0]
            for name in ("Qwen 7B*", "iris:?", "[ab]*@*", "x%C3%BC", "50%", "")}  # fmt: skip
    assert read == {"Qwen 7B*": "Qwen%207B*", "iris:?": "iris:?", "[ab]*@*": "[ab]*@*", "x%C3%BC": "x%C3%BC",
                    "50%": "50%25", "": ""}  # fmt: skip
    assert parse_baseline(entry % "Qwen 7B*").covering(
        flow(caller="a", purpose="p", labels="", checkpoint="Qwen%207B@2")
    )


def test_decide_marks_approval_and_blocks_or_audits_the_rest() -> None:
    ok = decide(call("glasses"), policy())
    assert (ok.action, ok.approved) == ("allow", True)
    refused = decide(call("ops"), policy())
    assert (refused.action, refused.code, refused.rule, refused.approved) == (
        "deny", "flow_not_approved", "lineage.baseline", False)  # fmt: skip
    assert refused.upstream is None and "new caller 'ops'" in (refused.reason or "")
    flagged = decide(call("ops"), policy(block=False))
    assert (flagged.action, flagged.code, flagged.approved) == ("allow", None, False)
    audited = decide(call("ops"), policy("audit"))
    assert (audited.action, audited.code, audited.approved) == ("audit-deny", "flow_not_approved", False)
    assert audited.upstream is not None and audited.upstream.name == "eu"
    moved = decide(call("glasses"), policy(), lambda upstream, model, version: "other/M@9")
    assert moved.code == "flow_not_approved" and "now served by 'other/M@9'" in (moved.reason or "")
    p = policy()
    decide(call("ops"), p)
    assert len(p.verdicts) == 1  # memoised: one walk of the baseline per distinct flow


NAMES = st.text("abcxyz-.:*?[]", min_size=1, max_size=8)
# labels as calls record them (`[a-z0-9][a-z0-9._:/-]{0,127}`, the wire's since the first release): a baseline naming
# one no call can send is refused (`unmatchable`)
LABELS = st.from_regex(r"[a-z0-9][a-z0-9._:/-]{0,7}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            NAMES, st.text("abcxyz", max_size=5), st.sets(LABELS, max_size=3),
            st.text("abcxyz/@*?[] %\u00fc", max_size=8).map(printable_name),  # as calls record them
            st.sets(LABELS, max_size=2), st.sampled_from(["allow", "reroute", "deny", "audit-deny"]),
            st.one_of(st.none(), NAMES),
        ),
        max_size=12,
    )
)  # fmt: skip
def test_a_written_baseline_approves_every_flow_it_was_written_from(edges: list[tuple]) -> None:  # type: ignore[type-arg]
    rows = [
        EdgeRow(
            EdgeKey(
                caller,
                purpose,
                ",".join(sorted(inputs)),
                checkpoint if decision != "deny" else "",
                ",".join(sorted(outputs)),
                decision,
                rule or "",
            ),
            1.0,
            2.0,
            1,
        )
        for caller, purpose, inputs, checkpoint, outputs, decision, rule in edges
    ]
    written = parse_baseline(write_baseline(rows, store="s.db", window="all recorded", now=0))
    verdict = check(rows, written)
    assert verdict.ok and not verdict.unseen, verdict.unapproved
    nothing = check(rows, Baseline(()))
    assert {finding.kind for _, finding in nothing.unapproved} <= {"new-caller"}
    assert len(nothing.unapproved) == len(rows)


def test_a_key_given_twice_is_refused_with_its_place() -> None:
    """PyYAML keeps the last: `labels: [public]` then `labels: ["*"]` approved every label."""
    text = "version: 1\nflows:\n  - caller: app\n    purpose: p\n    labels: [public]\n    labels: ['*']\n"
    assert problems(text) == [
        "b.yaml:6:5: not valid YAML: duplicate key 'labels' (first on line 5): only the last would be read"
    ]
    assert problems("flows: []\nversion: 1\nflows: [{caller: '*', purpose: '*', labels: ['*']}]\n") == [
        "b.yaml:3:1: not valid YAML: duplicate key 'flows' (first on line 1): only the last would be read"
    ]


@pytest.mark.parametrize("key", ["checkpoints", "rules"])
def test_an_empty_list_of_checkpoints_or_rules_is_refused_as_ambiguous(key: str) -> None:
    """`labels: []` approves unlabelled data only, so `checkpoints: []` read as "none approved yet"; it
    approved any. Omitting the key is the one way to say any."""
    found = problems(f"flows:\n  - caller: app\n    purpose: p\n    {key}: []\n")
    assert found == [f"b.yaml:4: flows[0].{key}: an empty list is refused: omit {key} to approve any, or list "
                     "the ones approved"]  # fmt: skip
    omitted = parse_baseline("flows:\n  - {caller: app, purpose: p, labels: []}\n").approvals[0]
    assert (omitted.labels, omitted.checkpoints, omitted.rules) == ((), ("*",), ("*",))


def test_a_key_yaml_cannot_read_is_a_problem_not_a_traceback() -> None:
    """`!!bool maybe` made the duplicate-key check raise KeyError (a traceback from verify and report)."""
    with pytest.raises(BaselineError):
        parse_baseline("version: 1\nflows:\n  - caller: a\n    purpose: b\n    !!bool maybe: x\n", source="b.yaml")
