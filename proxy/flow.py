"""The pipeline's vocabulary: Call → Decision → Outcome, each frozen and protocol-neutral.

Protocol adapters build a Call; `policy.decide` turns it into a Decision; the transport forwards and an
observer fills an Outcome; the recorder turns the three into a span and an edge.

The dataclasses every call makes write their own `__init__` (`init=False`): the one `dataclass` generates is
Python run by the interpreter even in the compiled build, ~25x the time of a compiled one (a frozen class's
fields are set with `object.__setattr__`, which mypyc compiles to a slot store). Each takes its fields in
order, with their defaults: `dataclasses.replace` and `fields` work as before, and
tests/test_dataclass_init.py holds every such `__init__` to its class's fields. Compiled, their instances
cannot be copied (`copy`) or pickled (nothing does: they live for one call).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from proxy.config import Upstream

# Final: a compiled module reads these as constants, not from its module dict at each use
ALLOW: Final = "allow"
DENY: Final = "deny"
REROUTE: Final = "reroute"
AUDIT_DENY: Final = "audit-deny"
UNKNOWN_KEY: Final = "(unknown key)"  # the caller of a call whose API key no caller owns: never `anonymous`
# the purpose a call refused for one `policy.known_purposes` does not list is recorded under (no purpose can be it: the
# grammar has no parentheses nor spaces), so that purposes new on every call make one flow, not a store row each
UNKNOWN_PURPOSE: Final = "(unknown purpose)"
KNOWN_PURPOSES: Final = "policy.known_purposes"  # that refusal's rule
INVALID_API_KEY: Final = "invalid_api_key"  # the code of a call refused for its key (`Decision.unidentified`)

# The wire protocols a call can arrive in: one adapter each (proxy/protocols/), closed so that a
# misspelt protocol is a type error, not a silent miss.
ProtocolName = Literal["openai", "anthropic", "oip", "oip-grpc", "kserve", "passthrough"]


# where a checkpoint's identity came from (lineage.checkpoint.source), most trusted first
CONFIG: Final = "config"
UPSTREAM: Final = "upstream"
RESPONSE: Final = "response"
# the checkpoint source of a call that runs no weights (`Call.runs_no_weights`: a LoRA adapter's load or unload),
# whose checkpoint is None: its edge records `NO_WEIGHTS` (`edges.edge_key`); before review routes2 (2026-12-05) such
# a call was judged and recorded as the adapter's weights, a new adapter's load waiting for them for ever under
# `lineage.on_unapproved: block`
NO_WEIGHTS_SOURCE: Final = "none"


# what a checkpoint name is written in: visible ASCII, `%` escaped (`printable_name`)
_VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def printable_name(name: str) -> str:
    """A checkpoint name as the record and the headers carry it: visible ASCII, anything else (white
    space, control characters, non-ASCII) percent-encoded as UTF-8. Names come from upstream replies and
    metadata, and from what a caller asks for; written raw, a CR LF in one would split the reply's head
    (a header of its own, a whole second reply) and the `edges` table's lines. A lone surrogate (a reply's
    `\\ud800`, as Python's `json` reads it) is encoded as the code point it is: strict UTF-8 raised on it, and
    the call that named it went unrecorded.

    A name longer than QUOTED_DIGEST_CHARS (a caller's, as long as a body, echoed by an upstream) is read at its start
    and end alone, as `quoted_name` reads it: encoded and hashed whole, one of 64 MiB took the event loop ~6 s."""
    if len(name) > QUOTED_DIGEST_CHARS:
        return _long_printable_name(name)
    if not (name.isascii() and name.isprintable() and " " not in name and "%" not in name):
        name = urllib.parse.quote(name, safe=_VISIBLE, errors="surrogatepass")
    if len(name) > NAME_MAX_CHARS:  # its start, and a digest of the whole, so that one name is recorded as one
        name = digest_cut(name, NAME_MAX_CHARS)
    return name


def digest_cut(name: str, most: int, digested: str | None = None) -> str:
    """`name` cut to `most` characters: its start, `...sha256:` and 16 hex digits of the digest of `digested` (the
    whole name unless given), so that two long names stay two (checkpoint names, OpenLineage's names)."""
    whole = name if digested is None else digested
    digest = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{name[: most - 26]}...sha256:{digest}"


def _long_printable_name(name: str) -> str:
    """`printable_name` of a name longer than QUOTED_DIGEST_CHARS: its start encoded, and a digest of its encoded start
    and end and its length (two such names are recorded alike only if they differ only in between)."""
    edge = QUOTED_DIGEST_CHARS // 2
    start = urllib.parse.quote(name[:edge], safe=_VISIBLE, errors="surrogatepass")
    end = urllib.parse.quote(name[-edge:], safe=_VISIBLE, errors="surrogatepass")
    return digest_cut(start, NAME_MAX_CHARS, f"{start}/{end}/{len(name)}")


def quoted_name(name: str) -> str:
    """A name a caller chose (the model a call asks for) quoted for a message that is recorded, a refusal's reason:
    `repr` of it when it is at most NAME_MAX_CHARS long, else of its start, a digest and its length, as
    `printable_name` cuts a checkpoint's. A model's name is as long as a body: whole, a refusal naming a model of a
    megabyte wrote a megabyte into the edge's row and again into the chain entry of each flush that counted it.

    The digest is of the whole name up to QUOTED_DIGEST_CHARS, else of its first and last QUOTED_DIGEST_CHARS / 2
    characters: hashed whole, a name of 64 MiB (limits.max_body_bytes) took ~0.2 s of the event loop's time for
    each call refused naming it. Two names are quoted alike only if they have the same length, start and end, and
    differ only in between (a caller who sends such names gets the one refusal for both, as it should)."""
    if len(name) <= NAME_MAX_CHARS:
        return repr(name)
    edge = QUOTED_DIGEST_CHARS // 2
    read = name if len(name) <= QUOTED_DIGEST_CHARS else name[:edge] + name[-edge:]
    digest = hashlib.sha256(read.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{name[: NAME_MAX_CHARS - 26]!r}...sha256:{digest} ({len(name)} characters)"


# the longest checkpoint name recorded (`printable_name`): a name from a reply (an upstream that echoes the model a
# caller asks for) or metadata can be as long as a body; whole, a megabyte went into the reply's
# `x-lineage-checkpoint`, every access line and the store's key. Hugging Face ids with a revision are ~140
NAME_MAX_CHARS: Final = 512
# the most of a caller's long model name a refusal's digest of it reads (`quoted_name`): its start and end, and its
# length beside. The same digest as the whole name's for a name of up to this many characters
QUOTED_DIGEST_CHARS: Final = 8192

_monotonic_ns: Final = time.monotonic_ns  # compiled, a C static: not looked up in the time module at each mark


@dataclass(frozen=True, slots=True, init=False)
class Checkpoint:
    """The weights that serve a call: a name (`org/model@rev`, `iris:3`), and a LoRA adapter's base.
    Both names are kept printable (`printable_name`), whatever the metadata they were read from said."""

    name: str
    source: str
    parent: str | None = None
    provider: str | None = None  # the serving engine its metadata names (gen_ai.provider.name): vllm, tgi, ...
    # the name says part of what serves is not known (`org/gemma-3+lora:?`: a llama-server's LoRA scales were set
    # through the proxy and not read since): recorded as it is, checked against the baseline as an unknown checkpoint
    unsure: bool = False

    def __init__(
        self, name: str, source: str, parent: str | None = None, provider: str | None = None, unsure: bool = False
    ) -> None:
        object.__setattr__(self, "name", printable_name(name))
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "parent", None if parent is None else printable_name(parent))
        object.__setattr__(self, "provider", provider)
        object.__setattr__(self, "unsure", unsure)


@dataclass(frozen=True, slots=True, init=False)
class TraceContext:
    """W3C trace context for one call: the proxy's own span id and, if the caller sent one, its parent."""

    trace_id: int
    span_id: int
    parent_span_id: int | None = None
    sampled: bool = True
    tracestate: str | None = None
    # the trace id as the record and the x-trace-id header write it, 32 hex digits: written once (formatting a
    # 128-bit int takes longer than making the whole context). Ids are W3C's: a trace id of 128 bits, a span id
    # of 64 (`spans.trace_context` reads 32 and 16 hex digits, or draws them), else OverflowError
    trace_id_hex: str = field(init=False, repr=False, compare=False)
    # the ids as a span's record writes them, 16 and 8 bytes big-endian (`otlp.encode_flow_span`; the span id's
    # in the traceparent sent upstream too): made once, here, not again by each of the call's writers
    trace_id_bytes: bytes = field(init=False, repr=False, compare=False)
    span_id_bytes: bytes = field(init=False, repr=False, compare=False)

    def __init__(
        self, trace_id: int, span_id: int, parent_span_id: int | None = None, sampled: bool = True,
        tracestate: str | None = None,
    ) -> None:  # fmt: skip
        object.__setattr__(self, "trace_id", trace_id)
        trace_id_bytes = trace_id.to_bytes(16, "big")
        object.__setattr__(self, "trace_id_bytes", trace_id_bytes)
        object.__setattr__(self, "trace_id_hex", trace_id_bytes.hex())
        object.__setattr__(self, "span_id", span_id)
        object.__setattr__(self, "span_id_bytes", span_id.to_bytes(8, "big"))
        object.__setattr__(self, "parent_span_id", parent_span_id)
        object.__setattr__(self, "sampled", sampled)
        object.__setattr__(self, "tracestate", tracestate)

    def sibling(self) -> TraceContext:
        """Another span of the proxy's beside this one: the same trace and parent, its own span id."""
        return dataclasses.replace(self, span_id=random.getrandbits(64) or 1)

    def traceparent(self) -> str:
        """The header to send upstream: the proxy's span is the upstream's parent."""
        return f"00-{self.trace_id_hex}-{self.span_id_bytes.hex()}-{'01' if self.sampled else '00'}"


@dataclass(frozen=True, slots=True, init=False)
class Call:
    """One inference call as the policy and the recorder see it, whatever the wire protocol."""

    protocol: ProtocolName
    operation: str  # gen_ai.operation.name: chat, text_completion, embeddings, infer, passthrough
    model: str  # the requested model ("" when the protocol does not say)
    trace: TraceContext
    key_sha256: str | None = None  # sha256 hex of the presented API key; the key itself is never kept
    purpose: str | None = None  # as declared by the call
    labels: frozenset[str] = frozenset()  # declared by the call (header, OIP parameter)
    detected: frozenset[str] = frozenset()  # found by detectors in the input content
    input_digest: str | None = None
    params: tuple[tuple[str, Any], ...] = ()  # gen_ai.request.* attributes
    stream: bool = False
    model_version: str | None = None  # OIP: the version named in the request
    content: tuple[str, ...] = ()  # the input text, kept only when telemetry.capture_content is on
    carries_data: bool = True  # False for metadata/health/admin RPCs: spanned, but no lineage edge
    opaque: bool = False  # a body no adapter reads: its content cannot be scanned (policy.passthrough)
    peer: tuple[str, ...] = ()  # what a verified client certificate proves (SPIFFE ID, CN=...), mTLS
    # a body read that names no model (llama.cpp's native endpoints): the "*" route's, which the model it runs may be
    # one a route limits (`policy.passthrough`: refused where `opaque_unrouted_allowed` is not)
    unrouted: bool = False
    # the characters of the input texts when `content` is not captured whole (past `CAPTURE_MAX_CHARS`), else 0: what
    # a span that cuts the content says it left out counts from these, the call's, not from what was captured
    content_chars: int = 0
    # a vLLM's or SGLang's LoRA adapter load or unload (`passthrough.Adapter.read`): routed and decided as the call of
    # the adapter it names, held as a call for it is, but it runs no weights, so no checkpoint is named for it, not
    # even a pin, and none is checked against the baseline (`baseline.NO_WEIGHTS`, what its edge records)
    runs_no_weights: bool = False

    def __init__(
        self, protocol: ProtocolName, operation: str, model: str, trace: TraceContext, key_sha256: str | None = None,
        purpose: str | None = None, labels: frozenset[str] = frozenset(), detected: frozenset[str] = frozenset(),
        input_digest: str | None = None, params: tuple[tuple[str, Any], ...] = (), stream: bool = False,
        model_version: str | None = None, content: tuple[str, ...] = (), carries_data: bool = True,
        opaque: bool = False, peer: tuple[str, ...] = (), unrouted: bool = False, content_chars: int = 0,
        runs_no_weights: bool = False,
    ) -> None:  # fmt: skip
        object.__setattr__(self, "protocol", protocol)
        object.__setattr__(self, "operation", operation)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "trace", trace)
        object.__setattr__(self, "key_sha256", key_sha256)
        object.__setattr__(self, "purpose", purpose)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "detected", detected)
        object.__setattr__(self, "input_digest", input_digest)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "stream", stream)
        object.__setattr__(self, "model_version", model_version)
        object.__setattr__(self, "content", content)
        object.__setattr__(self, "carries_data", carries_data)
        object.__setattr__(self, "opaque", opaque)
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "unrouted", unrouted)
        object.__setattr__(self, "content_chars", content_chars)
        object.__setattr__(self, "runs_no_weights", runs_no_weights)


