"""One call, one Exchange: the transport-neutral walk admit → forward → observe → finish.

An ingress (HTTP or gRPC) only reads sockets and writes replies; it drives an Exchange through the
call's moments, each a method here, each calling only downward (pipeline, policy, adapter, sinks):

    ex = Exchange(pipeline, adapter, target, trace)
    upstream = ex.admit(body, header)         # read, identify, label, decide; a denial is raised
    ... forward; on a transport failure: raise ex.upstream_failed(exc)
    ex.forwarded()                            # admit(deferred=True): once the request is handed to the upstream
    ex.head(status, header, content_length)   # the reply's head
    ex.whole(body) | ex.chunk(piece) -> last? # observe; before writing the last piece: finish+recorded
                                              # (`ex.may_end(piece)` False: written first, observed after)
    ex.finish(error_type)                     # idempotent: the only way a call is recorded
    await ex.recorded()                       # a new flow is durable before the reply completes

`finish` runs at most once whatever path the call took (allowed, denied, failed, client gone), so
"every call leaves exactly one record" holds by construction rather than by every branch remembering.
A client that leaves never cancels the record: the durable write is shielded from the handler's
cancellation.

Only what the decision needs runs before the request goes upstream. With `admit(deferred=True)` (HTTP), what
only the record and the reply need — the input's digest and captured content, the reply's observer — is left
to `forwarded()`, which the ingress runs as soon as the request is
handed to the upstream's transport, while the upstream computes: the same record, off the latency path.
`upstream_failed` and `finish` run it first when the call never got that far, so nothing recorded differs.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from proxy.checkpoints import METADATA_TIMEOUT_S, CheckpointBook
from proxy.config import Upstream
from proxy.detectors import TRUNCATED
from proxy.errors import (
    InvalidRequest,
    Overloaded,
    ProxyError,
    UnknownPurpose,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
    plaintext_hint,
)
from proxy.flow import (
    ALLOW,
    DENY,
    KNOWN_PURPOSES,
    NO_WEIGHTS_SOURCE,
    REROUTE,
    RESPONSE,
    UNKNOWN_PURPOSE,
    UPSTREAM,
    Call,
    Decision,
    KeyMemo,
    Outcome,
    TraceContext,
    printable_name,
    quoted_name,
)
from proxy.labels import MAX_CALL_LABELS, reply_labels
from proxy.pipeline import Pipeline, carried_too_many
from proxy.policy import refused_by_head
from proxy.protocols import (
    NO_ADVISORS,
    STREAM_ERROR,
    Adapter,
    Header,
    NotItsBody,
    Observer,
    OthersNamed,
    Request,
    Target,
    passthrough,
)
from proxy.protocols.oip import RestReplyObserver
from proxy.protocols.oip_grpc import ReplyObserver as GrpcReplyObserver
from proxy.protocols.ollama import OllamaObserver
from proxy.protocols.sse import SseObserver
from proxy.record.sinks import Durable

log = logging.getLogger("lineage_proxy.exchange")
_time_ns: Final = time.time_ns  # compiled, a C static: not looked up in the time module at each call's start
_monotonic_ns: Final = time.monotonic_ns

CLIENT_GONE: Final = "client_disconnected"
DRAIN_CUT: Final = "drain_timeout"  # a call still running when the drain's time ran out (SIGTERM)
# an event stream its upstream ended in good order (chunked) before its API's last event (`Exchange.unfinished`)
UPSTREAM_INCOMPLETE: Final = "upstream_incomplete"
INTERNAL: Final = "internal_error"

_observer_failures = [0]  # logged once per process, counted always
# why a call whose purpose `policy.known_purposes` does not list was refused, as its record says (the caller is told
# the purpose it sent; the record never keeps it)
UNKNOWN_PURPOSE_REASON: Final = f"x-purpose names a purpose the config does not ({KNOWN_PURPOSES})"
READ_UNIDENTIFIED_MAX: Final = 1 << 20  # bytes of a body the proxy reads before it knows the caller may make calls


# what `upstream_failed` leaves in its variable once it has raised the failure it passes on (`upstream_failed`)
_PASSED_ON: Final = RuntimeError("passed on")
_NONE: Final[frozenset[str]] = frozenset()


class Exchange:
    """The life of one call. Not thread-safe: it lives on the event loop that serves the call."""

    # a sized reply passed on as it arrives, kept whole and no JSON, whose last byte came (`chunk`): its observer reads
    # on, a slice a loop turn (`more`), and whether it ended early is told after (`read_on_ended`). A class default: no
    # work a call
    reads_on = False
    # the upstream SGLang's `update_weights_from_disk` was forwarded to, until its reply or its end (`_replacing`): a
    # class default, no work a call
    _replacing: Upstream | None = None
    # the other models its request names as ones that may serve it (a fallback: `OthersNamed`), None one the server
    # picks; each held to the rules a call naming it is (`Pipeline.judged_for_others`). A class default: no work a call
    _others: tuple[str | None, ...] = ()
    # those of `_others` its `model` names separated by commas, a batch LiteLLM proxy runs (`OthersNamed.batch`)
    _batch: tuple[str, ...] = ()
    # those of `_others` an advisor tool names, and where (`OthersNamed.advisors`)
    _advisors: Mapping[str | None, tuple[str, str | None]] = NO_ADVISORS
    # the one of `_others` its body's `model` names, where its path names the call's model (`OthersNamed.asked`)
    _asked: str = ""

    def __init__(
        self,
        pipeline: Pipeline,
        adapter: Adapter,
        target: Target,
        trace: TraceContext,
        extra: dict[str, Any] | None = None,
        *,
        x_api_key: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.x_api_key = x_api_key  # `x-api-key` is a key field (the Anthropic API's paths: `Pipeline.key_digest`)
        self.adapter = adapter
        self.target = target
        self.trace = trace
        # its later marks are this wall time plus the monotonic clock's since (`Outcome.now_ns`)
        started = _time_ns()
        self.outcome = Outcome(
            started_ns=started, extra=extra if extra is not None else {}, clock_ns=started - _monotonic_ns()
        )
        self.call: Call | None = None
        self.decision: Decision | None = None
        self._observer: Observer | None = None
        self._durable: Durable | None = None
        self._finished = False
        self._stored = False  # the upstream may store the reply for later calls (`StoredReplies`)
        # the OIP sequences its requests went on with (`Pipeline.carry`), the latest last, made for the first: at most
        # as many as the process keeps (`Runtime.sequences`), as a stream may go on with any number. Found by key (a
        # tuple looked up and copied for each message took a stream of 40,000 sequences 20 s of the event loop)
        self._sequences: collections.OrderedDict[str, None] | None = None
        self._left: int | None = None  # bytes of a sized reply still to come
        # a reply in a content coding the proxy reads (`_decoding`): its zlib window bits, its inflater once the first
        # bytes came, and how many bytes it may yet give the observer (`Detectors.keep_max` in all)
        self._coding = 0
        self._inflater: Any = None
        self._inflate_room = 0
        self.refused: Exchange | None = None  # a stream's later message that was denied (`readmit`)
        self.key_memo: KeyMemo | None = None  # its connection's last key and digest (`Pipeline.key_digest`)
        self._unforwarded: Request | None = None  # admitted, deferred: what `forwarded` completes the call from
        self._forwarding = False  # `forwarded` is running (a failure in it is the proxy's, not the upstream's)
        # the checkpoint book the call was decided with, which names a checkpoint its reply names: one a reload put
        # in force meanwhile may know another server under the upstream's name
        self._book: CheckpointBook | None = None
        # a reply that changed what serves (`Target.rediscover`): the metadata round `recorded` waits for
        self._rediscovered: asyncio.Future[Any] | None = None
        pipeline.runtime.stats.started()

    # -- admit

    def admit(
        self,
        body: bytes,
        header: Header,
        peer: tuple[str, ...] = (),
        deferred: bool = False,
        fields: Callable[[], str | None] | None = None,
        body_fields: Callable[[], tuple[str | None, bool]] | None = None,
        found: frozenset[str] = _NONE,
    ) -> Upstream:
        """Read the request, identify the caller (key, or `peer`: what a client certificate proves),
        label, decide. Returns the upstream to forward to; a denial is raised as its ProxyError (and
        recorded when the ingress finishes the call). `deferred`: the ingress calls `forwarded()` once the
        request is handed to the upstream, which does then what only the record and the reply need. `fields`: what
        builds the text the server hands the model beside the body (an OIP request's header fields, `oip.header_text`),
        read with it for labels, never captured nor digested, and called only where it is read (`Pipeline.call`);
        `body_fields`: what builds the text of the body's fields only KServe's OpenAI data plane hands its model
        (`kserve.openai_fields`), read apart from both, as `Pipeline.call` says. `found`: the labels `query_read` found
        in a GET's target, not read again (`Pipeline.call`)."""
        pipeline = self.pipeline
        try:
            if pipeline.known_purposes is not None:  # an unknown purpose: refused before anything else is read
                pipeline.check_purpose(header, peer, self.x_api_key, self.key_memo)
            if len(body) > READ_UNIDENTIFIED_MAX and not pipeline.policy.audit:
                # a key no caller owns, or none where anonymous calls are denied, is refused before a large
                # body is parsed: reading one costs the event loop up to seconds, which an unknown client
                # should not be able to spend (a small one is read, so its labels are in the record)
                pipeline.identify_only(header, peer, self.x_api_key, self.key_memo)
            try:
                read = self.adapter.read(self.target, body, header)
            except InvalidRequest:  # (no call in the common path: a try costs nothing till it raises)
                as_utf8 = self._read_as_utf8(body, header)
                if as_utf8 is None:
                    # refused as it was, raised again here: raised from a variable of a frame its traceback holds (a
                    # parameter), it would hold that frame, and so the frames of its callers, in a reference cycle
                    raise
                read = as_utf8
            except NotItsBody:
                self.pass_through()
                read = self.adapter.read(self.target, body, header)
            except OthersNamed as named:
                self._others, self._batch = named.models, named.batch
                self._advisors, self._asked = named.advisors, named.asked
                read = named.again()
            call = self.call = pipeline.call(
                read,
                self.adapter.name,
                header,
                self.trace,
                peer,
                self.x_api_key,
                not deferred,
                self.key_memo,
                fields,
                body_fields,
                found,
            )
        except ProxyError as error:  # recorded as its caller's (`finish`), when the key says who that is
            pipeline.name_refused(error, header, peer, self.x_api_key, self.key_memo)
            raise
        self._stored = read.stored
        decision = self.decision = pipeline.decide(call)
        if self._others:
            decision = self.decision = pipeline.judged_for_others(
                call, decision, self._others, self._batch, self._advisors, self._asked
            )
        if not decision.forwards:
            if deferred:  # a denial's record has the input's digest and content too
                pipeline.record_fields(call, read)
            raise pipeline.denial(decision)
        upstream = decision.upstream
        assert upstream is not None
        if read.sequence is not None:  # kept now: the sequence's next request may come before this one's reply
            self._sequences = collections.OrderedDict(((read.sequence, None),))
            pipeline.carry(read.sequence, decision.labels, read.starts)
        self.outcome.forwarded_ns = self.outcome.now_ns()
        # the checkpoint recorded is the one the decision saw (~0.1 us): resolved later, a discovery round landing
        # while the request waits for a connection could record one the baseline never approved
        self._resolve(upstream)
        if self.target.rediscover:
            self._replaces(upstream)
        if deferred:
            self._unforwarded = read
        else:
            self._observe(call)
        return upstream

    def pass_through(self) -> None:
        """The call, on a path other servers serve too (`Target.shared`), is passthrough's from here (its decision, its
        record, its reply passed on unread), as a path's no adapter reads: its body is not of its adapter's API
        (`NotItsBody`), or in a content coding the proxy does not read."""
        adapter = self.adapter = passthrough.ADAPTER
        self.target = adapter.match("POST", "/")  # (a shared path names no model: the `"*"` route's call)

    def query_read(self, query: str, header: Header) -> frozenset[str] | None:
        """Whether the call, a GET or HEAD (`query`: its request target) while zones are configured, carries data:
        labels the detectors find in its path (but an API's known one) or its query's names and values, or that its
        caller declares (`x-data-labels`). If so, it is now passthrough's call of the model its path names, its path
        and query its request (`passthrough.QueryAdapter`), for `admit` to read and decide, and the labels found are
        returned for `admit(found=...)` (empty: declared, not read here), not read again (before 2026-12-05, helper
        records, `Pipeline._detected` scanned its texts a second time); else None: it carries no data, as a GET
        without a query (a probe's, a scrape's, a list's `?limit=20`: no purpose needed, no route but the one a call
        carrying no data takes)."""
        texts = passthrough.get_texts(query)
        target = self.target
        declared = header("x-data-labels")
        found = _NONE
        # (an API's own path without a query, or a listing, `?limit=20`: nothing it could be declared of, only a label
        # found in it)
        if declared is None or not declared.strip() or target.listing or passthrough.api_get(query):
            if not texts:
                return None
            found = self.pipeline.detectors.scan_all(texts)
            if not found:
                return None
        self.adapter = passthrough.QueryAdapter(texts)  # (read once: `admit` reads these)
        self.target = Target("passthrough", target.model, target.version)
        return found

    def _read_as_utf8(self, body: bytes, header: Header) -> Request | None:
        """`body`, which the adapter refused, read again by it as UTF-8 when it is JSON in a form servers read all
        the same (a UTF-8 byte order mark first, UTF-16 or UTF-32: `Adapter.as_utf8_json`), so what the server hands
        the model is read for labels; the bytes forwarded are those sent. Refused again, it is refused with what that
        reading found wrong (its JSON, as the server reads it, may lack a field); in no such form, None (`admit`
        refuses it as it was). Never a gRPC message: protobuf read as UTF-16 text is another message (another
        model's, holding nothing)."""
        utf8 = self.adapter.as_utf8_json(body, header)
        if utf8 is None:
            return None
        try:
            return self.adapter.read(self.target, utf8, header)
        except OthersNamed as named:  # (as `admit` takes it)
            self._others, self._batch = named.models, named.batch
            self._advisors, self._asked = named.advisors, named.asked
            return named.again()

    def refuse_at_head(self, header: Header, peer: tuple[str, ...] = ()) -> None:
        """Refuse, before its body is asked for (`Expect: 100-continue`), a call its head alone refuses whatever
        the body holds (`refused_by_head`): an `x-purpose` no purpose or not known, headers' labels that are none,
        no purpose resolved, a purpose its caller or its path's model's route may not use. Decided by the rules
        `admit` applies (`Pipeline.call`, `decide`), and recorded as such a refusal after the body is, the body's
        labels aside. A passthrough call is left to its body (its refusal as unread data comes first)."""
        pipeline, adapter, target = self.pipeline, self.adapter, self.target
        if adapter.name == "passthrough" or (target.shared and not pipeline.policy.opaque_allowed):
            return  # (a shared path's body may be passthrough's: `NotItsBody`)
        try:
            if pipeline.known_purposes is not None:
                pipeline.check_purpose(header, peer, self.x_api_key, self.key_memo)
            call = pipeline.call(
                # (a body that may name no model is taken to name none: where that is refused first, its body decides)
                Request(target.model, target.operation, version=target.version, unrouted=target.model_optional),
                adapter.name, header, self.trace, peer, self.x_api_key, recorded=False, memo=self.key_memo,
            )  # fmt: skip
        except ProxyError as error:
            pipeline.name_refused(error, header, peer, self.x_api_key, self.key_memo)  # (as `admit`'s)
            raise
        if refused_by_head(call, pipeline.policy, bool(target.model)) is None:
            return
        self.call = call
        decision = self.decision = pipeline.decide(call)  # as recorded once the body is: the baseline's verdict too
        raise pipeline.denial(decision)

    def forwarded(self) -> None:
        """The request is with the upstream (`admit(deferred=True)`): what only the record and the reply
        need, while the upstream computes — the input's digest and captured content, the reply's observer.
        Runs once; a no-op otherwise."""
        read = self._unforwarded
        call, decision = self.call, self.decision
        if read is None or call is None or decision is None or decision.upstream is None:
            return
        self._unforwarded = None
        self._forwarding = True  # left set if this raises: `upstream_failed` then passes the failure on as it is
        pipeline = self.pipeline
        pipeline.record_fields(call, read)
        self._observe(call)
        self._forwarding = False

    def _observe(self, call: Call) -> None:
        """The reply's observer, made once the call is forwarded; a gRPC one is told the model the call names, by
        which it tells MLServer's bare stream replies from Triton's errors (`oip_grpc.ReplyObserver.stream_message`);
        an Ollama one whether the call streams, which says how its client reads an `error` (`OllamaObserver._error`)."""
        observer = self.adapter.observer(self.target, self.outcome, self.pipeline.detectors, bool(call.content))
        if isinstance(observer, GrpcReplyObserver):
            observer.model = call.model
        elif isinstance(observer, OllamaObserver):  # whether its client reads the reply line by line
            observer.streamed = call.stream
        self._observer = observer

    def _resolve(self, upstream: Upstream) -> None:
        """The checkpoint `upstream` serves for this call's model, when its pin or metadata says."""
        call = self.call
        assert call is not None
        book = self._book = self.pipeline.runtime.book
        outcome = self.outcome
        if call.runs_no_weights:  # a LoRA adapter's load or unload: no checkpoint, not even a pin (its edge says so)
            outcome.checkpoint_source = NO_WEIGHTS_SOURCE
            return
        found = book.resolve(upstream, call.model, call.model_version)
        outcome.provider, outcome.checkpoint, outcome.checkpoint_source, outcome.checkpoint_parent = (
            (found.provider, found.name, found.source, found.parent) if found is not None else (None, None, None, None)
        )

    def retarget(self, upstream: Upstream) -> None:
        """Forward to `upstream` instead of the one decided (only where no zone says where the data may
        go): the decision and the checkpoint recorded are that upstream's."""
        assert self.decision is not None
        self.decision = dataclasses.replace(self.decision, upstream=upstream)
        self._resolve(upstream)

    def admit_data_free(self, upstream: Upstream | None, caller: str | None, model: str | None = None) -> None:
        """A call that carries no data (metadata, health, statistics, listings, a stored reply read back):
        the caller's key was checked (`Pipeline.identify_only`); it is recorded (its span, its access line,
        its metrics) but never with a lineage edge. `model`: the one its request names, where its path does not
        (a gRPC ModelMetadata's message); else its target's."""
        named = self.target.model if model is None else model
        self.call = Call(self.adapter.name, self.target.operation, named, self.trace, carries_data=False)
        self.decision = Decision(ALLOW, upstream, caller=caller)

    def readmit(self, body: bytes, header: Header, current: Pipeline | None = None) -> ProxyError | None:
        """A later message of a stream: when it adds labels, or when a reload put `current` in force since
        the call was decided, the call is decided again with all of them, by the config in force. Returns
        the denial (the stream must end), else None; a message naming another model is an InvalidRequest
        (raised), since the call was decided and is recorded for one model."""
        call, decision = self.call, self.decision
        assert call is not None and decision is not None
        reloaded = current is not None and current is not self.pipeline
        if reloaded:
            assert current is not None
            self.pipeline = current
            if current.known_purposes is not None:  # its purpose, as the stream's opening was: the config's in force
                unknown = self._purpose_unknown(header)
                if unknown is not None:
                    return unknown
        # read as a later message (`Target.later`), and without what only a record needs (its digest, its captured
        # content) or the key's digest: the stream's record and decision keep its first message's (the same metadata)
        target = self.target
        read = self.adapter.read(target.later or target, body, header)
        more = self.pipeline.call(read, self.adapter.name, header, self.trace, call.peer, recorded=False, keyed=False)
        if more.model != call.model or more.model_version != call.model_version:
            # decided and recorded for one model and version (its checkpoint): a stream never changes them
            # quoted as a refusal names a model (`quoted_name`): a name as long as the message, echoed whole, made a
            # status message past grpc's metadata limit, and the client got RESOURCE_EXHAUSTED in place of this answer
            named, opened = (more.model, call.model) if more.model != call.model else (
                f"{more.model} version {more.model_version or '(none)'}",
                f"{call.model} version {call.model_version or '(none)'}",
            )  # fmt: skip
            raise InvalidRequest(
                f"a stream serves one model: this message names {quoted_name(named)}, the stream was opened for "
                f"{quoted_name(opened)}; "
                "lineage-proxy decides and records a stream as one call, of the model and version its first message "
                "names (their route, purposes and checkpoint), so it ends here: open a stream for each model",
                param="model_version" if more.model == call.model else "model_name",
            )
        if (not reloaded and more.labels <= call.labels and more.detected <= call.detected
                and (call.opaque or not more.opaque)):  # fmt: skip
            self._went_on(read, decision)
            return None
        labels = call.labels | more.labels
        if len(labels) > MAX_CALL_LABELS:
            raise carried_too_many(len(labels))  # ends the stream, as a malformed message does
        widened = dataclasses.replace(call, labels=labels, detected=call.detected | more.detected,
                                      opaque=call.opaque or more.opaque)  # fmt: skip
        again = self.pipeline.decide(widened)
        upstream = decision.upstream
        if again.forwards and again.upstream is not None and upstream is not None:
            if again.upstream.name == upstream.name:
                self.call, self.decision = widened, again  # the record has every label (and audit-deny, if so)
                self._went_on(read, again)
                return None
            # its zones send this data elsewhere (a reroute): a stream cannot move upstream partway
            again = dataclasses.replace(again, action=DENY, upstream=None, code="region_denied", reason=(
                f"{again.reason or 'a zone sends this data to another upstream'}: this stream is served by "
                f"{upstream.name!r} and cannot move partway to {again.upstream.name!r}; open a new stream"))  # fmt: skip
        # This call stays the record of what was forwarded (its labels, its decision, the outputs so far); the
        # message refused is a call of its own, denied (`refused`, which the ingress finishes as it answers):
        # the stream ends with its answer.
        trace = self.trace.sibling()
        refused = self.refused = Exchange(self.pipeline, self.adapter, self.target, trace, dict(self.outcome.extra))
        refused.outcome.client = self.outcome.client
        refused.call, refused.decision = dataclasses.replace(widened, trace=trace), again
        return self.pipeline.denial(again)

    def _purpose_unknown(self, header: Header) -> ProxyError | None:
        """A stream's later message after a reload that put `policy.known_purposes` in force (or took its purpose
        from it): refused as the stream's opening would now be (`Pipeline.check_purpose`), its refusal a call of its
        own (`refused`), recorded as an opening's is (`finish`: under UNKNOWN_PURPOSE, as its caller's)."""
        call = self.call
        assert call is not None
        pipeline = self.pipeline
        try:
            pipeline.check_purpose(header, call.peer, self.x_api_key)
        except ProxyError as error:
            pipeline.name_refused(error, header, call.peer, self.x_api_key)  # (as `admit`'s)
            trace = self.trace.sibling()
            refused = self.refused = Exchange(pipeline, self.adapter, self.target, trace, dict(self.outcome.extra))
            refused.outcome.client = self.outcome.client
            # decided now, as a denied message's is (`readmit`): however it ends (answered, its client gone, the drain
            # cut), it is recorded so; before 2026-12-05 it was decided only by the refusal it was finished with, and
            # one finished as its client left (`_Ends`: a string) left no record at all. Only an unknown purpose's: the
            # key, checked first, refuses as an opening's is recorded (`refused_unread`: no edge, its own code), never
            # as a known_purposes denial with an edge under UNKNOWN_PURPOSE (helper revgrpcrecord)
            if isinstance(error, UnknownPurpose):
                refused.unknown_purpose(error)
            else:
                refused.refused_unread(error)
            return error
        return None

    def unknown_purpose(self, error: ProxyError) -> None:
        """This call, refused for a purpose `policy.known_purposes` does not list (`Pipeline.check_purpose`): a flow of
        its caller's (`error.caller`), under UNKNOWN_PURPOSE, never the purpose as sent."""
        self.call = Call(self.adapter.name, self.target.operation, self.target.model, self.trace)
        self.decision = Decision(DENY, None, error.caller, UNKNOWN_PURPOSE, code=error.code, rule=KNOWN_PURPOSES,
                                 reason=UNKNOWN_PURPOSE_REASON)  # fmt: skip

    def refused_unread(self, error: ProxyError) -> None:
        """This call, refused before its request was read (`error`, its caller `error.caller`): no data went anywhere, so
        no lineage edge; a denial for `lineage_proxy_decisions_total` too."""
        self.call = Call(self.adapter.name, self.target.operation, self.target.model, self.trace, carries_data=False)
        self.decision = Decision(DENY, None, error.caller, code=error.code, reason=error.message)
        self.pipeline.runtime.stats.decided(DENY)

    def _went_on(self, read: Request, decision: Decision) -> None:
        """A stream's later message, let through: the OIP sequence it goes on with holds the stream's labels."""
        sequence = read.sequence
        if sequence is not None:
            kept = self._sequences
            if kept is None:
                kept = self._sequences = collections.OrderedDict()
            kept[sequence] = None
            kept.move_to_end(sequence)
            if len(kept) > self.pipeline.runtime.sequences.most:  # one the process has forgotten by now
                kept.popitem(last=False)
            self.pipeline.carry(sequence, decision.labels, read.starts)

    def rerouted(self) -> bool:
        """Whether the call goes to a zone's `reroute:` upstream: a key its caller sent was for the upstream its
        route names (its own auth, passed on when no caller has a key), never for the one it is sent to instead."""
        decision, call = self.decision, self.call
        if decision is None or decision.action == ALLOW:
            return False
        if decision.action == REROUTE:
            return True
        # audit mode forwards a call it would refuse to where its zones let its data go: a `reroute:` target, maybe
        if not decision.zones or call is None or decision.upstream is None:
            return False
        matched = self.pipeline.policy.route(call.model)
        return matched is not None and matched[1].name != decision.upstream.name

    # -- the reply

    @property
    def observes(self) -> bool:
        """True when the adapter reads the reply (so it must come unencoded: Accept-Encoding: identity).
        Before `forwarded` makes the observer: every adapter but passthrough reads the reply."""
        if self._unforwarded is not None:
            return self.adapter.name != "passthrough"
        return self._observer is not None

    @property
    def wants_first_chunk(self) -> bool:
        """True when only the reply can name the checkpoint: read its first piece before the head goes
        out, so `x-lineage-checkpoint` can say."""
        return self.outcome.checkpoint is None and self._observer is not None

    def head(self, status: int, header: Header, content_length: int | None = None, coding: str | None = None) -> None:
        """The reply's head; `coding`: its Content-Encoding (HTTP), which the observer reads through (`_decoding`)."""
        outcome = self.outcome
        outcome.status = status
        if status >= 500:
            outcome.error_type = str(status)
        observer = self._observer
        if status >= 300:
            self._observer = None  # an error body is not the model's output
        elif observer is not None:
            if coding is not None and not self._decoding(coding):
                self._unreadable()
            else:
                try:
                    observer.head(status, header)
                except Exception:
                    self._observer_failed()
        self._left = content_length
        if self.target.rediscover:
            replacing = self._replacing is not None
            self._replaced()
            if 200 <= status < 300:
                self._rediscover(self.target is passthrough.REPLACES_WEIGHTS)
            elif replacing:  # a failed update: what serves was not known while it ran; the reply waits to know it again
                self._rediscover(False)

    def _replaces(self, upstream: Upstream) -> None:
        """A change to what serves goes to `upstream`. SGLang's `update_weights_from_disk`: a call that reaches the
        server while it runs waits for it and runs on the new weights, so what was read of that server is not known
        from now until its reply, or its end without one (`_replaced`, `CheckpointBook.replacing`)."""
        if self.target is passthrough.REPLACES_WEIGHTS:
            self._replacing = upstream
            self.pipeline.runtime.book.replacing(upstream)

    def _replaced(self) -> None:
        """The update `_replaces` marked has its reply, or ended without one."""
        upstream = self._replacing
        if upstream is not None:
            self._replacing = None
            self.pipeline.runtime.book.replaced(upstream)

    def _rediscover(self, replaced: bool) -> None:
        """The upstream changed what serves (llama.cpp's `POST /lora-adapters` set its scales; SGLang's
        `update_weights_from_disk` replaced its weights, `replaced`), or an update that made it not known failed
        (`_replaces`): its metadata is asked again now, and the reply waits for that round (`recorded`), so its
        client's next call is recorded, and checked, with what serves then, not with what the last round read
        (`discovery_interval_s` ago), nor as weights not known (until 2026-12-05 a failed update's reply did not wait)."""
        decision = self.decision
        if decision is not None and decision.upstream is not None:
            self._rediscovered = self.pipeline.runtime.book.changed(decision.upstream, replaced)

    def _decoding(self, coding: str) -> bool:
        """A reply's Content-Encoding (the proxy asked for none, `Accept-Encoding: identity`, but an upstream may code
        it all the same): its client undoes it and reads the output, so the observer is given the bytes decoded. One
        layer of gzip or deflate is read, as a request body's is; False for any other (`br`, `zstd`, two layers).
        `coding` is the list of every Content-Encoding field, as its client reads them (RFC 9110: `identity` and empty
        elements name no coding), so `identity, gzip` is gzip."""
        names = [name for part in coding.split(",") if (name := part.strip(" \t").lower()) and name != "identity"]
        if not names:
            return True
        bits = CODINGS.get(names[0]) if len(names) == 1 else None
        if bits is None:
            return False
        self._coding = bits
        # decoded, as much as is kept of a reply passed on as it arrives (`Detectors.keep_max`, 16 MiB or
        # limits.buffer_max_bytes): a reply compressed 1,000 to 1 is read no further than one sent as it is
        self._inflate_room = self.pipeline.detectors.keep_max
        return True

    def _decoded(self, data: bytes, whole: bool) -> bytes | None:
        """`data` decoded (`_decoding`), None once it cannot be (not valid coded data, or past `Detectors.keep_max`
        decoded), the observer then dropped and the output said to be unread. `whole`: the reply's last bytes, after
        which the coded data must have ended (a client reads no more of it). gzip is a series of members (RFC 1952),
        each read as its client reads it (a server compressing a stream event by event sends one an event); bytes
        after a deflate stream's end are not read (unreadable)."""
        inflater = self._inflater
        if inflater is None:
            bits = self._coding
            if bits == _DEFLATE and not zlib_header(data):
                bits = -15  # "deflate" sent raw, as some servers do, and clients read it so too
            inflater = self._inflater = zlib.decompressobj(bits)
        room = self._inflate_room
        try:
            out: bytes = inflater.decompress(data, room + 1)
            while inflater.eof and inflater.unused_data and len(out) <= room:  # (a member ended, more follow)
                if self._coding != _GZIP:
                    self._unreadable()
                    return None
                data = inflater.unused_data
                inflater = self._inflater = zlib.decompressobj(_GZIP)
                out += inflater.decompress(data, room + 1 - len(out))
        except zlib.error:
            self._unreadable()
            return None
        if len(out) > room or (whole and not inflater.eof):
            self._unreadable()
            return None
        self._inflate_room = room - len(out)
        return out

    def _unreadable(self) -> None:
        """The reply cannot be read (a content coding the proxy does not read, or data not valid in it): its
        observer is dropped and its output labelled `scan:truncated` where detectors run (never called clean)."""
        self._observer = None
        if self.pipeline.detectors:
            self.outcome.output_detected = self.outcome.output_detected | {TRUNCATED}

    def whole(self, body: bytes) -> bool:
        """The whole reply body (not streamed). True when its observer reads on (`more`): a reply that is no JSON object,
        read as an event stream a slice at a time (`SseObserver.more`), which the caller reads a slice a loop turn."""
        self.outcome.upstream_ns = self.outcome.now_ns()
        observer = self._observer
        if observer is not None and self._coding:
            decoded = self._decoded(body, True)
            if decoded is None:
                return False
            body = decoded
        if observer is not None:
            try:
                observer.body(body)
                if isinstance(observer, SseObserver):
                    if observer.rest is not None:
                        return True
                    self._whole_read(observer)
            except Exception:
                self._observer_failed()
        return False

    def more(self) -> bool:
        """The next slice of a whole reply `whole` said its observer reads on: True while slices remain (before
        2026-12-05 all of it was read in one loop turn, 15 MiB of a binary `text/plain` reply 0.7 s)."""
        observer = self._observer
        if not isinstance(observer, SseObserver):
            return False
        try:
            if observer.more():
                return True
            self._whole_read(observer)
        except Exception:
            self._observer_failed()
        return False

    def ending(self) -> bool:
        """A reply passed on as it arrives has ended (its last chunk, or its close): one its observer kept whole is read
        now (`SseObserver.ending`); True when it reads on as an event stream, which the caller reads a slice a loop turn
        (`more`) before it asks whether the reply ended early (`unfinished`, `cut_short`)."""
        observer = self._observer
        if not isinstance(observer, SseObserver) or self._finished:
            return False
        try:
            return observer.ending()
        except Exception:
            self._observer_failed()
        return False

    def read_on_ended(self) -> None:
        """A sized reply its observer read on (`reads_on`) has been read: one that ended before its API's last event is
        `upstream_incomplete`, as `chunk` tells one read in the turn of its last byte (before 2026-12-05 every such)."""
        self.reads_on = False
        if self._observer is not None and self.unfinished():
            self.outcome.error_type = UPSTREAM_INCOMPLETE

    def _whole_read(self, observer: SseObserver) -> None:
        """A whole reply read to its end as an event stream (`whole`, `more`): one that ended before its API's last
        event is `upstream_incomplete` (counted at `finish` as the call's type), unless the call has a type already."""
        if observer.unfinished_whole() and not self.outcome.error_type:
            self.outcome.error_type = UPSTREAM_INCOMPLETE

    @property
    def finished(self) -> bool:
        """The call is recorded (`finish`): for a streamed reply, its end came (`chunk`)."""
        return self._finished

    def chunk(self, data: bytes) -> bool:
        """One piece of a streamed reply, before it is written to the client. True when the piece
        holds the reply's end (the last SSE event, or the last byte of a sized body): the ingress
        then finishes the call and awaits `recorded()` before the client can have it. A sized body
        ends at its last byte, whatever its events say: what it holds after the API's last event is
        read (the client is promised those bytes), where an unsized one is not passed on past it."""
        if self._finished:
            return False
        observer = self._observer
        if observer is not None:
            read = data if not self._coding else self._decoded(data, False)
            if read is None:
                observer = None
            elif read:
                try:
                    observer.chunk(read)
                except Exception:
                    self._observer_failed()
                    observer = None
        # (not from a model named in an event the SDK has not been given yet, which a read cut before its blank line
        # holds: until 2026-12-06 the checkpoint so named stood where that event, one the SDK skips, undid the model,
        # review revstreams' `repro_checkpoint_cut`; one the SDK gives names it at its blank line)
        if (
            self.outcome.checkpoint is None
            and self.outcome.response_model
            and (self._observer is None or not self._observer.model_held())
        ):
            self._checkpoint_from_response()
        if self._left is not None:
            self._left -= len(data)
            if self._left <= 0:
                self.outcome.upstream_ns = self.outcome.now_ns()
                if observer is not None and self.ending():
                    self.reads_on = True  # (whether it ended early is told once it is read: `read_on_ended`)
                elif observer is not None and self.unfinished():
                    # a sized event stream whose last byte came before its API's last event: ended incomplete, as a
                    # chunked one is (`HttpIngress._streamed_reply`), counted at `finish` as the call's type
                    self.outcome.error_type = UPSTREAM_INCOMPLETE
                return True
        elif observer is not None and observer.ended and (not self._coding or self._inflater.eof):
            # (a compressed reply ends where its coding does: its last event may come before the coding's end, as
            # a gzip stream flushed event by event and then closed sends its trailer in a piece of its own)
            self.outcome.upstream_ns = self.outcome.now_ns()
            return True
        return False

    def may_end(self, data: bytes) -> bool:
        """Whether `data`, the next piece of a streamed reply, may hold its end (`chunk` True): False only when it
        cannot, so the ingress writes it to the client first and reads it after (`chunk`, before its next read). A sized
        reply's end is its last byte (`_left`); an unsized one's its observer's last event (`Observer.may_end`), or in
        a compressed one the coding's end too, not told without decoding (True)."""
        left = self._left
        if left is not None:
            return len(data) >= left
        observer = self._observer
        return observer is not None and (self._coding != 0 or observer.may_end(data))

    def cut_short(self) -> bool:
        """A reply framed by its connection's close has ended: whether its event stream closed before its end (no
        last event, no finish reason, no error in band: `SseObserver.cut_short`), or its JSON before its value's
        (`RestReplyObserver.cut_short` too), which the close may have cut."""
        observer = self._observer
        if isinstance(observer, SseObserver):
            return observer.cut_short()
        return isinstance(observer, RestReplyObserver) and observer.cut_short()

    def unfinished(self) -> bool:
        """A reply its upstream ended in good order (chunked) has ended: whether it was an event stream that ended
        before its API's last event, any finish or stop reason and any error in band (`SseObserver.unfinished`), or JSON
        that ended before its value did (`RestReplyObserver.cut_short` too)."""
        observer = self._observer
        if isinstance(observer, SseObserver):
            return observer.unfinished()
        return isinstance(observer, RestReplyObserver) and observer.cut_short()

    def stream_message(self, message: bytes) -> None:
        """One message of a streamed gRPC reply (each message is whole)."""
        outcome = self.outcome
        if not outcome.first_token_ns:
            outcome.first_token_ns = outcome.now_ns()
        observer = self._observer
        if observer is not None and not self._finished:
            try:
                observer.chunk(message)
            except Exception:
                self._observer_failed()

    def _observer_failed(self) -> None:
        """Observing never breaks forwarding: an observer that raises is dropped for this call, and
        the call is still forwarded and recorded, its output labelled `scan:truncated` where detectors
        run (what the observer did not read is never called clean)."""
        self._observer = None
        if self.pipeline.detectors:
            self.outcome.output_detected = self.outcome.output_detected | {TRUNCATED}
        _observer_failures[0] += 1
        if _observer_failures[0] == 1:
            log.warning("could not read a reply from upstream (forwarded unchanged; logged once)", exc_info=True,
                        extra={"trace_id": self.trace.trace_id_hex})  # fmt: skip

    # -- failures

    def upstream_failed(self, exc: BaseException) -> ProxyError:
        """Map a transport failure to the contract's error: the one place for both transports."""
        if self._forwarding:  # `forwarded` itself failed (the proxy's fault, not the upstream's): raised as it is
            try:
                raise exc
            finally:  # not kept by this frame, which its traceback holds (a reference cycle); not `del exc`, which
                # mypyc compiles wrong for a parameter (it crashed the process here, and made every other use of
                # `exc` an UnboundLocalError)
                exc = _PASSED_ON
        self.forwarded()  # a request that never left is recorded as one that did
        decision = self.decision
        upstream = decision.upstream if decision is not None else None
        name = upstream.name if upstream is not None else "?"
        unreachable = isinstance(exc, OSError) and not isinstance(exc, TimeoutError)  # slow is not down
        if upstream is not None and (unreachable or getattr(exc, "grpc_code", None) == "UNAVAILABLE"):
            self.pipeline.runtime.book.suspect(upstream)  # /readyz follows within a round trip, not an interval
        if isinstance(exc, UpstreamStatus):
            if exc.grpc_code == "UNAVAILABLE":
                return UpstreamUnavailable(f"upstream {name!r} is unavailable: {exc.message}")
            if exc.grpc_code == "DEADLINE_EXCEEDED":
                timeout = upstream.timeout_s if upstream is not None else 0
                return UpstreamTimeout(f"upstream {name!r} did not answer in time (timeout_s {timeout:g})")
            return exc  # the upstream's own answer, passed on as it came
        if isinstance(exc, Overloaded):  # the upstream's max_queue: refused here, never forwarded
            if decision is not None and decision.forwards:
                self._refused(decision, exc, f"upstream:{name}")
            return exc
        if isinstance(exc, ProxyError):
            return exc
        if isinstance(exc, TimeoutError):
            timeout = upstream.timeout_s if upstream is not None else 0
            return UpstreamTimeout(f"upstream {name!r} did not answer within {timeout:g}s")
        return UpstreamUnavailable(
            f"upstream {name!r} is unavailable: {type(exc).__name__}: {exc}{plaintext_hint(exc)}"
        )

    def refuse(self, error: ProxyError, rule: str) -> ProxyError:
        """A call decided to go through that its ingress cannot forward (the upstream decided is not one its
        transport reaches): recorded as the refusal it is (`_refused`), with its input as a denial's. Returns
        `error`, for the ingress to raise."""
        self.forwarded()  # (admitted deferred: the input's digest and content, as `upstream_failed`)
        decision = self.decision
        if decision is not None and decision.forwards:
            self._refused(decision, error, rule)
        return error

    def _refused(self, decision: Decision, error: ProxyError, rule: str) -> None:
        """A call decided to go through that the proxy refuses before forwarding it: recorded as the refusal
        it is (`deny`, its code and `rule`, every record and `x-lineage-decision` alike), its data gone nowhere
        past the boundary: no upstream, no checkpoint, no output."""
        refused = dataclasses.replace(decision, action=DENY, upstream=None, code=error.code, rule=rule,
                                      reason=error.message)  # fmt: skip
        call = self.call
        # approved or not as the flow it is recorded as (the baseline's verdict on `deny` by `rule`)
        self.decision = self.pipeline.judged_again(call, refused, decision) if call is not None else refused
        outcome = self.outcome
        outcome.provider = outcome.checkpoint = outcome.checkpoint_source = outcome.checkpoint_parent = None
        outcome.forwarded_ns = 0
        self._observer = None

    # -- the end

    def finish(
        self, error: ProxyError | str | None = None, *, along: Durable | None = None, until: Durable | None = None
    ) -> None:
        """Record the call: once, whatever path it took. `error`: why it failed, if it did. Called again with an error
        while its record waits for the durable write its reply waits for (`recorded`), the call ended so after all: its
        client left, or the drain cut it, and never got the reply (`_unanswered`). `along`: another write its reply
        waits for (`finish_with`), its record held for it as for its own. `until`: the answer's send, which the record
        is held for too (`FanOut.on_end`), and `recorded` does not wait for."""
        if self._replacing is not None:  # (an update's end without a reply: `_replaces`)
            self._replaced()
        if self._finished:
            if error is not None and self.held:
                self._unanswered(error)
            return
        try:
            self.forwarded()  # left before the request was sent: recorded as it would have been
        except Exception:  # a defect of the proxy's: the call is recorded anyway, as failed by it
            log.exception("could not complete the record of a call (recorded as %s)", INTERNAL)
            error = error or INTERNAL
        self._finished = True
        runtime = self.pipeline.runtime
        stats = runtime.stats
        stats.ended()
        outcome = self.outcome
        decision = self.decision
        observer = self._observer
        if observer is not None:  # first: what only the reply's end lets be read (an error in band on its last line
            try:  # without a line end, an event it ended) is counted with the rest
                observer.finish()
            except Exception:
                self._observer_failed()
        if error is not None and outcome.error_type == STREAM_ERROR:
            outcome.error_type = None  # an error the upstream sent in the stream did not end it: what did is its type
        if error is None:  # (first: a call that ended well looks up no error class)
            if outcome.error_type:
                stats.failed(outcome.error_type)
        elif isinstance(error, ProxyError):
            if error.failed:  # (not an upstream's gRPC status a server's span counts no error: `UpstreamStatus`)
                if decision is None or decision.forwards:  # a denial's type is its decision's code
                    # a type it has already (an upstream's 5xx, then cut) stays, and is what is counted: as its record
                    kind = outcome.error_type or error.code
                    outcome.error_type = kind
                    stats.failed(kind)
                else:
                    stats.failed(error.code)
        else:
            kind = outcome.error_type or error
            outcome.error_type = kind
            stats.failed(kind)
        outcome.ended_ns = outcome.now_ns()
        if outcome.forwarded_ns and not outcome.upstream_ns:  # a stream that ended without a last event
            outcome.upstream_ns = outcome.ended_ns
        call = self.call
        if call is None and isinstance(error, UnknownPurpose):  # a flow of its caller's, under no purpose it named
            self.unknown_purpose(error)
            call, decision = self.call, self.decision
        elif call is None and isinstance(error, ProxyError):  # refused before it was read: no data went anywhere
            self.refused_unread(error)
            call, decision = self.call, self.decision
        if call is None or decision is None:
            return  # a client gone before its request was read: counted
        if call.carries_data:  # counted as recorded: an upstream's max_queue 503 was decided allow, recorded deny
            stats.decided(decision.action)
        self._checkpoint_from_response()
        labels = self.edge_labels()
        self._durable = runtime.sinks.on_end(call, decision, outcome, labels, along, until)
        if decision.forwards and self._sequences:
            sequences = runtime.sequences
            for sequence in self._sequences:  # its output too, which the model's state may keep
                # one the process forgot since (`Runtime.sequences` is bounded) held what it no longer knows: left
                # forgotten, its next request unread (`Pipeline._unseen`), not remembered as holding these alone
                if sequences.labels(sequence) is not None:
                    self.pipeline.carry(sequence, labels)
        if self._stored and outcome.response_id and decision.forwards:
            # the inputs' labels and the reply's; a reply not seen to its end is stored whole upstream, and so is one
            # answered before it was written (a background response, `queued`: no status it ends with came)
            unread = outcome.error_type or not outcome.finish_reasons
            runtime.stored.remember(outcome.response_id, labels | {TRUNCATED} if unread else labels)

    def finish_with(self, other: Exchange, error: ProxyError, until: Durable | None = None) -> None:
        """Record the call and `other`, which its answer answers too (a stream's denied message: the stream's status
        is its refusal's), with `error`: each record held for both their writes (`FanOut._hold`), let go together by
        `other.recorded(self)`. Held for its own alone, one with no write pending went out at once, and a client that
        left in the other's wait had it recorded as answered, with a status that never went out. `until`: that status's
        send, which both records are held for too (`finish`)."""
        gate: Durable = concurrent.futures.Future()  # holds this one's record until `other`'s holds it too
        try:
            self.finish(error, along=gate, until=until)
            other.finish(error, along=self._durable, until=until)  # this one's write, and the gate
        finally:  # this one's now held for its own write only, till `other.recorded(self)` marks it (never for good)
            gate.set_result(None)

    @property
    def held(self) -> bool:
        """The call is recorded (`finish`) and its record waits for the durable write its reply waits for
        (`FanOut.holds`): until that write is done, how the call ended may still change (`_unanswered`)."""
        return self._finished and self.pipeline.runtime.sinks.holds(self.outcome)

    def _unanswered(self, error: ProxyError | str) -> None:
        """A recorded call whose reply never went out (`finish`): its record, held until then (`FanOut.holds`), ends now
        with `error`, not as the answer it was to be; but a type it was recorded with stays (an upstream's error in band
        too), as `finish` keeps an earlier error type: it was counted then, and a call is counted once."""
        outcome = self.outcome
        outcome.ended_ns = outcome.now_ns()
        decision = self.decision
        if outcome.error_type is None and (decision is None or decision.forwards):  # (a denial's type: its code)
            outcome.error_type = error.code if isinstance(error, ProxyError) else error
            self.pipeline.runtime.stats.failed(outcome.error_type)

    def _checkpoint_from_response(self) -> None:
        """The checkpoint the reply's model names, where none was known for the model asked for; or where the reply
        names another model than was asked for, which the upstream's own metadata says another checkpoint serves (an
        upstream that answered a call for `a` with model `b`, listed as weights B, served B, whatever `a` is: the
        record says B, not what a call for `a` would have reached). A pin in config is never overruled, nor are the
        weights asked for when the reply's model names the same (an alias of them; a llama.cpp adapter's base)."""
        outcome = self.outcome
        model = outcome.response_model
        if not model:
            return
        known = outcome.checkpoint
        if known is not None:
            call = self.call
            if call is None or model == call.model or model == known or outcome.checkpoint_source != UPSTREAM:
                return
        decision = self.decision
        upstream = decision.upstream if decision is not None else None
        book = self._book or self.pipeline.runtime.book
        found = book.resolve(upstream, model, learn=False) if upstream is not None else None
        if known is not None and (
            found is None
            or found.source != UPSTREAM
            or (found.parent or found.name) == (outcome.checkpoint_parent or known)
        ):
            return  # the reply's model is not named, or is the same weights (an alias; an adapter's base as asked)
        if found is not None:  # the upstream's metadata names what the reply's model is
            outcome.provider = found.provider
            outcome.checkpoint, outcome.checkpoint_source, outcome.checkpoint_parent = (
                found.name,
                found.source,
                found.parent,
            )
        else:
            outcome.checkpoint, outcome.checkpoint_source = printable_name(model), RESPONSE

    @property
    def recording(self) -> bool:
        """Whether `recorded` has anything to wait for: a new flow's first record not yet durable, or a metadata round
        (`_rediscover`). False for a flow seen before, most calls: no coroutine made to find that out."""
        durable = self._durable
        return self._rediscovered is not None or (durable is not None and not durable.done())

    async def recorded(self, *answered_with: Exchange) -> None:
        """Wait until a new flow's first record is durable. Shielded: a client that leaves cancels
        the wait, never the write. A store failure is logged by its sink, never fails the call.
        `answered_with`: calls whose answer this one's is (`finish(along=)`): their records are let go with this one's."""
        durable = self._durable
        if durable is None or durable.done():
            if self._rediscovered is not None:
                await self._rediscovery()
            return
        # the record held for this write (`FanOut._hold`) is let go here, as the caller hands the answer over (its
        # statement after this await), not when the write completes, two turns of the loop before (`FanOut.awaited`)
        sinks = self.pipeline.runtime.sinks
        calls = (self, *answered_with)
        for one in calls:
            sinks.awaited(one.outcome)
        cancelled = True
        try:
            if self._rediscovered is not None:
                await self._rediscovery()
            waited = asyncio.wrap_future(durable)
            try:
                await asyncio.shield(waited)
            except asyncio.CancelledError:
                # the write goes on: a failure of it is its sink's to say (an outage's line), read here so asyncio does
                # not say it again, `Future exception was never retrieved` with a traceback, for each call cut so
                waited.add_done_callback(_read_failure)
                raise
            except Exception:
                pass
            cancelled = False
        finally:
            # a wait cancelled (its client left, the drain cut it): once the caller has said so in it (`_unanswered`)
            for one in calls:
                written = one._durable
                sinks.let_go(one.outcome, written is not None and written.done(), later=cancelled)

    async def _rediscovery(self) -> None:
        """The metadata round `_rediscover` asked for, `METADATA_TIMEOUT_S` at most (it is the round's own bound)."""
        round_ = self._rediscovered
        self._rediscovered = None
        if round_ is None or round_.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(round_), METADATA_TIMEOUT_S)
        except TimeoutError:
            pass

    async def end(self) -> None:
        """finish + recorded: the call is complete and its record durable."""
        self.finish()
        await self.recorded()

    # -- what the client is told

    def output_labels(self) -> frozenset[str]:
        """The reply's labels: the inputs' labels plus what detectors found in the output so far."""
        decision = self.decision
        if decision is None:
            return frozenset()
        detected = self.outcome.output_detected
        return decision.labels | detected if detected else decision.labels

    def edge_labels(self) -> frozenset[str]:
        """Output labels as the edge records them: a denied call produced no output."""
        decision = self.decision
        return self.output_labels() if decision is not None and decision.forwards else frozenset()

    def lineage_headers(self) -> list[tuple[str, str]]:
        """`x-trace-id`, `x-lineage-decision`, `x-data-labels`, `x-lineage-upstream`,
        `x-lineage-checkpoint` (CONTRACT.md §3): the same for HTTP headers and gRPC metadata. A call that
        carries no data says its decision only when it is refused (as is one refused before it was read)."""
        headers = [("x-trace-id", self.trace.trace_id_hex)]
        decision = self.decision
        call = self.call
        if decision is not None and call is not None:
            if call.carries_data:
                headers.append(("x-lineage-decision", decision.action))
                headers.append(
                    ("x-data-labels", reply_labels(self.output_labels()))
                )  # (bounded: REPLY_LABELS_MAX_CHARS)
                if decision.forwards and decision.upstream is not None:
                    headers.append(("x-lineage-upstream", decision.upstream.name))
            elif decision.action == DENY:
                headers.append(("x-lineage-decision", DENY))
        checkpoint = self.outcome.checkpoint
        if checkpoint:
            headers.append(("x-lineage-checkpoint", checkpoint))
        return headers

    def lineage_fields(self) -> bytes:
        """`lineage_headers` as an HTTP reply's header block carries them (`encode_fields` of them, byte for byte),
        made at once: two strings a reply (the decision's lines, then the block with them in it), no list of tuples
        nor a line each to join, nor the block copied again for each line added to it."""
        decision = self.decision
        call = self.call
        decided = ""
        if decision is not None and call is not None:
            if call.carries_data:
                labels = reply_labels(self.output_labels())  # (bounded: REPLY_LABELS_MAX_CHARS)
                upstream = decision.upstream
                if decision.forwards and upstream is not None:
                    decided = (f"x-lineage-decision: {decision.action}\r\nx-data-labels: {labels}\r\n"
                               f"x-lineage-upstream: {upstream.name}\r\n")  # fmt: skip
                else:
                    decided = f"x-lineage-decision: {decision.action}\r\nx-data-labels: {labels}\r\n"
            elif decision.action == DENY:
                decided = f"x-lineage-decision: {DENY}\r\n"
        checkpoint = self.outcome.checkpoint
        if checkpoint:
            block = f"x-trace-id: {self.trace.trace_id_hex}\r\n{decided}x-lineage-checkpoint: {checkpoint}\r\n"
        else:
            block = f"x-trace-id: {self.trace.trace_id_hex}\r\n{decided}"
        return block.encode("utf-8", "surrogateescape")


_DEFLATE: Final = 15
_GZIP: Final = 31
# the content codings the proxy reads, a request body's (`ingress.http`) and a reply's, by name: their zlib window
# bits (gzip framing; zlib framing, or raw when `zlib_header` says so)
CODINGS: Final[dict[str, int]] = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _DEFLATE}


def zlib_header(data: bytes) -> bool:
    """Whether `data` starts with a zlib header (RFC 1950: deflate, any window size, a valid check)."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0


def _read_failure(future: asyncio.Future[None]) -> None:
    """A record's write a cancelled wait left (`Exchange.recorded`): its failure read, said by its sink."""
    if not future.cancelled():
        future.exception()
