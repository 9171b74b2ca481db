"""What one config means for a call: build the Call from a request, decide it, check a key.

A `Pipeline` is everything derived from one config (policy, detectors, sampling); a reload builds a new
one and swaps it in atomically (`PipelineRef`). The `Runtime` holds what outlives configs: the
checkpoint book, the record sinks and the counters. The walk of one call is the Exchange's
(`exchange.py`); this module only answers its questions.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from typing import Final

from proxy.checkpoints import CheckpointBook
from proxy.config import BUILTIN_DETECTORS, Config, Upstream
from proxy.detectors import (
    CAPTURE_MAX_CHARS,
    NOT_CAPTURED,
    NOT_CAPTURED_PAST_BOUND,
    TRUNCATED,
    WINDOW_WIDEST,
    Detectors,
)
from proxy.errors import DENIAL_ERRORS, InvalidRequest, ProxyError, UnknownPurpose, echoed
from proxy.flow import (
    ALLOW,
    AUDIT_DENY,
    DENY,
    KNOWN_PURPOSES,
    REROUTE,
    UNKNOWN_KEY,
    UPSTREAM,
    Call,
    Decision,
    KeyMemo,
    ProtocolName,
    TraceContext,
    quoted_name,
)
from proxy.labels import (
    MAX_CALL_LABELS,
    PURPOSE_GRAMMAR,
    KnownLabels,
    bounded_text,
    check_labels,
    given_label,
    is_label,
    logged_labels,
    parse_labels,
)
from proxy.memo import Memo
from proxy.metrics import Metrics, Stats
from proxy.policy import Policy, Unknown, boundary_flow, decide, flow_memo, flow_size, refuse
from proxy.protocols import (
    CUSTOM_JOINS_MAX_CHARS,
    NO_ADVISORS,
    SHA256,
    WHOLE_MAX,
    Header,
    Request,
    both_boundary_windows,
    boundary_windows,
    json_unescaped,
    text_digest,
)
from proxy.protocols.oip import KEY_BIN, header_labels, named_fields, passed_key_text, tracestate_text
from proxy.protocols.passthrough import QueryRequest
from proxy.record.sinks import FanOut
from proxy.record.spans import trace_context

log = logging.getLogger("lineage_proxy.baseline")


_NONE: Final[frozenset[str]] = frozenset()
# `Pipeline.beside_found`: the header blocks whose findings are kept, and the characters they hold together (about: an
# entry's text, and `_BESIDE_ENTRY` for its slot and its labels): 1,024 blocks of up to 1 MiB together
BESIDE_KEPT: Final = 1024
BESIDE_BYTES_KEPT: Final = 1 << 20
_BESIDE_ENTRY: Final = 200
_TRUNCATED: Final = frozenset({TRUNCATED})  # also: an adapter left content past a scan limit unread
# a tool call's argument number as a server prints it again (`reprinted_numbers`: Python's repr of a double)
_PRINTED_NUMBER: Final = re.compile(r"-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|inf|nan)")


class Runtime:
    """The long-lived parts shared by every Pipeline a process runs."""

    def __init__(self, book: CheckpointBook, sinks: FanOut, metrics: Metrics | None = None) -> None:
        self.book = book
        self.sinks = sinks
        self.metrics = metrics or Metrics()
        self.stats = Stats(self.metrics)  # for /metrics, summed over workers (proxy/metrics.py)
        self.flagged = flow_memo()  # unapproved flows already logged: one WARNING per flow, not per call
        # whether the lineage store (or its journal) takes edges now: the server wires the aggregator's
        self.recording: Callable[[], bool] = _always
        self.stored = StoredReplies()
        self.sequences = StoredReplies()  # the labels of OIP sequences' requests so far, by `Request.sequence`


STORED_BYTES: Final = 64 * 1024 * 1024
# the callers' Authorization fields kept with their digests (`Pipeline._digest_of`): a key written in more ways than
# that (its scheme's case, the spaces before it) is hashed again, and no field longer than a key is kept
CALLERS_KEYS_MAX: Final = 256
CALLER_KEY_MAX_CHARS: Final = 1024


def _size(response_id: str, labels: frozenset[str]) -> int:
    """What keeping a stored reply's labels costs, about: its id's and labels' characters, and 100 a label and 200
    an entry besides."""
    size = 200 + len(response_id)
    for label in labels:
        size += 100 + len(label)
    return size


class StoredReplies:
    """The labels of the replies upstreams stored (the Responses API's `store`), by response id. A later
    call that builds on one (`previous_response_id`) carries them: the upstream puts that conversation
    before its input. Per process and bounded: an id not here (answered by another worker, before a
    restart, or long ago) is content the proxy cannot read, labelled `scan:truncated`. At most `most` replies
    and `most_bytes` of their ids and labels (`_size`: 64 labels of 128 characters a reply would otherwise
    have kept ~1 GB), the oldest forgotten first."""

    def __init__(self, most: int = 65_536, most_bytes: int = STORED_BYTES) -> None:
        self.most = most
        self.most_bytes = most_bytes
        # an OrderedDict: a dict's first key after many deletions at the front is found by a scan
        self._labels: collections.OrderedDict[str, frozenset[str]] = collections.OrderedDict()
        self._bytes = 0  # `_size` of what is kept

    def remember(self, response_id: str, labels: frozenset[str]) -> None:
        known = self._labels
        before = known.get(response_id)
        if before is not None:
            self._bytes -= _size(response_id, before)
        known[response_id] = labels
        known.move_to_end(response_id)
        self._bytes += _size(response_id, labels)
        while len(known) > self.most or self._bytes > self.most_bytes:
            gone, its = known.popitem(last=False)
            self._bytes -= _size(gone, its)

    def labels(self, response_id: str) -> frozenset[str] | None:
        return self._labels.get(response_id)


def known_labels(config: Config) -> KnownLabels | None:
    """What `policy.known_labels` lets a call send (None: any label): the labels the config names (zones',
    callers', the detectors' `pii:` labels, built-in ones too, and `scan:truncated`) and the list's."""
    listed = config.policy.known_labels
    if listed is None:
        return None
    exact = {TRUNCATED, *(f"pii:{name}" for name in BUILTIN_DETECTORS), *(f"pii:{d.name}" for d in config.detectors)}
    for zone in config.zones:
        exact.update(zone.labels)
    for caller in config.callers:
        exact.update(caller.labels)
    exact.update(item for item in listed if is_label(item))
    return KnownLabels(frozenset(exact), tuple(item for item in listed if not is_label(item)))


def known_purposes(config: Config) -> KnownLabels | None:
    """What `policy.known_purposes` lets a call's `x-purpose` name (None: any purpose): the purposes the config names
    (zones', callers', routes', the defaults) and the list's."""
    listed = config.policy.known_purposes
    if listed is None:
        return None
    exact = {purpose for purpose in (config.policy.default_purpose,) if purpose}
    for zone in config.zones:
        exact.update(zone.allow_purposes)
    for caller in config.callers:
        exact.update(caller.purposes or ())
        if caller.default_purpose:
            exact.add(caller.default_purpose)
    for route in config.routes:
        exact.update(route.purposes or ())
    exact.update(item for item in listed if is_label(item))
    return KnownLabels(frozenset(exact), tuple(item for item in listed if not is_label(item)))


def unknown_purpose(purpose: str, source: str = "x-purpose") -> UnknownPurpose:
    """The refusal of a purpose `policy.known_purposes` does not list (not the purposes it does: a caller learns no
    more of the policy than it is told)."""
    return UnknownPurpose(f"{source}: unknown purpose {purpose!r}: this proxy takes only the purposes its config names "
                          f"({KNOWN_PURPOSES})", param=source)  # fmt: skip


def carried_too_many(count: int) -> InvalidRequest:
    """A call that would carry `count` labels, past `MAX_CALL_LABELS`, with what it builds on: refused, never forwarded
    (what a sequence, conversation or stream holds only grows: the caller starts a new one)."""
    return InvalidRequest(f"this call would carry {count} labels with what it builds on (its sequence's or stream's "
                          f"earlier requests, the stored reply it goes on from): more than {MAX_CALL_LABELS}; start a "
                          "new sequence, conversation or stream")  # fmt: skip


# the protocols whose servers hand their model a call's header fields with its request (MLServer, KServe's model
# server; Triton those a forward pattern names): the ingresses read them (`beside`), the pipeline those sent or not
# as the call decides (`Pipeline._passed_on`)
# decisions a route's purposes may still refuse where its weights serve the call by another name (`Pipeline._held`)
_HELD_ACTIONS: Final = frozenset({ALLOW, REROUTE})
_NOT_HELD: Final[dict[str, tuple[tuple[str, frozenset[str]], ...]]] = {}
_FIELDS_TO_MODEL: Final = frozenset({"oip", "oip-grpc", "kserve"})


def _headers_handed(config: Config) -> frozenset[str] | None:
    """The upstreams (by name) whose server hands its model a call's header fields (all, or those a pattern names),
    where one does not (a Triton without a header forward pattern: `Upstream.headers_to_model`); None where every one
    does (the default: a call's fields are read with no look-up), or a zone may reroute calls to one that does (the
    fields are read before the decision says where the call goes)."""
    if all(upstream.headers_to_model is not False for upstream in config.upstreams):
        return None
    return _reached(config, _handing(config))


def _fields_named(config: Config) -> dict[str, re.Pattern[str]]:
    """The upstreams (by name) whose server hands its model only the fields a pattern names (a Triton's forward
    pattern: `Upstream.fields_named`), the only ones read on a call routed to one; none where a zone may reroute calls
    to an upstream whose model is handed fields (any call may reach it: every field is read, as `_headers_handed`)."""
    named = {u.name: u.fields_named for u in config.upstreams if u.fields_named is not None}
    return named if named and _reached(config, _handing(config)) is not None else {}


def _handing(config: Config) -> frozenset[str]:
    """The upstreams (by name) whose server may hand its model a call's header fields: not one that says it hands
    none (`headers_to_model: false`), nor an OpenAI server that hands none (vLLM, llama.cpp: `Upstream.fields_to_model`
    false), so a zone that may reroute calls to one has no call's fields read for it (they were, and a call to a Triton
    without a forward pattern was refused for an address in `X-Note` that no model it could reach is handed)."""
    return frozenset(u.name for u in config.upstreams
                     if u.headers_to_model is not False and (u.protocol != "openai" or u.fields_to_model))  # fmt: skip


def _reached(config: Config, names: frozenset[str]) -> frozenset[str] | None:
    """The upstreams `names`, which a call's route may send it to; None where a zone may reroute calls to one of them:
    then any call may reach one (what it carries is read before the decision says where it goes)."""
    return None if any(zone.reroute_to in names for zone in config.zones) else names


def _kserve_openai(upstream: Upstream) -> bool:
    """Whether OpenAI calls sent to `upstream` reach KServe's OpenAI data plane: a `protocol: kserve` upstream, or an
    `openai` one whose model is handed the fields (`Upstream.fields_to_model`: its url ends in KServe's prefix and its
    `headers_to_model` is not false, or it says `headers_to_model: true`, a gateway in front of that data plane)."""
    return upstream.protocol == "kserve" or (upstream.protocol == "openai" and upstream.fields_to_model)


def _advised(model: str, called: str, param: str, caller: str | None) -> str:
    """How a request names `model` in an advisor tool (`advisor_models`' `param` and `caller`), as a refusal says it:
    the model calling it, the call's own (`called`) or a fallback object's that holds the tool, and the body's key
    holding it where that is not the body's own `tools` (until 2026-12-07 one in a fallback object was said to be
    called by the call's own model, "which model 'claude-asked' calls": helper models17)."""
    where = "" if param == "tools" else f" in {quoted_name(param)}"
    if caller is None:
        return (f"names model {quoted_name(model)} in an advisor tool{where}, which model {quoted_name(called)} calls "
                "with the conversation")  # fmt: skip
    by = f"model {quoted_name(caller)}" if caller else "its model"
    return (f"names model {quoted_name(model)} in an advisor tool of a fallback object{where}, which {by} calls with "
            f"the conversation should model {quoted_name(called)} decline or fail")  # fmt: skip


class Pipeline:
    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.policy = Policy.compile(config)
        # what is kept of a reply passed on as it arrives: at least WHOLE_MAX, and as much as is buffered
        keep = max(WHOLE_MAX, config.limits.buffer_max_bytes)
        # read a call (`HttpIngress._forward`) as a native attribute, not through the config's dataclasses
        self.buffer_max_bytes = config.limits.buffer_max_bytes
        self.detectors = Detectors(config.detectors, config.limits.scan_max_chars, keep)
        # whether any detector is configured, as each call's reading asks (`_detected`): a native attribute, not
        # `Detectors.__bool__`, a call (6 instructions interpreted; the 3 a labelled GET's findings handed to the call
        # cost every call, `call(found=...)`, are paid for by it)
        self.scans = bool(self.detectors)
        # the custom patterns alone, read farther where parts meet on a limit of their own (`_detected`), never below
        # the scan limit: a call the scan reads whole is read whole there too; None without one
        customs = [spec for spec in config.detectors if spec.pattern is not None]
        joins = max(CUSTOM_JOINS_MAX_CHARS, config.limits.scan_max_chars)
        self.customs = Detectors(customs, joins) if customs else None
        self.capture = config.telemetry.capture_content
        self.client_address = config.logging.client_address  # the ingress hands each call its client (`Outcome.client`)
        self.sample_ratio = config.telemetry.sample_ratio if config.telemetry.exporter != "none" else 0.0
        # the proxy authenticates callers itself: their key is never passed on to an upstream
        self.strips_auth = bool(self.policy.callers_by_key)
        self.require_record = frozenset(zone.name for zone in config.zones if zone.require_record)
        self.known = known_labels(config)
        self.known_purposes = known_purposes(config)
        # what the detectors found in a request's `beside` text (an OIP request's header fields), by the text: a client
        # sends the same fields on each of its calls (a User-Agent, an Accept), which are then not read again
        self.beside_found = Memo(BESIDE_KEPT, BESIDE_BYTES_KEPT)
        self.headers_handed = _headers_handed(config)
        self.fields_named = _fields_named(config)
        # every field of a call is read, wherever it goes (most configs: no look-up)
        self.reads_all_fields = self.headers_handed is None and not self.fields_named
        # the `protocol: kserve` upstreams, and the `openai` ones at KServe's OpenAI prefix (or said to be): KServe's OpenAI
        # data plane hands its model an OpenAI call's header fields too (`OpenAIDataPlane.create_chat_completion`:
        # `context = {"headers": dict(headers)}`), so an OpenAI call that may be sent to one has them read as a V1
        # call's are (`_to_kserve`; none: not read, no look-up)
        kserve = frozenset(upstream.name for upstream in config.upstreams if _kserve_openai(upstream))
        self.kserve_openai = bool(kserve)
        self.kserve_reached = _reached(config, kserve)
        # the Authorization fields that name this config's callers, with their keys' digests (`_digest_of`): held in
        # memory while this config is in force, never written anywhere
        self.callers_keys: dict[str, str] = {}
        self.retired = False  # a reload put another config in force (`retire`): no key is kept any more

    def trace(self, header: Header) -> TraceContext:
        return trace_context(header("traceparent"), header("tracestate"), self.sample_ratio)

    def key_digest(self, header: Header, x_api_key: bool = False, memo: KeyMemo | None = None) -> str | None:
        """The SHA-256 of the caller's key (`Authorization: Bearer <key>`; with `x_api_key`, on the Anthropic
        API's paths, also `x-api-key`, where its clients send it: `anthropic.x_api_key_path`), None without one.
        Of the bytes sent, whatever they are: a key that is not UTF-8 is a key no caller owns, not a fault.
        `memo`: the connection's (`KeyMemo`): a key sent as on its call before is not hashed again; nor is a caller's
        key sent before on any connection (`_digest_of`)."""
        if not self.strips_auth:
            return None  # no caller has a key: the headers are the upstream's business, passed on as they are
        auth = header("authorization")
        if x_api_key:
            auth = _with_x_api_key(auth, header("x-api-key"))
        if not auth:
            return None
        if memo is not None:
            if auth == memo.auth:
                return memo.digest
            digest = self._digest_of(auth)
            memo.auth, memo.digest = auth, digest  # (after the digest: a malformed key is not kept)
            return digest
        return self._digest_of(auth)

    def _digest_of(self, auth: str) -> str:
        """`_key_digest(auth)`, hashed once a config for a key one of its callers owns (`callers_keys`): a client opens
        a connection for each stream or call, where the SHA-256 took 12-17 µs of the request's admission after an idle
        spell (cold caches; 1-2 µs hot) and a dict look-up a fraction of that. Only a key whose digest a caller has is
        kept (a key no caller owns is hashed each time and held by nothing: an unknown client cannot fill this), at
        most `CALLERS_KEYS_MAX` fields of at most `CALLER_KEY_MAX_CHARS`, and for no longer than the config that names
        its caller is in force (a reload makes a new Pipeline, and `retire`s this one). A key is compared with one kept
        only once their hashes (str's SipHash, keyed at random by each process) match; the digest is matched as before
        (`Policy.caller`)."""
        known = self.callers_keys
        digest = known.get(auth)
        if digest is None:
            digest = self._key_digest(auth)
            if digest in self.policy.callers_by_key and len(auth) <= CALLER_KEY_MAX_CHARS and not self.retired:
                if len(known) >= CALLERS_KEYS_MAX:  # (the fields of a known key written many ways: begun again)
                    known.clear()
                known[auth] = digest
        return digest

    def retire(self) -> None:
        """A reload put another config in force: the callers' keys this one kept are let go now, and no more are kept
        (a call it decided holds it till that call ends, a stream's for as long as it runs; a caller the reload removed
        had its key held so, the review's find, helper revadmit)."""
        self.retired = True
        self.callers_keys.clear()

    @staticmethod
    def _key_digest(auth: str) -> str:
        """The digest of a key sent as `Bearer <key>`; else an InvalidRequest whose `param` is in `_KEY_FIELDS`."""
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise InvalidRequest("Authorization must be 'Bearer <key>'", param="authorization")
        # header values are decoded with surrogateescape: encoded back so, the key is hashed as the bytes sent
        digest = SHA256.copy()
        digest.update(key.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def check_purpose(
        self, header: Header, peer: tuple[str, ...] = (), x_api_key: bool = False, memo: KeyMemo | None = None
    ) -> None:
        """Refuse a call whose `x-purpose` `policy.known_purposes` does not list (UnknownPurpose, 400), before its
        request is read: recorded under UNKNOWN_PURPOSE (`Exchange.finish`), so a caller naming a new purpose on every
        call makes one flow of them, not a lineage store row each. A key no caller owns (or none, where anonymous
        calls are denied) is refused as such first (401): an unknown client learns nothing of the purposes. An
        `x-purpose` that is no purpose, or names several, is left to `call` to refuse as such. `memo`: the
        connection's (`key_digest`); the refusal names the caller the key says (its record), not looked up again."""
        known = self.known_purposes
        if known is None:
            return
        given = header("x-purpose")
        if given is None or "," in given:
            return
        purpose = given_label(given)
        if purpose is None or known.knows(purpose):
            return
        refused = unknown_purpose(purpose)
        refused.caller = self.identify_only(header, peer, x_api_key, memo)
        raise refused

    def call(
        self,
        request: Request,
        protocol: ProtocolName,
        header: Header,
        trace: TraceContext,
        peer: tuple[str, ...] = (),
        x_api_key: bool = False,
        recorded: bool = True,
        memo: KeyMemo | None = None,
        fields: Callable[[], str | None] | None = None,
        body_fields: Callable[[], tuple[str | None, bool]] | None = None,
        found: frozenset[str] = _NONE,
        keyed: bool = True,
    ) -> Call:
        """Build the Call from what the adapter read plus the headers; bad labels or purpose: 400.
        `recorded` False: what only the record needs (the input's digest, its captured content) is left to
        `record_fields`, for after the request is forwarded (`Exchange.forwarded`). `memo`: the connection's
        key digest (`key_digest`). `fields`: what builds the text of the header fields the server hands the model beside
        the body (an OIP request's, `oip.header_text`), read on its own for labels (`_detected`), never captured nor
        digested: any header may hold a credential (`X-Auth-Token`, `api-key`, ...), and a digest is of the content, so
        the same tensors sent with another `User-Agent` or token have one digest. Called only where the model is handed
        them (`_fields_read`): a call routed to vLLM, or to an upstream with `headers_to_model: false`, has no text
        built. `body_fields`: what builds the text of an OpenAI call's body fields that only KServe's OpenAI data plane
        hands its model, and whether it is all of them (`kserve.openai_fields`), read as `fields` is but apart from the
        header fields (`_detected`). `found`: what the detectors found in the request's texts, when its caller read them
        already and found something (a labelled GET's, `Exchange.query_read`), taken for its reading (`_detected`),
        which read them again (helper records, 2026-12-05); empty: read here. `keyed` False: no key digest (a stream's
        later message, whose metadata is the stream's, keyed by its first: `Exchange.readmit`)."""
        purpose = header("x-purpose")
        if purpose is not None:
            if "," in purpose:  # a repeated header line arrives joined: never "last one wins"
                raise InvalidRequest(
                    "x-purpose: one purpose per call (the header was sent more than once, or lists several)",
                    param="x-purpose",
                )
            given, purpose = purpose, given_label(purpose)
            if purpose is None:
                raise InvalidRequest(
                    f"x-purpose: invalid purpose {echoed(given.strip())}{PURPOSE_GRAMMAR}", param="x-purpose"
                )
        labels = parse_labels(header("x-data-labels"))
        known = self.known
        if known is not None and labels:
            known.check(labels, source="x-data-labels")
        if request.labels:
            parameter = check_labels(request.labels, source="parameters.data_labels")
            if known is not None:
                known.check(parameter, source="parameters.data_labels")
            labels = labels | parameter
            if len(labels) > 64:
                raise InvalidRequest("more than 64 labels in x-data-labels and data_labels together")
        if request.builds_on is not None:  # what the stored conversation carried, or unread
            inherited = self.runtime.stored.labels(request.builds_on)
            if inherited is None:
                request, labels = self._unseen(request, labels)
            else:
                labels = labels | inherited
        if request.sequence is not None and not request.starts:  # what the model kept of the sequence, or unread
            carried = self.runtime.sequences.labels(request.sequence)
            if carried is None:
                request, labels = self._unseen(request, labels)
            else:
                labels = labels | carried
        if len(labels) > MAX_CALL_LABELS:
            raise carried_too_many(len(labels))
        beside = self._fields_read(request, protocol, header, trace, fields)
        handed: str | None = None  # (built only where the call may reach KServe's OpenAI data plane)
        if body_fields is not None and self._reaches_kserve_openai(request, protocol):
            handed, whole = body_fields()
            if not whole:  # some not read: `scan:truncated`, as the request's own texts past their limit
                request = dataclasses.replace(request, unscanned=True)
        content = self._content(request) if recorded and self.capture and trace.sampled else ()
        return Call(
            protocol=protocol,
            operation=request.operation,
            model=request.model,
            trace=trace,
            key_sha256=self.key_digest(header, x_api_key, memo) if keyed else None,
            purpose=purpose or None,
            labels=labels,
            detected=found or self._detected(request, beside, handed),
            input_digest=(request.digest or text_digest(request.texts)) if recorded else request.digest,
            params=request.params,
            stream=request.stream,
            model_version=request.version,
            content=content,
            opaque=request.opaque,
            unrouted=request.unrouted,
            peer=peer,
            content_chars=_content_chars(request.texts) if content else 0,
            runs_no_weights=request.runs_no_weights,
        )

    def _unseen(self, request: Request, labels: frozenset[str]) -> tuple[Request, frozenset[str]]:
        """A call going on with content this process did not see (a stored reply, a sequence's start): what that
        content held is unread, `scan:truncated`. Found by the detectors' reading as other unread content is; with
        no detectors (which then say nothing of what they did not read) a label of the call itself: the labels
        it carries are unknown, not absent."""
        if self.detectors:
            return dataclasses.replace(request, unscanned=True), labels
        return request, labels | _TRUNCATED

    def carry(self, sequence: str, labels: frozenset[str], starts: bool = False) -> None:
        """Keep `labels` as what OIP sequence `sequence` holds from now on: with what it held before, unless
        this request starts it anew (the model's state is reset)."""
        known = self.runtime.sequences
        before = None if starts else known.labels(sequence)
        known.remember(sequence, labels | before if before else labels)

    def record_fields(self, call: Call, request: Request) -> None:
        """What `call(recorded=False)` left out: the input's digest and captured content, set on `call` (made
        by that `call` and not yet recorded, so no one else holds it), as `call` would have."""
        if not call.input_digest:
            object.__setattr__(call, "input_digest", text_digest(request.texts))
        if self.capture and call.trace.sampled:
            object.__setattr__(call, "content", self._content(request))
            object.__setattr__(call, "content_chars", _content_chars(request.texts))

    def _content(self, request: Request) -> tuple[str, ...]:
        """The input text as captured (`telemetry.capture_content`), masked. A value split across content
        parts is in no part to mask: such a call's content is withheld rather than captured half-masked; so is one written
        with JSON escapes or as a tool call's argument number the server prints otherwise, or in an OIP element that is
        not UTF-8 read in another charset (`Request.decoded`, `oip.not_utf8_element`)."""
        masked = self.detectors.mask_texts(request.texts)
        if request.joined:
            runs = _captured_runs(self.detectors, request, masked)
            if runs is None:
                return (_UNCHECKED_PARTS,)
            # a custom pattern's value may be longer than a window reads where parts meet (a PEM key, its lines
            # apart): the runs are read joined whole, as captured (within the bound, so is this); when that reading
            # ran past the scan limit, where the parts meet is read too, as without one (a split address past it)
            if self.detectors.patterns:
                split = self.detectors.scan_all(_joined_within(runs, self.detectors.max_chars))
                if TRUNCATED in split:
                    before: list[int] = []
                    if self.customs is None:
                        split = split | self.detectors.scan_windows(boundary_windows(runs, before=before), before)
                    else:  # and farther for custom patterns, as `_detected` reads there
                        windows, farther = both_boundary_windows(runs, before)
                        split = split | self.detectors.scan_windows(windows, before)
                        split = split | self.customs.scan_all(farther)
            else:
                before = []
                split = self.detectors.scan_windows(boundary_windows(runs, before=before), before)
            if split - _TRUNCATED:
                return ("[withheld: a detected value is split across content parts]",)
        if request.decoded and self.detectors.scan_all(request.decoded) - _TRUNCATED:
            numbers = tuple(text for text in request.decoded if _PRINTED_NUMBER.fullmatch(text))
            printed = bool(numbers) and bool(self.detectors.scan_all(numbers) - _TRUNCATED)  # (`reprinted_numbers`)
            if any(_REPLACED in text for text in request.texts):  # an element not UTF-8, read in another charset too?
                escaped = [json_unescaped(text) for text in request.texts if "\\u" in text]
                # (withheld where a value stands in another charset's reading alone: one the texts hold too is masked in
                # them). Those readings are what is decoded but the escapes' and the numbers': a chat message holding
                # U+FFFD itself and a value written with escapes alone was withheld as read in another charset (until
                # 2026-12-05), the wrong cause
                apart = set(escaped).union(numbers)
                readings = [text for text in request.decoded if text not in apart]
                if readings and self.detectors.stands_apart(readings, request.texts):
                    return (_WITHHELD_CHARSET,)
                # but not a value written with JSON escapes or as a number printed otherwise, which no captured text
                # shows to mask: `stands_apart` took it for the same value another text holds plain (568f274 captured
                # `bob\u0040example.org` beside `[pii:email]` so, until 2026-12-05)
                if not printed and not (escaped and self.detectors.scan_all(escaped) - _TRUNCATED):
                    return masked
            if printed:
                return ("[withheld: a detected value is written as a number the server prints otherwise]",)
            return ("[withheld: a detected value is written with JSON escapes]",)
        if type(request) is QueryRequest:  # (a GET's path read with ids: shown as sent)
            return request.as_sent(masked)
        return masked

    def _detected(self, request: Request, beside: str | None = None, handed: str | None = None) -> frozenset[str]:
        """What the detectors find in the request's content. Its readings (the texts, where parts meet, the
        texts with escapes decoded, the names beside them) share one limit, `limits.scan_max_chars`: the request's, not
        each's. `beside`: what the server hands the model beside the body (`_beside_labels`), read on its own; `handed`:
        the body's fields only KServe's OpenAI data plane hands it (`kserve.openai_fields`), read on their own, as any
        text (never as header fields: a value holding a line `cookie: ts=1512555012` is not a cookie)."""
        if not self.scans:
            return _NONE  # nothing is scanned, so nothing is said about what was not
        names = request.names
        if not request.joined and not request.decoded:  # one reading (most calls)
            if names and not request.texts:  # the names alone (a numeric ModelInfer's `INPUT0`, on every call)
                found = self._names_detected(names)
            else:  # an OIP call's names after its texts, a line apart, as the texts are from each other
                texts = request.texts + names if names else request.texts
                found = self.detectors.scan_all(texts) if texts else _NONE
        else:
            reading = self.detectors.reading()
            found = reading.scan_all(request.texts) if request.texts else _NONE
            if request.joined:  # where parts meet, read as joined (never more text than the parts themselves)
                before: list[int] = []
                if self.customs is None:
                    found = found | reading.scan_windows(boundary_windows(request.joined, before=before), before)
                else:  # a custom pattern's value may be longer, white space in it: read farther, on a limit of its own
                    windows, farther = both_boundary_windows(request.joined, before)
                    found = found | reading.scan_windows(windows, before)
                    found = found | self.customs.reading().scan_all(farther)
            if request.decoded:
                found = found | reading.scan_all(request.decoded)
            if names:
                found = found | reading.scan_all(names)
        if beside is not None:
            found = found | self._beside_labels(beside)
        if handed is not None:
            found = found | self.detectors.scan_all((handed,))  # (read to its end as a text: `_read_whole`)
        return found | _TRUNCATED if request.unscanned else found

    def _names_detected(self, names: tuple[str, ...]) -> frozenset[str]:
        """What the detectors find in a request's names when they are all it holds to read: nothing, without reading
        them, where they found nothing in the same text before (`Detectors.finds_nothing`); only then, never beside
        texts, which a pattern may span with them."""
        joined = names[0] if len(names) == 1 else "\n".join(names)  # (what `scan_all` reads)
        return _NONE if self.detectors.finds_nothing(joined) else self.detectors.scan_all(names)

    def _passed_on(
        self, request: Request, protocol: str, header: Header, trace: TraceContext, beside: str | None
    ) -> str | None:
        """`beside` (the header fields the ingress read) with the two the upstream is sent as they came, or not, as the
        call decides, which an OIP or KServe server hands its model too: the `tracestate` forwarded with the trace, and
        the caller's `Authorization` (and its binary twin, `authorization-bin`: gRPC's, decoded, or an HTTP field so
        named, which `passed_key_text` reads as the model is handed each) where no caller has a key and its route's
        upstream none of its own (a call a zone reroutes is sent neither, and is read all the same: read before the
        decision)."""
        if trace.tracestate is not None:
            beside = tracestate_text(beside, trace.tracestate)
        if not self.strips_auth:
            authorization = header("authorization")
            binary = header(KEY_BIN)
            if authorization is not None or binary is not None:
                routed = self.policy.route(request.model)
                if routed is None or not routed[1].api_key:
                    field = protocol != "oip-grpc"  # (an HTTP field: handed decoded as Latin-1; gRPC: its bytes)
                    if authorization is not None:
                        beside = passed_key_text(beside, authorization, "authorization", field)
                    if binary is not None:
                        beside = passed_key_text(beside, binary, KEY_BIN, field)
        return beside

    def _to_kserve(self, request: Request) -> bool:
        """Whether an OpenAI call may reach KServe's OpenAI data plane, which hands its model the call's header fields:
        its route's upstream is a `protocol: kserve` one, or a zone may reroute calls to one (`kserve_reached`)."""
        reached = self.kserve_reached
        if reached is None:
            return True
        routed = self.policy.route(request.model)
        return routed is not None and routed[1].name in reached

    def _reaches_kserve_openai(self, request: Request, protocol: str) -> bool:
        """Whether an OpenAI call may reach KServe's OpenAI data plane (`_to_kserve`), whose model is handed its header
        fields and its request object whole."""
        return self.kserve_openai and protocol == "openai" and self._to_kserve(request)

    def _fields_read(
        self,
        request: Request,
        protocol: str,
        header: Header,
        trace: TraceContext,
        fields: Callable[[], str | None] | None,
    ) -> str | None:
        """The header fields a call's model is handed beside its body, as the detectors read them (`beside`): an OIP or
        KServe call's, an OpenAI call's that may reach KServe's OpenAI data plane (`_to_kserve`), with the two sent as
        the call decides (`_passed_on`; not on a passthrough call), then only those a forward pattern names
        (`fields_named`). Built (`fields`: the ingress's builder, None for none) only where read: not where the
        route's upstream hands its model none (`headers_handed`: a Triton without a forward pattern, `headers_to_model:
        false`)."""
        if protocol in _FIELDS_TO_MODEL:
            passed_on = request.operation != "passthrough"
        elif self._reaches_kserve_openai(request, protocol):
            passed_on = True
        else:
            return None
        if self.reads_all_fields:  # (most configs)
            beside = fields() if fields is not None else None
            return self._passed_on(request, protocol, header, trace, beside) if passed_on else beside
        named: re.Pattern[str] | None = None
        routed = self.policy.route(request.model)
        if routed is not None:
            name = routed[1].name
            handed = self.headers_handed
            if handed is not None and name not in handed:
                return None  # (not built)
            named = self.fields_named.get(name)
        beside = fields() if fields is not None else None
        if passed_on:
            beside = self._passed_on(request, protocol, header, trace, beside)
        return beside if named is None or beside is None else named_fields(beside, named)

    def _beside_labels(self, beside: str) -> frozenset[str]:
        """What the detectors find in `beside` (an OIP request's header fields, which MLServer hands the model apart
        from the body, not among its texts), read on its own; what was found in the same text before is not read
        again (`beside_found`: a client sends the same fields on each call)."""
        kept = self.beside_found.kept.get(beside)
        if kept is None:
            kept = header_labels(self.detectors, beside)
            self.beside_found.keep(beside, kept, len(beside) + _BESIDE_ENTRY)
        return kept  # type: ignore[return-value]  # (a frozenset, as kept above)

    def decide(self, call: Call) -> Decision:
        decision = decide(call, self.policy, self._served)
        if self.runtime.book.held and decision.action in _HELD_ACTIONS:
            decision = self._held(call, decision)
        if self.require_record and decision.forwards:
            decision = self._unrecorded(call, decision)
        if decision.approved is False:
            self._unapproved(call, decision)
        return decision

    def judged_for_others(
        self,
        call: Call,
        decision: Decision,
        others: tuple[str | None, ...],
        batch: tuple[str, ...] = (),
        advisors: Mapping[str | None, tuple[str, str | None]] = NO_ADVISORS,
        asked: str = "",
    ) -> Decision:
        """`decision`, of a call whose request names other models that may serve it should its own decline or fail (a
        fallback: `OthersNamed`), held to what a call naming each of them gets (`decide`, and the routes' weights a
        server runs it on: `_held`): where one would be refused, this call is, with that refusal's code and rule (a
        route's names the model: `route:<model>`) and a reason naming the model; in audit mode it goes on as
        audit-deny, as every refusal. A model the server picks (None: Anthropic's `"default"`, OpenRouter's `route:
        "fallback"`) may be any: every route's model is judged, and one no route names (`"*"`: the `"*"` route's call,
        or `model_not_found` where there is none). A call refused already stays as it was. Until 2026-12-07 only the
        model a call named in `model` was judged: an `ads` call to a model its route allows, naming one whose route
        forbids it as its fallback, was forwarded and served by that one (helper fallback13). `batch`: those of `others`
        the call's `model` names separated by commas, which LiteLLM proxy runs the call on each of (a batch), named so
        in the reason (until 2026-12-07 the whole string was judged as one name, the `"*"` route's; helper commas13).
        `advisors`: those an advisor tool names (`advisor_models`), which read the conversation, named so too. `asked`: the
        one of `others` its body's `model` names where its path names the call's (`openai.InPathAdapter`), named so."""
        if decision.action == DENY or decision.action == AUDIT_DENY:
            return decision
        models: dict[str, str | None] = {}  # model -> the name the request gave it (None: one the server picks)
        for name in others:
            if name is not None:  # (as named, where a fallback naming none put it first: until review revmodels17 an
                models[name] = name  # advisor's model beside a map's object naming none read "lets the server pick")
            else:
                for model in (*self.policy.routes, "*"):
                    models.setdefault(model, None)
        for model, named in models.items():
            if model == call.model:
                continue
            # a model no route names, the server's pick, may be any it serves: judged as a call naming no model (the
            # `"*"` route's, whose checkpoint only its reply names), not as one naming `*`, a name no server lists
            # (until 2026-12-07 refused under `on_unapproved: block` 404 "call the model by a name the metadata
            # lists": helper paths15)
            picked = model == "*" and named is None
            as_called = dataclasses.replace(call, model="" if picked else model)
            other = decide(as_called, self.policy, self._served)
            if self.runtime.book.held and other.action in _HELD_ACTIONS:
                other = self._held(as_called, other)
            if picked and other.forwards:
                other = self._picked(as_called, other)
            if other.action != DENY and other.action != AUDIT_DENY:
                if other.approved is False and decision.approved is not False:
                    # its flow the baseline does not approve (`on_unapproved: warn`): flagged as the call's own would
                    # be, the call counted once, the flow logged with the checkpoint it reaches; the call's
                    # `lineage.approved` false (until 2026-12-07 not flagged: helper paths15)
                    self._unapproved(as_called, other)
                    decision = dataclasses.replace(decision, approved=False)
                continue
            assert other.code is not None
            if model == asked:
                how = (f"names model {quoted_name(model)} in its body's 'model', its path naming model "
                       f"{quoted_name(call.model)}, which LiteLLM proxy and Azure OpenAI run (a server reading the "
                       "body's runs the other)")  # fmt: skip
            elif model in batch:
                how = (f"names model {quoted_name(model)} in its model {quoted_name(call.model)}, models separated by "
                       "commas, which a gateway (LiteLLM proxy) runs the call on each of as a batch")  # fmt: skip
            elif named is not None and model in advisors:
                how = _advised(model, call.model, *advisors[model])
            elif named is not None:
                how = (f"names model {quoted_name(model)} to serve it should model {quoted_name(call.model)} decline "
                       "or fail (a fallback)")  # fmt: skip
            else:
                how = (f"lets the server pick a model to serve it should model {quoted_name(call.model)} decline or "
                       "fail (a fallback: fallbacks \"default\", or route \"fallback\"), which may be any routed model "
                       "or one no route names ('*')")  # fmt: skip
            whom = "a model no route names (the '*' route's call)" if picked else f"a call naming {quoted_name(model)}"
            reason = f"the request {how}, and {whom} is refused: {other.reason or other.code}"
            refused = refuse(decision, self.policy, other.code, other.rule or "routes", bounded_text(reason))
            return self._judged(call, decision, refused)
        return decision

    def _picked(self, call: Call, decision: Decision) -> Decision:
        """`decision`, forwarded, of a call naming no model that stands for the model a server picks, one no route names
        (`judged_for_others`): its flow approved only where the baseline approves it whatever checkpoint it reaches, as
        the server may pick any it serves and none is known before its reply (a call naming no model is let through for
        any approved one: its server runs one); under `lineage.on_unapproved: block` refused 403 `flow_not_approved`,
        under `warn` not approved (flagged, as `block` would refuse it: until review revpaths15 it went unflagged).
        Unless that checkpoint is known before the reply whatever model is picked (`upstreams[].checkpoint` pinned, or
        metadata naming what serves any name, TGI's): then the verdict on that flow, `decision`'s, stands (a pinned
        upstream's pick, approved for its pin, was refused on h-paths15: review revpaths15)."""
        flow = boundary_flow(call, decision, self._served)
        if flow.checkpoint or self.policy.any_checkpoint(flow):
            return decision
        why = ("the server may pick any model it serves, and the checkpoint of one no route names is known only from its "
               "reply, while the approved baseline approves this flow for some checkpoints alone")  # fmt: skip
        if not self.policy.block_unapproved:
            return dataclasses.replace(decision, approved=False, reason=why)
        return refuse(decision, self.policy, "flow_not_approved", "lineage.baseline",
                      f"{why} (lineage.on_unapproved: block): approve it for any checkpoint (a baseline entry without "
                      "checkpoints:), or pin the upstream's checkpoint (upstreams[].checkpoint), or name the models "
                      "that may serve the call")  # fmt: skip

    def judged_again(self, call: Call, decision: Decision, before: Decision) -> Decision:
        """`decision`, a forwarded call's `before` that the proxy then refused itself (`Exchange._refused`), approved
        or not as the flow it is recorded as: the baseline's verdict on that denial, not on the flow it was decided
        as. Counted and logged as `decide` does an unapproved flow, unless `before` was already (one call, once)."""
        if self.policy.baseline is None or not call.carries_data:
            return decision
        flow = boundary_flow(call, decision, self._served)
        decision = dataclasses.replace(decision, approved=self.policy.unapproved(flow) is None)
        if decision.approved is False and before.approved is not False:
            self._unapproved(call, decision)
        return decision

    def _held(self, call: Call, decision: Decision) -> Decision:
        """A call going through is held to the purposes of every route whose model the weights serving it serve (the
        checkpoint book's `held`, made when metadata is read): a name the upstream serves with a route's weights
        (Ollama's `llama3:latest` for `llama3`, another of vLLM's served model names, any name a one-model server
        answers) reaches those weights for the route's purposes only, whichever route it matched. Applied after the
        pure `decide`, as the weights are what the upstream's metadata says, runtime state no policy input carries;
        in audit mode it goes through as audit-deny, like every other refusal."""
        upstream = decision.upstream
        assert upstream is not None
        book = self.runtime.book
        if upstream.name not in book.held:  # no limited route's weights on its server
            return decision
        # (a LoRA adapter's load or unload, `runs_no_weights`, names no version: held as a call for its adapter is)
        found = book.resolve(upstream, call.model, call.model_version, learn=False)
        if found is None or found.source != UPSTREAM:  # (a pin: see `CheckpointBook._hold`)
            if found is not None:
                return decision
            # a name not read yet, or one a vLLM may load on a route's base (`CheckpointBook.loading`)
            unheld = book.unheld.get(upstream.name)
            if unheld is not None:
                return self._unheld(call, decision, unheld)
            loading = book.loading.get(upstream.name)
            if loading is not None:
                return self._unheld(call, decision, loading, loading=True)
            return decision
        purpose = decision.purpose
        # read after `resolve`, which makes `held` anew when another worker changed what the server serves
        served = book.held.get(upstream.name, _NOT_HELD)
        routes = served.get(found.name)
        how = "is served by"
        weights = found.name  # the weights of the routes' model it runs on, as the refusal names them
        if routes is None and call.model_version is not None:
            # its own LoRA adapters (a llama.cpp `lora`, TGI's `adapter_id`) on the base its name runs on: other
            # weights no route names, made of those its name runs on without them, held to their routes' purposes
            plain = book.resolve(upstream, call.model, None, learn=False)
            if plain is not None and (found.parent or found.name) == (plain.parent or plain.name):
                routes = served.get(plain.name)
                weights = plain.name  # (not the call's own: its adapters applied)
                how = "applies its own LoRA adapters to"
        parent = found.parent
        if routes is None and parent is not None:
            # an adapter the metadata lists as a model of its own on a base (vLLM's `parent`: the base's served name),
            # or weights whose base is named (llama.cpp's, TGI's: its checkpoint): held to the routes of that base
            routes = served.get(parent)
            weights = parent
            if routes is None:
                base = book.resolve(upstream, parent, None, learn=False)
                if base is not None and base.source == UPSTREAM and base.name != found.name:
                    routes = served.get(base.name)
                    weights = base.name
            if routes is None:  # a parent named otherwise: a vLLM runs its adapters on its one base all the same
                routes = book.loading.get(upstream.name)
                weights = ""  # (each route's model's, below)
            how = "is a LoRA adapter on"
        for model, purposes in routes or ():
            if purpose not in purposes:
                if not weights:  # the base a vLLM runs its adapters on: the route's model's weights there
                    base = book.resolve(upstream, model, None, learn=False)
                    weights = base.name if base is not None else model
                reason = (f"model {quoted_name(call.model)} {how} the weights of model {quoted_name(model)} "
                          f"({quoted_name(weights)}), which may not be used for purpose {purpose!r} "
                          f"(route allows: {', '.join(sorted(purposes)) or 'none'})")  # fmt: skip
                return self._judged(call, decision, refuse(decision, self.policy, "purpose_denied",
                                                           f"route:{model}", reason))  # fmt: skip
        # a route a reload added whose model what was read does not name: a name read before may be its weights
        unheld = book.unheld.get(upstream.name)
        if unheld is not None:
            return self._unheld(call, decision, unheld)
        return decision

    def _unheld(
        self, call: Call, decision: Decision, unheld: tuple[tuple[str, frozenset[str]], ...], loading: bool = False
    ) -> Decision:  # fmt: skip
        """A call going through to a server where a route limits its model's purposes and the server's metadata has
        not answered yet (`CheckpointBook.unheld`), or a vLLM whose listing does not hold its name (a LoRA adapter it
        may load on the route's base: `CheckpointBook.loading`): the weights its name runs on may be that route's, so
        it is refused as a call whose checkpoint is not known (503 `checkpoint_unknown`, retryable: the metadata is
        asked again at most once a second), whatever `lineage.on_unapproved` says: a route's purposes are enforced, not a baseline's
        verdict. A name such a route names itself is held to that route's purposes already (by `decide`), not to the
        others': it may be their weights too (two limited routes naming one model's two tags), held to every route's
        once known, so it is refused for a purpose another such route forbids as any other name is. A call whose
        purpose every such route allows goes on. A vLLM's (`loading`) whose listing did not hold its name when asked
        about it since (`CheckpointBook.unlisted`: a typo) is refused 404 `model_not_found`, as that vLLM answers a
        name it does not serve, not 503: a retry gets the same answer (before 2026-12-05 a client retried it for
        ever). Never forwarded: a vLLM with a LoRA resolver plugin loads such a name on its base on the first call.
        A load or unload of such a name (`runs_no_weights`: a new adapter's load, which only it lists) is refused 403
        `purpose_denied`: it changes what runs on the route's base, and nothing is waiting to be known (until review
        routes2, 2026-12-05, 503, then 404 once asked about: retried, it never passed). So is a call naming no model
        (a passthrough POST: SGLang's `update_weights_from_disk`, which replaces the base's weights, a load naming no
        adapter, any other): what it runs, if anything, runs on that one base (until helper routes3, 2026-12-05, 503
        "being asked about model ''" for ever: no name is ever asked about)."""
        model = call.model
        purpose = decision.purpose
        for limited, purposes in unheld:
            if purpose not in purposes and model != limited:
                upstream = decision.upstream
                assert upstream is not None
                book = self.runtime.book
                caller = decision.caller or "anonymous"
                allows = ", ".join(sorted(purposes)) or "none"
                if loading and (call.runs_no_weights or not model):  # a LoRA adapter's load or unload; no model
                    base = book.resolve(upstream, limited, None, learn=False)
                    weights = base.name if base is not None else limited
                    if model:
                        reason = (f"a load or unload of LoRA adapter {quoted_name(model)} changes what runs on the "
                                  f"weights of model {quoted_name(limited)} ({quoted_name(weights)}), the base it is "
                                  f"loaded on there, which may not be used for purpose {purpose!r} (route allows: "
                                  f"{allows})")  # fmt: skip
                    else:
                        reason = (f"this call names no model; upstream {upstream.name!r}'s server (a vLLM or SGLang) "
                                  "runs one base, so what it runs or changes (SGLang's update_weights_from_disk "
                                  f"replaces them) is the weights of model {quoted_name(limited)} "
                                  f"({quoted_name(weights)}), which may not be used for purpose {purpose!r} (route "
                                  f"allows: {allows})")  # fmt: skip
                    refused = refuse(decision, self.policy, "purpose_denied", f"route:{limited}", reason)
                    return self._judged(call, decision, refused)
                if loading and book.unlisted(upstream, model, caller):
                    reason = (f"model {quoted_name(model)} is not in upstream {upstream.name!r}'s model list (it was "
                              "asked about, and is asked again at most once a second); the only weights it could run "
                              "on there are those of the base a vLLM or SGLang loads a LoRA adapter on by name (a "
                              f"resolver plugin), model {quoted_name(limited)}, which may not be used for purpose "
                              f"{purpose!r} (route allows: {allows})")  # fmt: skip
                    refused = refuse(decision, self.policy, "model_not_found", f"route:{limited}", reason)
                    return self._judged(call, decision, refused)
                why = book.why_unknown(upstream, model, caller)
                reason = (f"model {quoted_name(model)} may be served by the weights of model {quoted_name(limited)}, "
                          f"which may not be used for purpose {purpose!r} (route allows: {allows}), and which weights "
                          f"serve it is not known yet: {why}; retry shortly")  # fmt: skip
                refused = refuse(decision, self.policy, "checkpoint_unknown", f"route:{limited}", reason)
                return self._judged(call, decision, refused)
        return decision

    def _judged(self, call: Call, decision: Decision, refused: Decision) -> Decision:
        """`refused`, the refusal `decide` made of the call it first decided as `decision`, judged by the baseline as
        the denial it is, as `verify` judges its edge: not as the flow it was decided as (approved or not)."""
        if decision.approved is None:  # (no baseline, or a call carrying no data)
            return refused
        flow = boundary_flow(call, refused, self._served)
        return dataclasses.replace(refused, approved=self.policy.unapproved(flow) is None)

    def _unrecorded(self, call: Call, decision: Decision) -> Decision:
        """A forwarded call of a `require_record` zone is refused while nothing can record it. Applied
        here, after the pure `decide`, because store health is runtime state no policy input carries;
        in audit mode it goes through as audit-deny, like every other refusal. Judged as the denial it is (`_judged`)."""
        zones = [name for name in decision.zones if name in self.require_record]
        if not zones or decision.action == AUDIT_DENY or self.runtime.recording():
            return decision
        reason = (f"zone {zones[0]} requires every call to be recorded, and the lineage store cannot record now "
                  "(its database and journal both refuse writes)")  # fmt: skip
        return self._judged(call, decision, refuse(decision, self.policy, "record_unavailable", f"zone:{zones[0]}",
                                                   reason))  # fmt: skip

    def _served(self, upstream: Upstream, model: str, version: str | None) -> str | Unknown | None:
        """The checkpoint an upstream serves, when a pin or its metadata already says (never waits). With
        `lineage.on_unapproved: block`, a miss the metadata could still answer is `Unknown` (asked again
        only when the call is refused for it). A checkpoint whose name says part of it is not known (`unsure`: a
        llama-server's LoRA scales set through the proxy and not read since) is checked as one not known yet."""
        book = self.runtime.book
        found = book.resolve(upstream, model, version, learn=False)
        if found is not None and not found.unsure:
            return found.name
        if self.policy.block_unapproved and book.could_name(upstream, model):
            return Unknown(book.why_unknown, upstream, model, book.unlisted)
        return None

    def _unapproved(self, call: Call, decision: Decision) -> None:
        """Count every unapproved call; log a flow the first time this process sees it (its labels, and the finding
        naming them, bounded: `logged_labels`, `bounded_text`)."""
        runtime = self.runtime
        runtime.stats.unapproved()
        flow = boundary_flow(call, decision, self._served)
        flagged = runtime.flagged
        if flow in flagged.kept:
            return
        # full (of a caller's labels new on every call, maybe), it is begun again, never silent from then on, as a full
        # table was: an honest caller's new flow is still logged
        flagged.keep(flow, None, flow_size(flow))
        if decision.code == "flow_not_approved":  # its reason is bounded already (`verify_flow`): not cut again
            why = f"refused (lineage.on_unapproved: block): {decision.reason}"
        else:
            finding = self.policy.unapproved(flow)
            why = bounded_text(finding.message if finding is not None else decision.reason or "-")
        log.warning(
            "unapproved flow: caller %r purpose %r labels %s checkpoint %s decision %s: %s",
            flow.caller, flow.purpose, logged_labels(flow.labels), flow.checkpoint or "-", decision.action,
            why, extra={"trace_id": call.trace.trace_id_hex},
        )  # fmt: skip

    def name_refused(
        self,
        error: ProxyError,
        header: Header,
        peer: tuple[str, ...] = (),
        x_api_key: bool = False,
        memo: KeyMemo | None = None,
    ) -> None:
        """A refusal (`error`) given the caller its key says (`caller_name`), for its record, where it names none yet: a
        key no caller owns, refused as such, says so already (not hashed again), and a refusal of the key's fields
        themselves (`_KEY_FIELDS`: malformed) names no one (not read again)."""
        if error.caller is None and error.param not in _KEY_FIELDS:
            error.caller = self.caller_name(header, peer, x_api_key, memo)

    def caller_name(
        self, header: Header, peer: tuple[str, ...] = (), x_api_key: bool = False, memo: KeyMemo | None = None
    ) -> str | None:
        """Who the key (or certificate) says made a call, as its record names it: a caller, `UNKNOWN_KEY`,
        or None (anonymous; also for a malformed Authorization header)."""
        try:
            return self._name(self.key_digest(header, x_api_key, memo), peer)
        except ProxyError:
            return None

    def _name(self, digest: str | None, peer: tuple[str, ...]) -> str | None:
        caller = self.policy.caller(digest, peer)
        return caller.name if caller is not None else (UNKNOWN_KEY if digest is not None else None)

    def identify_only(
        self, header: Header, peer: tuple[str, ...] = (), x_api_key: bool = False, memo: KeyMemo | None = None
    ) -> str | None:
        """For calls that carry no data (metadata, health): only the caller's key (or certificate) is
        checked. Returns the caller's name (None: anonymous, where allowed). `memo`: as `key_digest`'s."""
        name = self._name(self.key_digest(header, x_api_key, memo), peer)
        if name == UNKNOWN_KEY:
            raise _unknown_key()
        if name is None and not self.policy.anonymous_allowed and not self.policy.audit:
            raise DENIAL_ERRORS["invalid_api_key"](self.policy.missing_key(peer))
        return name

    def denial(self, decision: Decision) -> ProxyError:
        assert decision.action == DENY and decision.code is not None
        return DENIAL_ERRORS[decision.code](decision.reason or decision.code)


def _always() -> bool:
    return True


# the `param` of a refusal of the key's fields themselves (malformed: `_key_digest`, `_with_x_api_key`): such a
# refusal names no caller (`caller_name`), so its record's caller is not read from them again
_KEY_FIELDS: Final = frozenset(("authorization", "x-api-key"))


def _with_x_api_key(auth: str | None, given: str | None) -> str | None:
    """The Authorization a call's key fields amount to: `x-api-key: <key>` is `Bearer <key>`; sent beside an
    Authorization, both must hold the same key (which one is the caller's is never guessed)."""
    if given is None:
        return auth
    key = given.strip()
    if not key:
        raise InvalidRequest("x-api-key must hold the key", param="x-api-key")
    if auth:
        scheme, _, other = auth.partition(" ")
        if scheme.lower() != "bearer" or other.strip() != key:
            raise InvalidRequest("x-api-key and Authorization name different keys (or Authorization is not 'Bearer "
                                 "<key>'): send the key once", param="x-api-key")  # fmt: skip
    return f"Bearer {key}"


class PipelineRef:
    """The pipeline currently in force; a reload replaces `.current` in one assignment."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.current = pipeline


def _content_chars(texts: tuple[str, ...]) -> int:
    """`Call.content_chars`: the input texts' characters when they are not all captured (`CAPTURE_MAX_CHARS`), else 0."""
    size = sum(map(len, texts))
    return size if size > CAPTURE_MAX_CHARS else 0


def _joined_within(runs: list[list[str]], limit: int) -> list[str]:
    """Each run's parts joined, as far as a scan of them a line apart reads (`limit` characters) and a part more, so
    that it says it was cut: a part repeated reads as captured (`_captured_runs`), and 10,000 of one text were joined
    to 29M characters for 1M to be read."""
    joins: list[str] = []
    for run in runs:
        taken: list[str] = []
        for piece in run:
            taken.append(piece)
            limit -= len(piece)
            if limit < 0:
                break
        joins.append("".join(taken))
        if limit < 0:
            break
        # the line between runs: a run ending at the limit is followed by a piece of the next, so the reading says it
        # was cut (it read no further, and said nothing, an address split in the next run captured)
        limit -= 1
    return joins


def _captured_runs(detectors: Detectors, request: Request, masked: tuple[str, ...]) -> list[list[str]] | None:
    """The request's runs of parts the model reads together (`Request.joined`) as they are captured, for
    `boundary_windows`: a part that is one of its texts as that text was captured (`masked`: cut at the call's
    `CAPTURE_MAX_CHARS`), empty when past them; one trimmed masked as far as its text was; any other (vLLM's
    `Tool result: ` before a text) masked on its own, within `CAPTURE_MAX_CHARS` characters together. Masking each
    part again read the whole request twice or three times over (a run's parts, then trimmed). A part not captured
    whole beside a part whose edge there is captured is its head and tail as they are (`Detectors.mask_edges`), and so
    is each part beyond it while those between are shorter than a window reads (`WINDOW_WIDEST`), within the same
    bound. None: parts of the last two kinds past that bound, not looked at, so whether a value is split
    across them is not known."""
    captured: dict[str, str] = {}  # a text: as captured
    read: dict[str, int] = {}  # a text trimmed: how much of its text was masked, at most
    left = CAPTURE_MAX_CHARS
    for index, text in enumerate(request.texts):
        if index < len(masked):
            captured.setdefault(text, masked[index])
        else:
            captured.setdefault(text, "")
        trimmed = text.strip()
        read[trimmed] = max(read.get(trimmed, 0), min(len(text), max(left, 0)))
        left -= len(text)
    others = CAPTURE_MAX_CHARS  # characters the parts of no text may still take
    fresh: dict[str, str] = {}  # parts masked here, each once
    runs: list[list[str]] = []
    for run in request.joined:
        pieces: list[str] = []
        for piece in run:
            out = captured.get(piece)
            if out is None:
                out = fresh.get(piece)
            if out is None:
                limit = read.get(piece)
                if limit is None:
                    others -= len(piece)
                    if others < 0:
                        return None
                    limit = len(piece)
                out = fresh[piece] = detectors.mask(piece, limit) if limit else ""
            pieces.append(out)
        # a part not captured whole beside one whose edge there is captured: as it is at that edge (its own head and
        # tail, masked), so a value split there is seen whole, not half captured beside a marker (or nothing); so is
        # the part beyond one shorter than a window reads from that edge, and on (a value split over three parts)
        shown = [bool(out) and not out.startswith(_CUT_MARKERS) for out in pieces]
        whole = [
            not part or (seen and not out.endswith(_CUT_MARKERS))
            for part, out, seen in zip(run, pieces, shown, strict=True)
        ]
        edged = [False] * len(run)
        for order, edge_captured in ((range(len(run)), whole), (range(len(run) - 1, -1, -1), shown)):
            reach = 0  # how far on a window reads from the last edge captured, in this direction
            for index in order:
                piece = run[index]
                if reach > 0 and not whole[index] and not edged[index]:
                    # what `mask_edges` masks of it: its first and last `edge_width` characters
                    others -= min(len(piece), 2 * detectors.edge_width(WINDOW_WIDEST))
                    if others < 0:
                        return None
                    pieces[index] = detectors.mask_edges(piece, WINDOW_WIDEST)
                    edged[index] = True
                reach = WINDOW_WIDEST if edge_captured[index] else reach - len(piece)
        runs.append(pieces)
    return runs


# what is captured of a call one of whose texts is not UTF-8 (an OIP element, captured with U+FFFD for what is not) and
# one of whose readings in another charset (`oip.not_utf8_element`) holds a detected value: no captured text holds it
# to mask (before 2026-12-05 a span captured `j\ufffdrg@ex\ufffdmple.de` beside `[pii:email]`, its Latin-1 reading)
_WITHHELD_CHARSET: Final = "[withheld: a detected value is read in a charset other than UTF-8]"
_REPLACED: Final = "\ufffd"
# what is captured of a call whose parts past the bound could not be checked for split values (`_captured_runs`)
_UNCHECKED_PARTS: Final = (
    f"[withheld: content parts past {CAPTURE_MAX_CHARS:,} characters could not be checked for split values]"
)
# how a captured text ends (or, past the bound, is) when it was not captured whole
_CUT_MARKERS: Final = (NOT_CAPTURED, NOT_CAPTURED_PAST_BOUND)


def _unknown_key() -> ProxyError:
    """The refusal of a key no caller owns, recorded as the unknown key's. Made here, not in the frame that raises it:
    a variable of that frame holding it, its traceback would hold the frame, and so the frames of its callers (the
    request handler's, its body), in a reference cycle left to the collector (before 2026-12-05)."""
    unknown = DENIAL_ERRORS["invalid_api_key"]("unknown API key")
    unknown.caller = UNKNOWN_KEY
    return unknown
