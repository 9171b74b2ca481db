"""decide(): every rule, their combinations, and invariants checked with hypothesis."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import parse
from proxy.flow import Call, TraceContext
from proxy.policy import Policy, decide
from tests.conftest import KEYS, sha

POLICY_YAML = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - {{name: us-llama, url: "http://127.0.0.1:1", region: us}}
  - {{name: eu-llama, url: "http://127.0.0.1:2", region: eu}}
  - {{name: ap-llama, url: "http://127.0.0.1:3", region: ap}}
routes:
  - {{model: llama, upstream: eu-llama, purposes: [assistant, safety-review, ads]}}
  - {{model: llama-us, upstream: us-llama}}
  - {{model: llama-ap, upstream: ap-llama}}
  - {{model: "*", upstream: eu-llama}}
callers:
  - name: glasses-app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant, ads]
    labels: [user-interaction]
    default_purpose: assistant
  - name: ads-ranker
    api_key_sha256: {sha(KEYS["ads"])}
    purposes: [ads, assistant]
  - name: ops
    api_key_sha256: {sha(KEYS["ops"])}
zones:
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant, safety-review]
    regions: [eu]
    on_deny: reroute:eu-llama
  - name: health
    labels: [health, pii:medical]
    allow_purposes: [assistant]
    regions: [eu]
policy: {{mode: enforce, anonymous: deny}}
"""

CONFIG = parse(POLICY_YAML)
POLICY = Policy.compile(CONFIG)
TRACE = TraceContext(1, 2)


def call(key: str | None = "glasses", model: str = "llama", purpose: str | None = None,
         labels: frozenset[str] = frozenset(), detected: frozenset[str] = frozenset()) -> Call:  # fmt: skip
    digest = sha(KEYS[key]) if key in KEYS else (sha(key) if key else None)
    return Call("openai", "chat", model, TRACE, digest, purpose, labels, detected)


def test_allow_with_caller_default_purpose_and_caller_labels() -> None:
    d = decide(call(), POLICY)
    assert (d.action, d.caller, d.purpose, d.upstream.name) == ("allow", "glasses-app", "assistant", "eu-llama")  # type: ignore[union-attr]
    assert d.labels == {"user-interaction"} and d.zones == ("interaction-data",)
    assert d.reason is None and d.code is None


def test_missing_and_unknown_keys() -> None:
    missing = decide(call(key=None, purpose="assistant"), POLICY)
    assert (missing.action, missing.code, missing.rule) == ("deny", "invalid_api_key", "policy.anonymous")
    unknown = decide(call(key="not-a-key", purpose="assistant"), POLICY)
    assert (unknown.action, unknown.code) == ("deny", "invalid_api_key") and unknown.reason == "unknown API key"
    assert unknown.upstream is None


def test_anonymous_allowed_still_rejects_a_wrong_key() -> None:
    policy = Policy.compile(parse(POLICY_YAML.replace("anonymous: deny", "anonymous: allow")))
    assert decide(call(key=None, purpose="assistant"), policy).action == "allow"
    assert decide(call(key="wrong", purpose="assistant"), policy).code == "invalid_api_key"


def test_purpose_required_when_nobody_names_one() -> None:
    d = decide(call(key="ads"), POLICY)
    assert (d.action, d.code, d.rule) == ("deny", "purpose_required", "policy.default_purpose")
    assert "send 'x-purpose'" in (d.reason or "")
    with_default = Policy.compile(
        parse(POLICY_YAML.replace("anonymous: deny", "anonymous: deny, default_purpose: ads"))
    )
    assert decide(call(key="ads"), with_default).purpose == "ads"


def test_caller_may_only_claim_its_purposes() -> None:
    d = decide(call(key="ads", purpose="safety-review"), POLICY)
    assert (d.code, d.rule) == ("purpose_denied", "caller:ads-ranker")
    assert d.reason == "caller 'ads-ranker' may not act for purpose 'safety-review' (allowed: ads, assistant)"


def test_route_purposes() -> None:
    d = decide(call(key="ops", purpose="training"), POLICY)
    assert (d.code, d.rule) == ("purpose_denied", "route:llama")
    assert "(route allows: ads, assistant, safety-review)" in (d.reason or "")
    assert decide(call(key="ops", model="llama-us", purpose="training"), POLICY).action == "allow"


def test_zone_purpose_denial_names_the_zone_and_label() -> None:
    d = decide(call(purpose="ads"), POLICY)
    assert (d.action, d.code, d.rule) == ("deny", "purpose_denied", "zone:interaction-data")
    assert d.reason == (
        "purpose 'ads' is not allowed for data labelled 'user-interaction' "
        "(zone interaction-data allows: assistant, safety-review)"
    )


def test_declared_and_detected_labels_count_like_caller_labels() -> None:
    assert decide(call(key="ads", purpose="ads", labels=frozenset({"health"})), POLICY).rule == "zone:health"
    assert decide(call(key="ads", purpose="ads", detected=frozenset({"pii:medical"})), POLICY).rule == "zone:health"
    assert decide(call(key="ads", purpose="ads", labels=frozenset({"public"})), POLICY).action == "allow"


