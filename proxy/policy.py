"""Purpose enforcement: the config compiled into lookups, and the pure `decide(call, policy)`.

`decide` does no I/O, reads no clock and touches no globals: the same Call and Policy always give the
same Decision. Rules, in order: caller identity, route, purpose resolution, caller purposes, route
purposes, zones (purpose, then region, with reroute). In audit mode nothing is blocked: a call that
would have been denied goes through as `audit-deny`, carrying the code and reason it would have had,
and still to the upstream its zones' regions allow when a reroute fits (a reroute never blocks).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.config import Caller, Config, Route, Upstream, Zone
from proxy.flow import ALLOW, AUDIT_DENY, DENY, REROUTE, Call, Decision


@dataclass(frozen=True, slots=True)
class Policy:
    """The compiled policy: every rule indexed for a decision in microseconds."""

    routes: dict[str, tuple[Route, Upstream]]
    fallback: tuple[Route, Upstream] | None
    callers_by_key: dict[str, Caller]
    zones_by_label: dict[str, tuple[Zone, ...]]
    upstreams: dict[str, Upstream]
    audit: bool
    anonymous_allowed: bool
    default_purpose: str | None
    opaque_allowed: bool  # policy.passthrough: bodies the proxy cannot read may be forwarded

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
            zones_by_label={label: tuple(zones) for label, zones in by_label.items()},
            upstreams=upstreams,
            audit=config.policy.mode == "audit",
            anonymous_allowed=config.policy.anonymous == "allow",
            default_purpose=config.policy.default_purpose,
            opaque_allowed=config.policy.passthrough == "forward"
            or (config.policy.passthrough == "auto" and not config.zones),
        )

    def route(self, model: str) -> tuple[Route, Upstream] | None:
        return self.routes.get(model) or self.fallback

    def caller(self, key_sha256: str | None) -> Caller | None:
        """The caller owning a key digest. The dict lookup is on a digest of the secret, not the secret,
        and the final comparison is constant-time, so timing reveals nothing about valid keys."""
        if key_sha256 is None:
            return None
        caller = self.callers_by_key.get(key_sha256)
        if caller is None or caller.api_key_sha256 is None:
            return None
        return caller if hmac.compare_digest(caller.api_key_sha256, key_sha256) else None


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def decide(call: Call, policy: Policy) -> Decision:
    """Decide one call. Pure: see the module docstring for the order of the rules."""
    denial: tuple[str, str, str] | None = None  # (code, rule, reason): the first rule that fired

    caller = policy.caller(call.key_sha256)
    if caller is None and (call.key_sha256 is not None or not policy.anonymous_allowed):
        if call.key_sha256 is None:
            denial = ("invalid_api_key", "policy.anonymous", "missing API key: send 'Authorization: Bearer <key>'")
        else:
            denial = ("invalid_api_key", "callers", "unknown API key")
    caller_name = caller.name if caller else None
    labels = call.labels | call.detected
    if caller is not None and caller.labels:
        labels = labels | caller.labels

    matched = policy.route(call.model)
    if matched is None:
        return Decision(
            DENY,
            None,
            caller_name,
            call.purpose,
            labels,
            code="model_not_found",
            rule="routes",
            reason=f"no route for model {call.model!r} (and no '*' fallback route)",
        )
    route, upstream = matched

    purpose = call.purpose or (caller.default_purpose if caller else None) or policy.default_purpose
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
                  "this endpoint carries data the proxy does not read, so no zone can be checked on it; it is "
                  "refused while zones are configured (policy.passthrough: forward allows it)")  # fmt: skip
    if denial is None and purpose is None:
        who = f"caller {caller_name!r} has no default_purpose" if caller else "the call has no known caller"
        denial = ("purpose_required", "policy.default_purpose",
                  f"no purpose given: send 'x-purpose' ({who} and policy.default_purpose is not set)")  # fmt: skip
    if denial is None and caller is not None and caller.purposes is not None and purpose not in caller.purposes:
        denial = ("purpose_denied", f"caller:{caller.name}",
                  f"caller {caller.name!r} may not act for purpose {purpose!r} (allowed: {_names(caller.purposes)})")  # fmt: skip
    if denial is None and route.purposes is not None and purpose not in route.purposes:
        denial = ("purpose_denied", f"route:{route.model}",
                  f"model {call.model or route.model!r} may not be used for purpose {purpose!r} "
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
