"""Purpose enforcement: the config compiled into lookups, and the pure `decide(call, policy)`.

`decide` does no I/O, reads no clock and touches no globals: the same Call and Policy always give the
same Decision. Rules, in order: caller identity, route, purpose resolution, caller purposes, route
purposes, zones (purpose, then region, with reroute). In audit mode nothing is blocked: a call that
would have been denied goes through as `audit-deny`, carrying the code and reason it would have had,
and still to the upstream its zones' regions allow when a reroute fits (a reroute never blocks).

Last, the boundary verifier: with `lineage.baseline`, the flow the call is about to make (caller,
purpose, input labels, decision and rule, and the checkpoint its upstream serves when that is known) is
matched against the approved baseline; an unapproved flow is marked `approved=False`, and with
`lineage.on_unapproved: block` refused as `flow_not_approved`. The checkpoint comes from a lookup the
caller passes (`served`): the proxy's checkpoint book, or config pins only (`check --explain`). A
checkpoint nothing can name before the reply fits any approved one; one the upstream's metadata could
name but has not yet (`Unknown`) does too, except with `block` when the verdict depends on it (no entry
covering the flow approves any checkpoint): such a call is refused as `checkpoint_unknown` (retryable)
rather than forwarded to weights nobody checked.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final, cast

from proxy.baseline import NO_WEIGHTS, Baseline, Finding, Flow
from proxy.config import Caller, Config, Route, Upstream, Zone
from proxy.flow import ALLOW, AUDIT_DENY, DENY, REROUTE, UNKNOWN_KEY, Call, Decision, printable_name, quoted_name
from proxy.labels import bounded_text
from proxy.memo import Memo

FLOWS_KEPT: Final = 4096  # flows a memo of flows (`flow_memo`) remembers at most
# what they may cost (`flow_size`): a flow holds every label its call carries, the caller's, up to 256 of 128 characters
FLOW_BYTES_KEPT: Final = 4 * 1024 * 1024


def flow_size(flow: Flow) -> int:
    """What remembering `flow` costs, about: its names' and labels' characters, 100 a label and 300 the entry besides."""
    size = 300 + len(flow.caller) + len(flow.purpose) + len(flow.checkpoint or "") + len(flow.rule or "")
    for label in flow.labels:
        size += 100 + len(label)
    return size


def flow_memo() -> Memo:
    """A memo of what is known of flows, at most `FLOWS_KEPT` of them and `FLOW_BYTES_KEPT` of their `flow_size`."""
    return Memo(FLOWS_KEPT, FLOW_BYTES_KEPT)


def decision_memo() -> Memo:
    """A memo of `_decide`'s decisions, at most `DECISIONS_KEPT` of them and `DECISION_BYTES_KEPT` of their sizes."""
    return Memo(DECISIONS_KEPT, DECISION_BYTES_KEPT)