def test_region_reroute_and_region_denial() -> None:
    rerouted = decide(call(model="llama-us", purpose="assistant"), POLICY)
    assert (rerouted.action, rerouted.upstream.name) == ("reroute", "eu-llama")  # type: ignore[union-attr]
    assert "rerouted from upstream 'us-llama' to 'eu-llama'" in (rerouted.reason or "")
    denied = decide(call(key="ops", model="llama-us", purpose="assistant", labels=frozenset({"health"})), POLICY)
    assert (denied.action, denied.code, denied.rule) == ("deny", "region_denied", "zone:health")
    assert "upstream 'us-llama' is in region 'us'" in (denied.reason or "")


def test_a_blocking_zone_is_never_overridden_by_another_zones_reroute() -> None:
    # glasses-app carries user-interaction (reroute to eu); health says block: the stricter zone wins
    d = decide(call(model="llama-ap", purpose="assistant", labels=frozenset({"health"})), POLICY)
    assert (d.action, d.code, d.rule) == ("deny", "region_denied", "zone:health")
    assert d.upstream is None


def test_reroute_needs_every_violated_zone_to_agree_on_a_target_that_fits_all_zones() -> None:
    two_targets = Policy.compile(
        parse(
            POLICY_YAML.replace(
                "    regions: [eu]\npolicy:", "    regions: [eu]\n    on_deny: reroute:eu-llama\npolicy:"
            )
        )
    )
    d = decide(call(model="llama-ap", purpose="assistant", labels=frozenset({"health"})), two_targets)
    assert (d.action, d.upstream.name, d.zones) == ("reroute", "eu-llama", ("health", "interaction-data"))  # type: ignore[union-attr]
    to_us = Policy.compile(
        parse(
            POLICY_YAML.replace(
                "    regions: [eu]\npolicy:", "    regions: [eu, us]\n    on_deny: reroute:us-llama\npolicy:"
            )
        )
    )
    d = decide(call(model="llama-ap", purpose="assistant", labels=frozenset({"health"})), to_us)
    assert (d.action, d.code) == ("deny", "region_denied")
    assert "no single reroute target satisfies every zone touched" in (d.reason or "")


def test_no_route() -> None:
    policy = Policy.compile(parse(POLICY_YAML.replace('  - {model: "*", upstream: eu-llama}\n', "")))
    d = decide(call(model="gpt-x", purpose="assistant"), policy)
    assert (d.action, d.code) == ("deny", "model_not_found")
    assert decide(call(model="gpt-x"), policy).purpose == "assistant"  # the caller's default, recorded


def test_an_unknown_caller_is_refused_as_such_even_for_a_model_without_a_route() -> None:
    """Otherwise a caller without a key learns which model names are routed (404 against 401)."""
    policy = Policy.compile(parse(POLICY_YAML.replace('  - {model: "*", upstream: eu-llama}\n', "")))
    for key in (None, "not-a-key"):
        d = decide(call(model="gpt-x", key=key), policy)
        assert (d.action, d.code) == ("deny", "invalid_api_key"), key


def test_audit_mode_never_blocks_but_says_what_it_would_have_done() -> None:
    audit = Policy.compile(parse(POLICY_YAML.replace("mode: enforce", "mode: audit")))
    d = decide(call(purpose="ads"), audit)
    assert (d.action, d.code, d.rule) == ("audit-deny", "purpose_denied", "zone:interaction-data")
    assert d.upstream is not None and d.upstream.name == "eu-llama"
    assert decide(call(key=None, purpose="assistant"), audit).action == "audit-deny"
    assert decide(call(), audit).action == "allow"


def test_decide_is_fast() -> None:
    """Not a benchmark (see benchmarks/): a guard that decide stays in the microseconds."""
    c = call(model="llama-us", purpose="assistant", labels=frozenset({"a", "b", "health"}))
    start = time.perf_counter()
    for _ in range(2000):
        decide(c, POLICY)
    assert (time.perf_counter() - start) / 2000 < 200e-6