@dataclass(frozen=True, slots=True, init=False)
class Decision:
    """What the policy decided, why, and where the call goes if it goes anywhere."""

    action: str  # allow | deny | reroute | audit-deny
    upstream: Upstream | None
    caller: str | None = None
    purpose: str | None = None
    labels: frozenset[str] = frozenset()  # every input label: declared ∪ caller's ∪ detected
    zones: tuple[str, ...] = ()  # the zones whose labels the call carries
    code: str | None = None  # the contract's error code when not allowed
    rule: str | None = None  # the rule that fired: caller:<name>, route:<model>, zone:<name>, policy.<key>
    reason: str | None = None
    approved: bool | None = None  # covered by the approved baseline (lineage.baseline); None: no baseline

    def __init__(
        self, action: str, upstream: Upstream | None, caller: str | None = None, purpose: str | None = None,
        labels: frozenset[str] = frozenset(), zones: tuple[str, ...] = (), code: str | None = None,
        rule: str | None = None, reason: str | None = None, approved: bool | None = None,
    ) -> None:  # fmt: skip
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "upstream", upstream)
        object.__setattr__(self, "caller", caller)
        object.__setattr__(self, "purpose", purpose)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "zones", zones)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "approved", approved)

    @property
    def forwards(self) -> bool:
        return self.action != DENY

    @property
    def unidentified(self) -> bool:
        """A call refused for its key (a key no caller owns, or none where anonymous calls are denied): its flow, as
        recorded and judged (its edge, the baseline's verdict), has no purpose and no labels. What it claims is an
        unknown client's, new on every call if it likes: each a new flow, a row of the lineage store. Its span and
        access line say what it claimed."""
        return self.code == INVALID_API_KEY and self.action == DENY