@dataclass(frozen=True, slots=True)
class Policy:
    """The compiled policy: every rule indexed for a decision in microseconds."""

    routes: dict[str, tuple[Route, Upstream]]
    fallback: tuple[Route, Upstream] | None
    callers_by_key: dict[str, Caller]
    callers_by_identity: dict[str, Caller]  # a client certificate's SPIFFE ID or CN=<name> (mTLS)
    zones_by_label: dict[str, tuple[Zone, ...]]
    upstreams: dict[str, Upstream]
    audit: bool
    anonymous_allowed: bool
    default_purpose: str | None
    opaque_allowed: bool  # policy.passthrough: bodies the proxy cannot read may be forwarded
    # ... and those whose path names no model (their route is the "*" one, whatever model the body names)
    opaque_unrouted_allowed: bool
    baseline: Baseline | None = None  # lineage.baseline: the approved flows; None: not verified
    block_unapproved: bool = False  # lineage.on_unapproved: block
    # flow -> why it is not approved (None: approved). A memo of a pure function: a few distinct flows
    # recur on every call, so the boundary costs one dict lookup, not a walk of the baseline.
    verdicts: Memo = field(default_factory=flow_memo, compare=False)
    # flow (checkpoint not known) -> whether it is approved whatever its checkpoint: the same memo
    unrestricted: Memo = field(default_factory=flow_memo, compare=False)
    # the decisions of `_decide`, by what it reads of a call: the same memo for the same reason
    decisions: Memo = field(default_factory=decision_memo, compare=False)

    @classmethod
    def compile(cls, config: Config) -> Policy:
        upstreams = {u.name: u for u in config.upstreams}
        routes = {r.model: (r, upstreams[r.upstream]) for r in config.routes if r.model != "*"}
        fallback = next(((r, upstreams[r.upstream]) for r in config.routes if r.model == "*"), None)
        by_label: dict[str, list[Zone]] = {}
        for zone in config.zones:
            for label in zone.labels:
                by_label.setdefault(label, []).append(zone)
        return cls(
            routes=routes,
            fallback=fallback,
            callers_by_key={c.api_key_sha256: c for c in config.callers if c.api_key_sha256},
            callers_by_identity={c.tls_identity: c for c in config.callers if c.tls_identity},
            zones_by_label={label: tuple(zones) for label, zones in by_label.items()},
            upstreams=upstreams,
            audit=config.policy.mode == "audit",
            anonymous_allowed=config.policy.anonymous == "allow",
            default_purpose=config.policy.default_purpose,
            opaque_allowed=config.policy.passthrough == "forward"
            or (config.policy.passthrough == "auto" and not config.zones),
            opaque_unrouted_allowed=config.policy.passthrough == "forward"
            or (
                config.policy.passthrough == "auto"
                and not any(route.purposes is not None for route, _ in routes.values())
            ),
            # resolved once for this process's sidecar (a constant of it: a reload keeps the name it started with),
            # so an entry's `sidecars` costs the boundary nothing per call
            baseline=config.baseline.for_sidecar(config.lineage.sidecar) if config.baseline is not None else None,
            block_unapproved=config.lineage.on_unapproved == "block",
        )

    def route(self, model: str) -> tuple[Route, Upstream] | None:
        return self.routes.get(model) or self.fallback

    def caller(self, key_sha256: str | None, peer: tuple[str, ...] = ()) -> Caller | None:
        """The caller owning a key digest, else the one a verified client certificate names (`peer`):
        a certificate naming more than one identity (two SPIFFE IDs, or none and two common names)
        names none, whichever of them a caller has. The key lookup is on a digest of the secret, not
        the secret, and the final comparison is constant-time, so timing reveals nothing about valid keys."""
        if key_sha256 is None:
            return self.callers_by_identity.get(peer[0]) if len(peer) == 1 else None
        caller = self.callers_by_key.get(key_sha256)
        if caller is None or caller.api_key_sha256 is None:
            return None
        return caller if hmac.compare_digest(caller.api_key_sha256, key_sha256) else None

    def missing_key(self, peer: tuple[str, ...]) -> str:
        """Why a call without a key that no client certificate identifies is refused, and how to be identified."""
        return MISSING_KEY + (OR_CERTIFICATE if self.callers_by_identity and not peer else "") + _certificate_note(peer)

    def unapproved(self, flow: Flow) -> Finding | None:
        """Why the baseline does not cover `flow`, or None when it does (or there is no baseline)."""
        if self.baseline is None:
            return None
        verdicts = self.verdicts.kept
        if flow in verdicts:
            return cast(Finding | None, verdicts[flow])
        finding = self.baseline.explain(flow)
        self.verdicts.keep(flow, finding, flow_size(flow))
        return finding

    def any_checkpoint(self, flow: Flow) -> bool:
        """Whether the baseline approves `flow` whatever checkpoint it reaches: then a checkpoint not
        known yet cannot change the verdict."""
        if self.baseline is None:
            return True
        found = self.unrestricted.kept.get(flow)
        if found is None:
            approved = self.baseline.approves_any_checkpoint(flow)
            self.unrestricted.keep(flow, approved, flow_size(flow))
            return approved
        return found is True