LABELS = st.frozensets(st.sampled_from(["user-interaction", "health", "pii:medical", "pii:email", "public", "x"]))


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_the_decision_memo_is_bounded_and_never_answers_for_another_call(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """decide remembers what `_decide` answered per (key, peer, labels, detected, model, purpose, opaque):
    every combination gets exactly the decision the rules give it, and the memo stays under its cap."""
    import proxy.policy as policy_module

    monkeypatch.setattr(policy_module, "DECISIONS_KEPT", 16)
    policy = Policy.compile(CONFIG)
    keys, models, purposes = ["glasses", "ads", "ops", None, "bogus"], ["llama", "llama-us", "other"], ["ads", None]
    labelsets = [frozenset(), frozenset({"health"}), frozenset({"user-interaction", "pii:email"})]
    for _ in range(2):  # the second pass is answered from the memo (partly: it is cleared when full)
        for key in keys:
            for model in models:
                for purpose in purposes:
                    for labels in labelsets:
                        c = call(key, model, purpose, labels)
                        assert decide(c, policy) == policy_module._decide(c, policy)
                        assert len(policy.decisions) <= 16
    assert decide(call(), policy) is decide(call(), policy)  # a repeat is one dict lookup


PURPOSES = st.sampled_from(["assistant", "ads", "safety-review", "training", None])
KEYS_ = st.sampled_from(["glasses", "ads", "ops", None, "bogus"])
MODELS = st.sampled_from(["llama", "llama-us", "llama-ap", "other"])


@settings(max_examples=400, deadline=None)
@given(KEYS_, MODELS, PURPOSES, LABELS, LABELS)
def test_no_label_combination_lets_a_zone_forbidden_purpose_through(key, model, purpose, labels, detected) -> None:  # type: ignore[no-untyped-def]
    d = decide(call(key, model, purpose, labels, detected), POLICY)
    if d.action not in ("allow", "reroute"):
        return
    for zone in CONFIG.zones:
        if zone.labels & d.labels:
            assert d.purpose in zone.allow_purposes
            assert zone.regions is None or d.upstream.region in zone.regions  # type: ignore[union-attr]


@settings(max_examples=400, deadline=None)
@given(KEYS_, MODELS, PURPOSES, LABELS, st.sampled_from(["user-interaction", "health", "pii:medical", "public"]))
def test_adding_a_label_never_turns_a_deny_into_an_allow(key, model, purpose, labels, extra) -> None:  # type: ignore[no-untyped-def]
    before = decide(call(key, model, purpose, labels), POLICY)
    after = decide(call(key, model, purpose, labels | {extra}), POLICY)
    if before.action == "deny":
        assert after.action == "deny"


@settings(max_examples=200, deadline=None)
@given(KEYS_, MODELS, PURPOSES, LABELS)
def test_decide_is_pure(key, model, purpose, labels) -> None:  # type: ignore[no-untyped-def]
    c = call(key, model, purpose, labels)
    assert decide(c, POLICY) == decide(c, POLICY)


AUDIT = Policy.compile(parse(POLICY_YAML.replace("mode: enforce", "mode: audit")))


@settings(max_examples=400, deadline=None)
@given(KEYS_, MODELS, PURPOSES, LABELS, LABELS)
def test_audit_mode_sends_zoned_data_where_enforcement_would(key, model, purpose, labels, detected) -> None:  # type: ignore[no-untyped-def]
    """Audit mode never blocks, but a reroute never blocks either: whatever the purpose, an audited
    call goes to the upstream that enforcement picks for the same data with an allowed purpose."""
    audited = decide(call(key, model, purpose, labels, detected), AUDIT)
    compliant = decide(call("ops", model, "assistant", labels, detected), POLICY)
    if audited.upstream is None or compliant.action not in ("allow", "reroute"):
        return
    if audited.labels == compliant.labels:
        assert audited.upstream == compliant.upstream


def test_audit_deny_of_a_region_violation_takes_the_reroute() -> None:
    d = decide(call(key="ads", model="llama-us", purpose="ads", labels=frozenset({"user-interaction"})), AUDIT)
    assert (d.action, d.code, d.upstream.name) == ("audit-deny", "purpose_denied", "eu-llama")  # type: ignore[union-attr]
    enforced = decide(call(key="ads", model="llama-us", purpose="assistant", labels=frozenset({"user-interaction"})),
                      POLICY)  # fmt: skip
    assert (enforced.action, enforced.upstream.name) == ("reroute", "eu-llama")  # type: ignore[union-attr]


def test_at_the_boundary_an_oip_version_not_yet_listed_is_that_checkpoint_and_nothing_else_is() -> None:
    """An OIP call naming a version the metadata does not list is checked as `model:version` (unknown, any
    approved checkpoint fitted it); a passthrough call on an OIP-shaped path, whose reply names nothing
    and which is recorded with no checkpoint, stays unknown (as `model:version` a baseline written from its
    own record, `checkpoints: ['']`, refused it)."""
    from proxy.flow import ALLOW, Decision
    from proxy.policy import boundary_flow

    config = parse("listen: {http: 127.0.0.1:0}\nupstreams: [{name: t, url: 'http://127.0.0.1:1', protocol: oip}]\n"
                   "routes: [{model: '*', upstream: t}]\n", source="t.yaml")  # fmt: skip
    decision = Decision(ALLOW, config.upstreams[0])
    for protocol, checkpoint in (("oip", "iris:3"), ("oip-grpc", "iris:3"), ("passthrough", None)):
        call = Call(protocol, "infer", "iris", TRACE, model_version="3")  # type: ignore[arg-type]
        assert boundary_flow(call, decision, lambda upstream, model, version: None).checkpoint == checkpoint
    unversioned = Call("oip", "infer", "iris", TRACE)
    assert boundary_flow(unversioned, decision, lambda upstream, model, version: None).checkpoint is None