class KeyMemo:
    """A connection's last key and its digest (`pipeline.Pipeline.key_digest`): a client sends the same Authorization on
    every call of a keep-alive connection, which is then hashed once, not on each call (a SHA-256 and its hex, ~2 %
    of a call's CPU). One a connection, never shared: held no longer than the connection is (the config itself holds
    digests only; its callers' keys are hashed once a process too, `Pipeline._digest_of`: a key no caller owns, only
    here)."""

    auth: str | None  # the Authorization (as `key_digest` reads it, x-api-key folded in)
    digest: str

    def __init__(self) -> None:
        self.auth = None
        self.digest = ""


@dataclass(slots=True, init=False)
class Outcome:
    """What came back. Mutable while the reply streams through; recorded once, at the end."""

    started_ns: int
    ended_ns: int = 0
    first_token_ns: int = 0
    forwarded_ns: int = 0  # when the call left for the upstream (0: never forwarded)
    upstream_ns: int = 0  # when the upstream's reply ended: the upstream's time is upstream_ns - forwarded_ns
    status: int | None = None
    error_type: str | None = None
    checkpoint: str | None = None
    checkpoint_source: str | None = None  # config | upstream | response
    checkpoint_parent: str | None = None
    provider: str | None = None  # the serving engine, as the upstream's metadata says
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    output_digest: str | None = None
    output_detected: frozenset[str] = frozenset()
    content: tuple[str, ...] = ()
    # the characters of the output when `content` is not captured whole, else 0 (as `Call.content_chars`)
    content_chars: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    clock_ns: int = 0  # the wall clock less the monotonic one at the call's start (`now_ns`)
    # the TCP peer's address and port (an IPv6 one bare), its connection's, made once for it (`client_of`); None: not
    # an IP socket's, or `logging.client_address: false`
    client: tuple[str, int] | None = None

    def __init__(
        self, started_ns: int, ended_ns: int = 0, first_token_ns: int = 0, forwarded_ns: int = 0, upstream_ns: int = 0,
        status: int | None = None, error_type: str | None = None, checkpoint: str | None = None,
        checkpoint_source: str | None = None, checkpoint_parent: str | None = None, provider: str | None = None,
        response_model: str | None = None, response_id: str | None = None, finish_reasons: tuple[str, ...] = (),
        input_tokens: int | None = None, output_tokens: int | None = None, output_digest: str | None = None,
        output_detected: frozenset[str] = frozenset(), content: tuple[str, ...] = (), content_chars: int = 0,
        extra: dict[str, Any] | None = None, clock_ns: int = 0, client: tuple[str, int] | None = None,
    ) -> None:  # fmt: skip
        self.started_ns = started_ns
        self.ended_ns = ended_ns
        self.first_token_ns = first_token_ns
        self.forwarded_ns = forwarded_ns
        self.upstream_ns = upstream_ns
        self.status = status
        self.error_type = error_type
        self.checkpoint = checkpoint
        self.checkpoint_source = checkpoint_source
        self.checkpoint_parent = checkpoint_parent
        self.provider = provider
        self.response_model = response_model
        self.response_id = response_id
        self.finish_reasons = finish_reasons
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.output_digest = output_digest
        self.output_detected = output_detected
        self.content = content
        self.content_chars = content_chars
        self.extra = {} if extra is None else extra
        self.clock_ns = clock_ns
        self.client = client

    def now_ns(self) -> int:
        """A mark of the call (forwarded, first token, reply ended, ended): the wall time it started at plus the
        monotonic time since, so a wall clock stepped while it runs (NTP) makes no duration negative or an hour long,
        nor a span end before its start."""
        return _monotonic_ns() + self.clock_ns