def _not_asked(upstream: Upstream, model: str, caller: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Unknown:
    """What a `Served` lookup gives for a checkpoint the upstream's metadata could name but has not (yet).
    A lookup gives None when nothing before the reply can name it."""

    explain: Callable[[Upstream, str, str], str]  # (upstream, model, caller) -> why; asks the metadata again
    upstream: Upstream
    model: str
    # (upstream, model, caller) -> whether its model list did not hold the name when asked about it since (a typo:
    # `CheckpointBook.unlisted`); asks the metadata again
    unlisted: Callable[[Upstream, str, str], bool] = _not_asked

    def why(self, caller: str) -> str:
        """The refusal's reason, for a call of `caller` refused for want of the checkpoint: only such a
        call asks the metadata again (a call refused or approved anyway asks nothing)."""
        return self.explain(self.upstream, self.model, caller)

    def not_served(self, caller: str) -> bool:
        """For a call of `caller` refused for want of the checkpoint: whether the upstream's model list, asked about
        the name since, does not hold it, so a retry gets the same answer (asks the metadata again, as `why`)."""
        return self.unlisted(self.upstream, self.model, caller)


# (upstream, requested model, requested version) -> the checkpoint it serves, when known before the reply
Served = Callable[[Upstream, str, str | None], str | Unknown | None]


def pinned(upstream: Upstream, model: str, version: str | None) -> str | None:
    """What the config alone says an upstream serves: its pin, if it has one, written as the live path's
    checkpoint book writes it (`Checkpoint` encodes it with `printable_name`), so both meet the baseline alike."""
    return printable_name(upstream.checkpoint) if upstream.checkpoint else None


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


DECISIONS_KEPT = 4096  # distinct (caller, purpose, labels, model) combinations remembered per policy
# characters of a call's model name and labels together past which its decision is not remembered: the key and the
# decision (whose reason may name the model) hold them, and a model's name is the caller's, as long as a body (4,096
# decisions for names of a megabyte kept 8 GB)
DECISION_KEY_KEPT_MAX: Final = 1024
# what the decisions remembered may cost together (their memo's `bytes`): an entry keeps the call's labels and the decision's,
# each label a set's slot and a string's header besides its characters, and a call may carry 256 labels (4,096
# decisions of 256 labels of two characters, each a new set, kept 96 MB)
DECISION_BYTES_KEPT: Final = 8 * 1024 * 1024
_DECISION_ENTRY: Final = 600  # the key's tuple, the decision, their slots (bytes, about)
_DECISION_LABEL: Final = 200  # a label's two set slots and string headers (in the key's set and the decision's)


def decide(call: Call, policy: Policy, served: Served = pinned) -> Decision:
    """Decide one call. Pure: see the module docstring for the order of the rules. A combination seen
    before costs one dict lookup (the memo is per compiled policy, so a reload starts afresh)."""
    key = (call.key_sha256, call.peer, call.labels, call.detected, call.model, call.purpose, call.opaque, call.unrouted)
    decision = cast(Decision | None, policy.decisions.kept.get(key))
    if decision is None:
        decision = _decide(call, policy)
        chars = _key_chars(call)
        if chars <= DECISION_KEY_KEPT_MAX:  # a longer one is decided afresh each time
            size = chars + _DECISION_ENTRY + _DECISION_LABEL * len(decision.labels)
            policy.decisions.keep(key, decision, size)  # full: begun again (endless distinct labels cannot grow it)
    if policy.baseline is None or not call.carries_data:
        return decision
    return verify_flow(call, decision, policy, served)


def refused_by_head(call: Call, policy: Policy, model_named: bool) -> Decision | None:
    """`decide`'s refusal of a call built from its request's head alone (no body read: the model its path names,
    else none, the labels its headers carry), when no body can change it to a forwarded call: no purpose resolved
    (`purpose_required`), or one its caller's `purposes` do not list, or its route's, when its path names the model
    (a model a body names may be routed elsewhere). What a body adds (labels, detections) only adds refusals, and only
    later ones in the rules' order (zones'), never one that comes first: the code answered at the head is the one the
    same request sent whole gets. So a call whose body may be data the proxy does not read (`_OPAQUE_BODIES`: OIP
    tensors in shared memory) while such data is refused (`endpoint_denied`, before any purpose) is left to its body,
    as is one whose body names its model with no `"*"` route (`model_not_found`, first). None otherwise, and in audit
    mode (nothing is refused)."""
    if call.protocol in _OPAQUE_BODIES and not policy.opaque_allowed:
        return None  # its body may be refused first, as data the proxy does not read
    if not model_named and policy.fallback is None:
        return None  # its body's model may be one no route serves
    decision = _decide(call, policy)
    if decision.action != DENY or decision.code not in ("purpose_required", "purpose_denied"):
        return None
    rule = decision.rule or ""
    if decision.code == "purpose_denied" and not (
        rule.startswith("caller:") or (model_named and rule.startswith("route:"))
    ):
        return None  # a zone's: the body's model may be one no route serves, answered as such
    return decision


# adapters whose request body may make a call opaque (`Call.opaque`: data the proxy does not read), which
# `policy.passthrough` may refuse before any purpose rule: OIP REST's tensors in shared memory (passthrough's calls are
# left to their body by the ingress); KServe V1's whose `Content-Type` is not JSON (its model gets the raw bytes)
_OPAQUE_BODIES: Final = frozenset({"oip", "kserve"})


def _key_chars(call: Call) -> int:
    """The characters a call's decision would keep remembered: its model's name and its labels'."""
    chars = len(call.model)
    for label in call.labels:
        chars += len(label)
    return chars


_NAMES_ITS_VERSION = frozenset({"oip", "oip-grpc"})  # adapters whose reply names the checkpoint `model:version`


def boundary_flow(call: Call, decision: Decision, served: Served = pinned) -> Flow:
    """The flow a call is about to make, as far as it is known before the reply: output labels are not
    (so only input labels are matched), and the checkpoint only when pinned or already discovered."""
    return _boundary(call, decision, served)[0]


def _boundary(call: Call, decision: Decision, served: Served) -> tuple[Flow, Unknown | None]:
    """The boundary flow, and why its checkpoint is not known yet when the upstream could name it."""
    upstream = decision.upstream
    if call.runs_no_weights and upstream is not None:  # (a LoRA adapter's load or unload: its edge records so)
        found: str | Unknown | None = NO_WEIGHTS
    else:
        found = served(upstream, call.model, call.model_version) if upstream is not None else ""
    waiting, checkpoint = (found, None) if isinstance(found, Unknown) else (None, found)
    if not checkpoint and upstream is not None and call.model_version and call.protocol in _NAMES_ITS_VERSION:
        # a version the metadata does not list (yet): the one the reply will name (`iris:3`), not an unknown
        # checkpoint, which any approved one fitted (a version loaded since discovery went through `block`). A
        # refused call (no upstream) reached none, as its edge records: refusals skip `checkpoints`
        checkpoint, waiting = printable_name(f"{call.model}:{call.model_version}"), None
    if decision.unidentified:  # judged as its edge records it: without what an unknown client claims
        return Flow(decision.caller or "anonymous", "", frozenset(), checkpoint, decision.action, decision.rule), None
    return Flow(decision.caller or "anonymous", decision.purpose or "", decision.labels, checkpoint,
                decision.action, decision.rule), waiting  # fmt: skip


def verify_flow(call: Call, decision: Decision, policy: Policy, served: Served = pinned) -> Decision:
    """The boundary verifier: mark the decision approved or not; with `block`, refuse a forwarded
    call whose flow is unapproved, or whose checkpoint its upstream's metadata has not named yet when
    the verdict depends on it (it cannot be checked: `checkpoint_unknown`, approval left unsaid). In
    audit mode it goes on as `audit-deny`, like every denial."""
    flow, waiting = _boundary(call, decision, served)
    finding = policy.unapproved(flow)
    if finding is None:
        if (waiting is None or not policy.block_unapproved or decision.action in (DENY, AUDIT_DENY)
                or policy.any_checkpoint(flow)):  # fmt: skip
            return replace(decision, approved=True)
        caller = decision.caller or "anonymous"
        if waiting.not_served(caller):  # (a typo: 503, retry shortly, was for ever until 2026-12-05)
            return refuse(decision, policy, "model_not_found", "lineage.baseline",
                          f"model {quoted_name(call.model)} is not in upstream {waiting.upstream.name!r}'s model list "
                          "(it was asked about, and is asked again at most once a second), so the checkpoint serving "
                          "it cannot be checked against the approved baseline: call the model by a name the metadata "
                          "lists; or approve the flow for any checkpoint (a baseline entry without checkpoints:); or, "
                          "for an upstream serving one model under any name, pin upstreams[].checkpoint")  # fmt: skip
        why = waiting.why(caller)
        return refuse(decision, policy, "checkpoint_unknown", "lineage.baseline",
                      f"the checkpoint serving model {quoted_name(call.model)} is not known yet, so the flow cannot be "
                      f"checked against the approved baseline: {why}; retry shortly")  # fmt: skip
    if not policy.block_unapproved or decision.action in (DENY, AUDIT_DENY):
        return replace(decision, approved=False)
    return refuse(replace(decision, approved=False), policy, "flow_not_approved", "lineage.baseline",
                  bounded_text(f"flow not in the approved baseline: {finding.message}"))  # fmt: skip


def refuse(decision: Decision, policy: Policy, code: str, rule: str, reason: str) -> Decision:
    """A forwarded call refused after `decide`'s rules (by the baseline, or by a store that cannot record):
    denied, or in audit mode let through as `audit-deny` like every other refusal."""
    if policy.audit:
        return replace(decision, action=AUDIT_DENY, code=code, rule=rule, reason=reason)
    return replace(decision, action=DENY, upstream=None, code=code, rule=rule, reason=reason)


MISSING_KEY: Final = "missing API key: send 'Authorization: Bearer <key>'"
# where callers are named by their client certificates, a call that showed none is told it may show one instead:
# the key alone sent a caller that has no key after one
OR_CERTIFICATE: Final = ", or a client certificate that names a caller (callers[].tls_identity)"


def _certificate_note(peer: tuple[str, ...]) -> str:
    if len(peer) > 1:
        return (f" (the client certificate names {len(peer)} identities, {peer[0]!r} and {peer[1]!r}"
                f"{' among them' if len(peer) > 2 else ''}: one that names several identifies no caller)")  # fmt: skip
    return f" (the client certificate {peer[0]!r} names no caller)" if peer else ""


def names_url(model: str) -> bool:
    """Whether a model name names a server by URL, holding `http://` or `https://` in any case: LiteLLM's providers send
    the call there (Hugging Face's, Oobabooga's `huggingface/http://...`; its proxy's newest versions refuse it unless
    its config allows that host, earlier ones forwarded it where a wildcard deployment served any name), as a part the
    name's commas separate, past its provider's `/`, and past a Hugging Face task's too (`huggingface/conversational/
    https://...`: `get_hf_task_for_model` takes it off, then `"https" in model`), so it is looked for anywhere. No
    route's model is one; on the `"*"` route it is refused (`model_not_found`). Until 2026-12-07 it was the `"*"`
    route's call, recorded as that upstream's (helper litellm15; a task's prefix: review revlitellm15). In `_decide`,
    kept in the decisions' memo: no work a call."""
    if "://" not in model:
        return False
    lowered = model.lower()
    return "http://" in lowered or "https://" in lowered


def _decide(call: Call, policy: Policy) -> Decision:
    denial: tuple[str, str, str] | None = None  # (code, rule, reason): the first rule that fired

    caller = policy.caller(call.key_sha256, call.peer)
    if caller is None and (call.key_sha256 is not None or not policy.anonymous_allowed):
        if call.key_sha256 is None:
            denial = ("invalid_api_key", "policy.anonymous", policy.missing_key(call.peer))
        else:
            denial = ("invalid_api_key", "callers", "unknown API key")
    # a key no caller owns is not an unauthenticated call: its flows are kept apart (key guessing shows)
    caller_name = caller.name if caller else (UNKNOWN_KEY if call.key_sha256 is not None else None)
    labels = call.labels | call.detected
    if caller is not None and caller.labels:
        labels = labels | caller.labels

    purpose = call.purpose or (caller.default_purpose if caller else None) or policy.default_purpose
    matched = policy.route(call.model)
    if matched is None:
        # a caller the proxy does not know is refused as such: it never learns which models are routed
        missing = f"model {quoted_name(call.model)}" if call.model or not call.unrouted else "a call naming no model"
        code, rule, reason = denial or ("model_not_found", "routes",
                                        f"no route for {missing} (and no '*' fallback route)")  # fmt: skip
        return Decision(DENY, None, caller_name, purpose, labels, code=code, rule=rule, reason=reason)
    route, upstream = matched
    if route.model == "*" and names_url(call.model):
        code, rule, reason = denial or ("model_not_found", "routes",
                                        f"no route for model {quoted_name(call.model)}: it names a server by URL, "
                                        "which a gateway (LiteLLM proxy) sends the call to, and the '*' route "
                                        "describes no such server; give it a route of its own")  # fmt: skip
        return Decision(DENY, None, caller_name, purpose, labels, code=code, rule=rule, reason=reason)

    zones: tuple[Zone, ...] = ()
    if labels:
        hit: dict[str, Zone] = {}
        for label in labels:
            for zone in policy.zones_by_label.get(label, ()):
                hit[zone.name] = zone
        zones = tuple(hit[name] for name in sorted(hit))
    zone_names = tuple(zone.name for zone in zones)

    if denial is None and call.opaque and not policy.opaque_allowed:
        denial = ("endpoint_denied", "policy.passthrough",
                  "this call carries data the proxy does not read (a path or method no adapter reads, or tensors "
                  "in shared memory), so no zone can be checked on it; it is refused while zones are configured "
                  "(policy.passthrough: forward allows it)")  # fmt: skip
    if denial is None and call.opaque and not call.model and not policy.opaque_unrouted_allowed:
        # vLLM's `/invocations` and `/pooling`, a router's `/completion`: the model is the one
        # the unread body names, not the "*" route's, so a route's purposes could not be checked on it
        denial = ("endpoint_denied", "policy.passthrough",
                  "this call carries data the proxy does not read, which may name any model, so no route's purposes "
                  "can be checked on it; it is refused while a route limits its model's purposes "
                  "(policy.passthrough: forward allows it)")  # fmt: skip
    if denial is None and call.unrouted and not call.model and not policy.opaque_unrouted_allowed:
        # llama.cpp's native `/completion`, `/infill`, ... naming no model: read, but the model that runs is the one
        # the upstream serves, which a route naming it may limit, not the "*" route's
        denial = ("endpoint_denied", "policy.passthrough",
                  "this call names no model ('model' in its body), so the model it runs is whichever its upstream "
                  "serves, and no route's purposes can be checked on it; it is refused while a route limits its "
                  "model's purposes: name the model (policy.passthrough: forward sends it by the '*' route)")  # fmt: skip
    if denial is None and purpose is None:
        who = f"caller {caller_name!r} has no default_purpose" if caller else "the call has no known caller"
        denial = ("purpose_required", "policy.default_purpose",
                  f"no purpose given: send 'x-purpose' ({who} and policy.default_purpose is not set)")  # fmt: skip
    if denial is None and caller is not None and caller.purposes is not None and purpose not in caller.purposes:
        denial = ("purpose_denied", f"caller:{caller.name}",
                  f"caller {caller.name!r} may not act for purpose {purpose!r} (allowed: {_names(caller.purposes)})")  # fmt: skip
    if denial is None and route.purposes is not None and purpose not in route.purposes:
        denial = ("purpose_denied", f"route:{route.model}",
                  f"model {quoted_name(call.model or route.model)} may not be used for purpose {purpose!r} "
                  f"(route allows: {_names(route.purposes)})")  # fmt: skip
    if denial is None:
        for zone in zones:
            if purpose not in zone.allow_purposes:
                carried = _names(zone.labels & labels)
                denial = ("purpose_denied", f"zone:{zone.name}",
                          f"purpose {purpose!r} is not allowed for data labelled {carried!r} "
                          f"(zone {zone.name} allows: {_names(zone.allow_purposes)})")  # fmt: skip
                break

    # Where the data may go is decided whatever the purpose: a reroute never blocks, so audit mode,
    # which forwards calls it would have denied, still sends zoned data only where its zones allow.
    violated = [z for z in zones if z.regions is not None and upstream.region not in z.regions]
    target: Upstream | None = None
    if violated:
        # Reroute only when every violated zone asks for it, all to the same upstream, and that upstream
        # satisfies every zone touched. A zone that says `block` is never overridden by another zone's
        # reroute, so adding a label can never turn a refusal into a forwarded call.
        targets = {zone.reroute_to for zone in violated}
        agreed = targets.pop() if len(targets) == 1 else None
        found = policy.upstreams.get(agreed) if agreed is not None else None
        if found is not None and all(z.regions is None or found.region in z.regions for z in zones):
            target = found

    if denial is None:
        if not violated:
            return Decision(ALLOW, upstream, caller_name, purpose, labels, zone_names)
        if target is not None:
            reason = f"rerouted from upstream {upstream.name!r} to {target.name!r} to keep data in its zone's regions"
            return Decision(
                REROUTE, target, caller_name, purpose, labels, zone_names, None, f"zone:{violated[0].name}", reason
            )
        zone = next((z for z in violated if z.reroute_to is None), violated[0])
        denial = ("region_denied", f"zone:{zone.name}",
                  f"data labelled {_names(zone.labels & labels)!r} may only go to regions "
                  f"{_names(zone.regions or ())} (zone {zone.name}); upstream {upstream.name!r} is in region "
                  f"{upstream.region or 'unset'!r}"
                  + ("" if zone.reroute_to is None else "; no single reroute target satisfies every zone touched"))  # fmt: skip

    code, rule, reason = denial
    if policy.audit:
        forward_to = target or upstream  # audit: the call goes on, to where its data may go if anywhere
        return Decision(AUDIT_DENY, forward_to, caller_name, purpose, labels, zone_names, code, rule, reason)
    return Decision(DENY, None, caller_name, purpose, labels, zone_names, code, rule, reason)
