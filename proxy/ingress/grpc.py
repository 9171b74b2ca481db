"""The gRPC ingress: a grpc.aio server proxying the OIP v2 GRPCInferenceService to gRPC upstreams.

Every method is handled generically on raw bytes. Inference (ModelInfer, ModelStreamInfer) is read by
the OIP gRPC adapter and walked by an Exchange like any HTTP call; health, metadata, config, statistics
and status RPCs only check the caller's key; any other method of any service (Triton's repository loads,
shared-memory registration, trace settings) is opaque: decided on its metadata (`policy.passthrough`),
then passed through as a byte stream in both directions and recorded.

mypyc compiles this module (setup.py). So the streaming handlers are coroutines on grpc.aio's reader/writer
API (`context.read`, `context.write`; the upstream's call `read`, `write`, `done_writing`), not async
generators; and nothing here awaits while an exception is being handled (in an `except` or `finally` block, or
an `async with` exit): a compiled coroutine suspended there leaves that exception as the thread's handled
exception meanwhile, where another call's grpc machinery met it (a cancelled stream's CancelledError ended the
next passthrough call). Handlers keep what was raised (`failure`), then end the call (`_Ends.close`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import traceback
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final, NoReturn
from urllib.parse import unquote

import grpc
import grpc.aio

from proxy.config import Address, Limits, Tls, Upstream
from proxy.errors import (
    DeadlinePassed,
    DrainCut,
    HeaderTooLarge,
    InvalidRequest,
    LeftUnread,
    MessageTimeout,
    Overloaded,
    ProxyError,
    ReplyTooLarge,
    RequestTooLarge,
    UpstreamUnavailable,
    echoed,
)
from proxy.exchange import CLIENT_GONE, DRAIN_CUT, Exchange
from proxy.ingress.grpc_entry import bound1, bound3
from proxy.ingress.listening import Listeners, listening, sockets, still_listening
from proxy.pipeline import Pipeline, PipelineRef
from proxy.protocols import GRPC_ADAPTERS, Adapter, Header, Target
from proxy.protocols.oip import KEY_BIN, binary_text, header_text
from proxy.protocols.oip_grpc import HEALTH_CHECK, HEALTH_WATCH, PASSTHROUGH
from proxy.record.sinks import Durable
from proxy.tls import ListenerFiles, check_pair, identities_from_auth_context, listener_files
from proxy.transport.grpc_channels import (
    GrpcChannels,
    SentMetadata,
    call_window,
    grpc_ms,
    reply_limit,
    upstream_status,
    window_options,
)
from proxy.transport.http11 import keep

_NOT_FORWARDED: Final = frozenset(
    {"content-type", "te", "user-agent", "traceparent", "grpc-accept-encoding", "grpc-timeout"}
)
# the caller's key, in either form (`-bin`: binary metadata), kept from the upstream once callers have keys or the
# upstream has its own
_KEY_FIELDS: Final = frozenset({"authorization", "authorization-bin"})
_STATUS: Final = {code.name: code for code in grpc.StatusCode}
DEADLINE_PASSED = "deadline_exceeded"  # error.type of a call cut off by its client's own deadline
# what ends a call whose request message was not whole when grpc failed it (`GrpcIngress._left_unread`), by the cause
# `_cancelled` names: a client's leaving is `LeftUnread`
_UNREAD_ENDS: Final[dict[str, type[ProxyError]]] = {DRAIN_CUT: DrainCut, DEADLINE_PASSED: DeadlinePassed}
_UNREAD_REASON: Final = "the call ended before its request message had arrived whole"
# A client's deadline reaches the proxy as its cancel (RST_STREAM), which may come a little before the
# proxy's own copy of the deadline expires (grpc-timeout is relative: it is read after its transit);
# measured up to 4 ms on loopback for streams. A cancel this close to the deadline is the deadline's.
DEADLINE_SLACK_S = 0.05
# grpc's receive limit is limits.max_body_bytes plus 1/_OVER of it: a quarter more (`_open`, `_too_large`)
_OVER: Final = 4
# grpc's default limit on the metadata a server or a channel takes (`grpc.max_metadata_size`, a soft limit: past it
# grpc refuses a call at random, RESOURCE_EXHAUSTED, the more often the nearer it is to its hard limit, 16 KiB by
# default, past which it refuses every call). An upstream's server (Triton's, MLServer's) keeps grpc's defaults, so
# a call whose metadata, as it would be forwarded, is over it is refused by the proxy itself, every time, before it is
# read (`_metadata_over`)
UPSTREAM_METADATA_BYTES: Final = 8192
# what a call's metadata gains on its way to the upstream, as grpc counts it (each key and value and 32 bytes), beside
# its method (`:path`) and an upstream's key (`_KEY_ADDS`): grpc's :authority, :method, :scheme, te, content-type,
# user-agent, grpc-accept-encoding and grpc-timeout, the proxy's traceparent, and its x-forwarded-for (", " and an
# address, `_client_address`) and x-forwarded-proto
_GRPC_ADDS: Final = 768 + 160
_KEY_ADDS: Final = 52  # an upstream's `authorization: Bearer <api_key>` beside its key (any length: a JWT's is 1 KiB)
# A grace so long that only the ingress's own cut ends it (see `stop`)
_UNTIL_CUT_S = 1e9
# how often and how long a reload waits for the old server's listening socket to close (`GrpcIngress._closed`)
_CLOSE_POLL_S, _CLOSE_WAIT_S = 0.005, 2.0
_EOF: Final = grpc.aio.EOF  # what `read` returns, on either side, once the other has ended its messages

log = logging.getLogger("lineage_proxy.grpc")

# The generation of the server a call came to (`GrpcIngress.replace`): grpc.aio starts each call's task from its
# server's serving task, which copies this from the context the server was started in
_SERVER: contextvars.ContextVar[int] = contextvars.ContextVar("lineage_proxy_grpc_server", default=0)

Metadata = Sequence[tuple[str, str | bytes]]
# The caller's metadata as grpc.aio handed it to `GrpcIngress.service` (`HandlerCallDetails.invocation_metadata`), set
# there in the call's own task, where its handler runs next (`_received`): grpc.aio builds it for that look-up, and
# `context.invocation_metadata()` would build it again (a namedtuple a key, in Python): ~14,500 instructions of a small
# ModelInfer's, before its request goes upstream (callgrind)
_ARRIVED: contextvars.ContextVar[Metadata | None] = contextvars.ContextVar("lineage_proxy_grpc_metadata", default=None)
# a health watch's request, at most (a HealthCheckRequest names a service): a watch holds it for as long as it lasts (grpc
# keeps it in its call), counted in limits.bodies_max_bytes; unbounded, watches held that budget for good (`watch`)
WATCH_REQUEST_BYTES: Final = 4096


# calls beyond limits.grpc_max_calls that only grpc's standard health check (grpc.health.v1 Check and Watch) may
# take (`GrpcIngress.service`): a Kubernetes gRPC probe, or a load balancer's, is answered while the listener is busy
# (refused, it read a busy pod as unhealthy and killed it exactly then). A health call's request is a service name.
# A Watch (a channel's client-side health checking) lasts as long as its channel: it may take WATCH_RESERVE of them
# only, the rest are a Check's (short), so no number of watches keeps a probe out (16 took the whole reserve)
HEALTH_RESERVE: Final = 16
WATCH_RESERVE: Final = 8
_RESERVES: Final = {HEALTH_CHECK: HEALTH_RESERVE, HEALTH_WATCH: WATCH_RESERVE}
BUSY: Final = "the gRPC listener is serving limits.grpc_max_calls calls at once; try again later"


def _timeouts(limits: Limits) -> tuple[float, float, int, int, int, int]:
    """What of `limits` a grpc server takes at its start besides max_body_bytes: its pings, idle connections closed,
    handshakes, the connections it takes, the calls each may hold at once, the calls it holds at once and each
    call's receive window (`GrpcIngress._open`)."""
    return (limits.idle_timeout_s, limits.header_timeout_s, limits.max_connections, limits.max_concurrent_streams,
            limits.grpc_max_calls, call_window(limits))  # fmt: skip


class _Received:
    """The caller's metadata as every step of a call needs it, from one walk of it (`_read`): it was walked four times
    a call (its text by key, its size and values as they would reach the upstream, what is forwarded, its
    `x-forwarded-for`)."""

    # text metadata by key: the call's `Header`. A key sent several times is one list, joined with ',' as HTTP does, so
    # a second `x-data-labels` adds labels and a second `x-purpose` is refused (never "last one wins"). Labels and
    # purpose sent as binary metadata (`x-data-labels-bin`, `x-purpose-bin`) are theirs too, their bytes read as a
    # header's are: passed over, such a call went to the model unlabelled. A binary key (`authorization-bin`) is here
    # by its own name, its bytes as text, read where it is passed on (it is never the caller's key to the proxy)
    found: dict[str, str]
    entries: int  # how many (`limits.max_headers`)
    # the bytes of the entries that reach the upstream as they came, as grpc counts them (each key and value and 32);
    # what the proxy adds is counted by `_metadata_over`
    size: int
    unsendable: str | None  # the first key forwarded as it came with a text value grpc will not send (`_unsendable`)
    # the entries forwarded as they came but the caller's key; its key (`authorization`, `-bin` too), each with where it
    # came among them, which the upstream is sent or not as the call decides (`GrpcIngress._forward_metadata`)
    forwarded: list[tuple[str, str | bytes]]
    keys: list[tuple[int, tuple[str, str | bytes]]]
    traced: bool  # `forwarded` holds a `tracestate`
    # a key came more than once (or a text key and its `-bin` form both came): the metadata sent upstream may repeat
    # one, which grpc.aio sends grouped by key (`SentMetadata`). False: no key of the caller's repeats in it
    repeats: bool
    callers: list[str]  # the caller's `x-forwarded-for` values, in order (empty ones aside)

    def __init__(self, received: Metadata) -> None:
        found: dict[str, str] = {}
        forwarded: list[tuple[str, str | bytes]] = []
        keys: list[tuple[int, tuple[str, str | bytes]]] = []
        callers: list[str] = []
        size = 0
        unsendable: str | None = None
        traced = False
        repeats = False
        # the binary keys (`found` has text keys, two binary ones by their text twins' names, and `authorization-bin`)
        binary: set[str] | None = None
        for key, value in received:
            if isinstance(value, str):
                if key in found:
                    found[key] = f"{found[key]},{value}"
                    repeats = True
                else:
                    found[key] = value
                if key in _NOT_FORWARDED:
                    continue
                size += len(key) + len(value) + 32
                if not (value.isascii() and value.isprintable()) and unsendable is None and key not in _DROPPED:
                    unsendable = key
                if key in _CLIENT_CLAIMS:  # (text keys all: a binary one ends in `-bin`)
                    if key == "x-forwarded-for" and value:
                        callers.append(value)
                    continue
            else:
                if binary is None:
                    binary = {key}
                elif key in binary:
                    repeats = True
                else:
                    binary.add(key)
                if key in _READ_BINARY:
                    text = value.decode("utf-8", "surrogateescape")
                    found[key[:-4]] = f"{found[key[:-4]]},{text}" if key[:-4] in found else text
                elif key == KEY_BIN:  # read where it is passed on (`Pipeline._passed_on`), as text is
                    text = binary_text(value)  # (bytes that are not UTF-8: `scan:truncated`)
                    found[key] = f"{found[key]},{text}" if key in found else text
                size += len(key) + len(value) + 32  # (never a transport key: those are text)
            if key in _CALL_DECIDES:
                if key == "tracestate":
                    traced = True
                else:
                    keys.append((len(forwarded) + len(keys), (key, value)))
                    continue
            if not key.startswith(":"):
                forwarded.append((key, value))
        self.found = found
        self.entries = len(received)
        self.size = size
        self.unsendable = unsendable
        self.forwarded = forwarded
        self.keys = keys
        self.traced = traced
        self.callers = callers
        self.repeats = repeats


_READ_BINARY: Final = frozenset({"x-data-labels-bin", "x-purpose-bin"})
# a caller's entries forwarded or not as the call decides (`GrpcIngress._forward_metadata`): its key, its tracestate
_CALL_DECIDES: Final = frozenset({"authorization", "authorization-bin", "tracestate"})


def _metadata_over(received: _Received, method: str, key_bytes: int = 0) -> ProxyError | None:
    """A refusal of a call whose metadata, as it would reach the upstream (`_GRPC_ADDS`; `key_bytes`: the longest of the
    upstreams' keys, which it is read too early to know which it goes to), is over `UPSTREAM_METADATA_BYTES`, as grpc
    counts it: the upstream's grpc would refuse it at random, and the labels in it would come back in the reply's
    metadata, which the client's grpc refuses so. Or of a call with a text value forwarded as it came that grpc will
    not send (`_unsendable`). None if it fits."""
    if received.unsendable is not None:
        return _unsendable(received.unsendable)
    size = _GRPC_ADDS + len(method) + 37 + received.size  # (:path's key and its 32)
    if key_bytes:
        size += _KEY_ADDS + key_bytes
    if size <= UPSTREAM_METADATA_BYTES:
        return None
    return RequestTooLarge(
        f"this call's metadata would reach the upstream as about {size} bytes (each key and value and 32, as grpc "
        f"counts them): over {UPSTREAM_METADATA_BYTES}, the limit a gRPC server takes by default "
        "(grpc.max_metadata_size), past which it refuses calls at random; send fewer or shorter labels or other "
        "metadata"
    )


# text keys of the caller's never forwarded as they came (`_forward_metadata`): a caller's claims the proxy drops, and a
# tracestate, dropped unless the span keeps it (W3C's printable ASCII)
_DROPPED: Final = frozenset({"x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded", "tracestate"})


def _unsendable(key: str) -> InvalidRequest:
    """A refusal of a call with a text value grpc will not send on (printable ASCII only, grpc's own check as the
    upstream's call is made), which a client not on grpc's core (raw HTTP/2, another hop) can send and grpc's server
    takes: forwarded, it failed the call as the proxy's internal error, logged with its traceback every time, where
    the HTTP listener refuses a control character in a field (400) as this does."""
    return InvalidRequest(
        f"metadata {echoed(key)}: a text value holds a character other than printable ASCII, which gRPC sends in "
        "no text value, so the upstream could not be sent it; send such bytes under a key ending in '-bin'"
    )


def _spaced_tracestate(pairs: list[tuple[str, str | bytes]]) -> list[tuple[str, str | bytes]]:
    """`pairs` with each TAB in a `tracestate` value a space. A tracestate the span keeps (`kept_tracestate`) holds a
    TAB only as W3C's optional white space around a list-member, where a space means the same; but grpc's client sends
    printable ASCII alone, so forwarded as it came (from a client not on grpc's core), it failed the call as the
    proxy's internal error."""
    return [(k, v.replace("\t", " ") if k == "tracestate" and isinstance(v, str) else v) for k, v in pairs]


def _received(context: grpc.aio.ServicerContext[Any, Any]) -> Metadata:
    """The caller's metadata, read once a call: as `service` was given it (`_ARRIVED`), else from `context`, which
    builds it anew (a namedtuple a key, in Python) each time."""
    arrived = _ARRIVED.get()
    if arrived is not None:
        return arrived
    return context.invocation_metadata() or ()


def _read(context: grpc.aio.ServicerContext[Any, Any]) -> _Received:
    """The caller's metadata, read and walked once a call."""
    return _Received(_received(context))


def _certificates(
    tls: Tls, files: ListenerFiles | None = None
) -> tuple[grpc.ServerCertificateConfiguration, bytes | None]:
    """The listener's certificate and key, as `files` holds them (a reload's, read off the event loop: `ListenerRead`)
    or as read now (None: each file once, `listener_files`), with the client CA it checks client certificates against;
    and that CA. Raises OSError (ssl.SSLError) unless the key is one grpc can use and matches the certificate
    (`check_pair`): a renewal half written (cert-manager writes the two files one after the other), or not PEM, would
    be taken silently here and refused by grpc's core at the next handshake."""
    cert, key, client_ca = files if files is not None else listener_files(tls)
    check_pair(cert, key)
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca), client_ca


# what a caller says about where the call came from: never passed on as it came (`GrpcIngress._forward_metadata`)
_CLIENT_CLAIMS: Final = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded"}
)


def _client_address(client: tuple[str, int] | None) -> str:
    """The client's address (`_client`: from grpc's name of a call's peer), as nginx's `$remote_addr` has it (an IPv6
    one bare); `unknown` for a peer that is neither IPv4 nor IPv6."""
    return client[0] if client is not None else "unknown"


def _client(peer: str) -> tuple[str, int] | None:
    """The client's address and port in grpc's name of a call's peer (`ipv4:127.0.0.1:5000`,
    `ipv6:%5B::1%5D:5000`), as the record names it (`Outcome.client`); None for one that is neither (`unix:...`).
    Kept by the peer's name: the same for every call of a connection, so worked out once for it."""
    client = _CLIENTS.get(peer)
    if client is None:
        kind, _, rest = peer.partition(":")
        host, _, port = rest.rpartition(":")
        if kind == "ipv6":
            host = unquote(host).strip("[]")
        known = kind in ("ipv4", "ipv6") and host and port.isdigit()
        client = (host, int(port)) if known else ("", 0)
        keep(_CLIENTS, peer, client, 128, 1024)
    return client if client[0] else None


_CLIENTS: dict[str, tuple[str, int]] = {}


def _peer(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, ...]:
    """What the client's certificate proves, on a TLS listener (else ()). grpc asks for client
    certificates only when it requires them (`listen.tls.require_client_cert: true`)."""
    auth = context.auth_context()
    return identities_from_auth_context(auth) if auth else ()


# an upstream's metadata keys never passed on (`_pass`): transport's, and those only the proxy sets (`x-lineage-*` too;
# the upstream's trace context, which names its span or a trace of its own, as `http.OWNED` says)
_NOT_PASSED: Final = frozenset(
    {"content-type", "grpc-status", "x-data-labels", "x-trace-id", "x-data-labels-bin", "x-trace-id-bin",
     "traceparent", "traceresponse"}
)  # fmt: skip


def _pass(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[tuple[str, str | bytes]]:
    """The upstream's own metadata, less transport keys, the keys only the proxy may set (in their binary form too: the
    proxy reads `x-data-labels-bin` as labels, as the next hop may), and text values grpc will not send (printable
    ASCII only): another hop or a server that is not grpc's may send one, which grpc's client
    takes, and passed on it failed the whole reply (INTERNAL "Invalid metadata"). (grpc.aio's Metadata is iterated,
    never asked its length: that is Python too.)"""
    if metadata is None:
        return []
    return [
        (k, v)
        for k, v in metadata
        if not k.startswith(":")
        and k not in _NOT_PASSED
        and not k.startswith("x-lineage-")
        and (isinstance(v, bytes) or (v.isascii() and v.isprintable()))
    ]


def _reply_metadata(context: grpc.aio.ServicerContext[Any, Any], trailing: Metadata) -> None:
    """A unary reply's metadata: the lineage (with the upstream's trailers) as trailing metadata, which
    grpc.aio sends in the one batch that carries the reply and the status. grpc.aio cannot hold initial
    metadata back for that batch (it sends it empty there; `send_initial_metadata` is a batch of its own,
    a round through grpc's core per call), so initial metadata is sent only when the upstream sent some, by the
    handler, before the call is recorded: a client that leaves in that round (its cancel, its deadline, the drain's
    cut) is recorded gone (`_Ends.unsent`), where, recorded first, it was recorded as answered."""
    context.set_trailing_metadata(tuple(trailing))


def _rpc(method: str) -> dict[str, Any]:
    service, _, name = method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name or method}


class _Room:
    """Room for the request messages the gRPC listener asks grpc for before their calls are decided (a unary call's, a
    stream's first: `GrpcIngress._request`). grpc reads a message whole before the proxy sees it, and while a read is
    asked it opens the stream's window to the size the message's prefix announces (up to its receive limit): each read
    asked is that much memory a peer may fill, whatever it sends in the end. So each is counted at that limit (`each`),
    at most limits.grpc_arriving_max_bytes (`most`) at once, one always; a read past it waits its turn, in order
    (`wait`), its call holding only its window meanwhile (a read not asked lets grpc take no more). With room, a read
    costs two additions and a comparison."""

    def __init__(self) -> None:
        self.taken = 0  # bytes counted for the reads asked now
        self.each = 0  # what a read is counted: the serving server's receive limit (`GrpcIngress._open`)
        self.most = 0  # limits.grpc_arriving_max_bytes in force (`GrpcIngress._sweep` follows a reload)
        self.waiting: deque[asyncio.Future[int]] = deque()

    def take(self) -> int:
        """Room for one read now: what it is counted, to `give` back once it returns; 0 when there is none, or when
        calls wait for it (they go first): then `wait`."""
        each, taken = self.each, self.taken
        if self.waiting or (taken and taken + each > self.most):
            return 0
        self.taken = taken + each
        return each

    async def wait(self) -> int:
        """Room for one read, once the calls before it have theirs and there is room: what it is counted."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            if not future.done():
                future.cancel()
            if not future.cancelled():  # room given just as the call was cancelled (its client left, or it was late)
                self.give(future.result())
            elif future in self.waiting:  # (`give` passes over one cancelled since)
                self.waiting.remove(future)
            raise

    def give(self, taken: int) -> None:
        """Give back what a read was counted (0: nothing, only wake the calls that wait if there is room now)."""
        self.taken -= taken
        if self.waiting:
            self._wake()

    def _wake(self) -> None:
        """Room to the calls that wait, in order, while there is room."""
        waiting, each = self.waiting, self.each
        while waiting and (not self.taken or self.taken + each <= self.most):
            future = waiting.popleft()
            if not future.done():  # (a call cancelled as it waited: its task has not yet run to take it out)
                self.taken += each
                future.set_result(each)


# a generic handler to grpc, which asks it only for `service`: not a subclass of grpc.GenericRpcHandler (an ABC),
# so that mypyc compiles it as a native class
class GrpcIngress:
    def __init__(self, ref: PipelineRef, channels: GrpcChannels) -> None:
        self.ref = ref
        self.channels = channels
        self._server: grpc.aio.Server | None = None
        self._bound = Address("", 0)  # the address it listens on (the port the kernel picked, for port 0)
        # the serving server's listening sockets, those it opened (`listening`): a reload waits for them to close
        self._listeners: Listeners = {}
        self._replacing = asyncio.Lock()  # one reload's new server at a time (`replace`)
        self._retiring: set[asyncio.Future[None]] = set()  # servers a reload replaced, ending their calls
        self._secure = False  # a TLS listener asking for client certificates: only then can a peer show one
        self._scheme = "http"  # the listener's, as the upstream is told it (x-forwarded-proto)
        # what the serving server was opened with, which only a new server can change (`replace`): whether it
        # requires a client certificate and its client CA's contents; limits.max_body_bytes; limits.idle_timeout_s,
        # header_timeout_s, max_connections, max_concurrent_streams and grpc_stream_window_bytes (`_timeouts`)
        self._client_auth: tuple[bool, bytes | None] | None = None  # None: plaintext
        self._limit = 0
        self._timeouts = (0.0, 0.0, 0, 0, 0, 0)
        # a renewed certificate and key for the serving server's next handshake (`_renewal`), once: a list, which
        # grpc's thread and the loop each change in one step (`pop`, slice assignment)
        self._renewed: list[grpc.ServerCertificateConfiguration] = []
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}  # by OIP method, made on its first call
        self._rpcs: dict[str, dict[str, Any]] = {}  # its span attributes (`_rpc`), by OIP method, as `_handlers`
        self._metadata_limit = 0  # limits.max_header_bytes, as the serving server took it (`_open`)
        # the longest upstream key of a pipeline (`_bound_metadata`), found once a pipeline: its config's upstreams do not change
        self._keys_of: object = None
        self._key = 0
        self._generation = 0  # of the server serving new calls: one more for each a reload starts (`replace`)
        self._cutting: set[int] = set()  # generations whose drain's time ran out: what they cancel, the drain cut
        self._cut = 0  # calls the drain cut
        # the upstream's calls of the health watches relayed, by the generation of the server each came to (`watch`),
        # and the channel each is on; those a retiring server's drain, or a reload retiring their channel, ended
        self._watches: dict[Any, int] = {}
        self._watched_on: dict[Any, grpc.aio.Channel] = {}
        self._drained: set[Any] = set()
        self._callables: dict[tuple[str, str], tuple[grpc.aio.Channel, Any]] = {}  # (`_callable`)
        # the loop serving the listener (`start`), kept: `asyncio.get_running_loop()` is a getpid() system call on
        # Python 3.11
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spent: list[tuple[Any, ...]] = []  # what unary calls left, freed on the next turn (`_free_after_reply`)
        # bytes of the unary requests being served and of the relayed streams' messages until their upstream's call has
        # taken them (`_hold`, `_let_go`), at most limits.bodies_max_bytes
        self.held = 0
        # the calls being served, every server generation together (`service`), and limits.grpc_max_calls as the
        # serving server was opened with (`_open`); the handler of a call refused past it (`_busy`)
        self.calls = 0
        self._max_calls = 0
        self._busy_handler = grpc.stream_stream_rpc_method_handler(bound1(self.busy, BUSY))
        self.refused_busy = 0  # calls refused so (also lineage_proxy_grpc_calls_refused_total)
        self.hurried = asyncio.Event()  # drains are cut short now (`_retire`): a second Ctrl-C, or SIGUSR1
        # the calls whose request message (a unary call's, a stream's first) is still arriving, by task, each with the
        # sweep's clock as it started (`_request`; in the order they started); those the sweep found late, cancelled
        # by it, and its clock (`_sweep`: one clock read a sweep, none a call)
        self._arriving: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._now = 0.0
        self._sweeper: asyncio.Task[None] | None = None
        # the request messages asked of grpc before their calls are decided, each counted at the most it may take, at
        # most limits.grpc_arriving_max_bytes at once (`_request`); a call whose message is late having waited for room
        # half of limits.grpc_request_timeout_s or more is refused `overloaded` (`_unread`)
        self.room = _Room()
        # grpc's standard health checks' own, HEALTH_RESERVE of them (`service`): a probe is answered while clients
        # hold back their messages in all of `room`, as while the listener is busy
        self.health_room = _Room()
        self.hurried_by = "a second SIGINT"  # what cut them short, as their log line names it (`ProxyProcess.hurry`)

    # -- lifecycle

    async def start(self, address: Address, tls: Tls | None = None, max_body_bytes: int | None = None) -> Address:
        limit = self.ref.current.config.limits.max_body_bytes if max_body_bytes is None else max_body_bytes
        self._loop = asyncio.get_running_loop()
        self._server, port = await self._open(address, tls, limit, self._generation)
        self._bound = Address(address.host, port)
        self._now = self._loop.time()
        self._sweeper = self._loop.create_task(self._sweep())
        return self._bound

    async def _sweep(self) -> None:
        """End the calls whose request message is not whole `limits.grpc_request_timeout_s` (the config in force's)
        after they started (`_request`): each is cancelled, marked late, and ended so by its handler. A message still
        arriving is grpc's alone (the proxy sees neither its size nor its bytes), held in full as it comes: a client
        that never finished one held it, and its call's place among grpc_max_calls, for good. Sweeps at most every
        second (a quarter of the timeout, when shorter): a call is ended between the timeout and twice a sweep after."""
        loop = asyncio.get_running_loop()
        arriving, late = self._arriving, self._late
        while True:
            limits = self.ref.current.config.limits
            timeout = limits.grpc_request_timeout_s
            if self.room.most != limits.grpc_arriving_max_bytes:  # a reload changed it: calls waiting may fit now
                self.room.most = limits.grpc_arriving_max_bytes
                self.room.give(0)
            every = min(1.0, timeout / 4)
            await asyncio.sleep(every)
            now = self._now = loop.time()
            while arriving:
                task, started = next(iter(arriving.items()))
                if now - started < timeout + every:  # (a call's start is the clock of the sweep before it)
                    break
                del arriving[task]
                if not task.done():
                    late.add(task)
                    task.cancel()

    async def _open(
        self,
        address: Address,
        tls: Tls | None,
        max_body_bytes: int,
        generation: int,
        files: ListenerFiles | None = None,
    ) -> tuple[grpc.aio.Server, int]:
        """A server on `address`; its calls run with `_SERVER` set to `generation` (the context its serving
        task, which starts each call's, is made in); `files`: its TLS files as a reload read them (None: read now)."""
        # grpc refuses a request message over its receive limit (decompressed) itself, RESOURCE_EXHAUSTED, at its
        # length prefix (grpcio >= 1.83.1), before any handler runs: unrecorded. Its limit is a quarter above
        # limits.max_body_bytes, so that a message over ours by up to that reaches the handler, which refuses it so
        # and records it (`_too_large`); grpc still holds no message larger. Replies are bounded on the
        # proxy's channels to upstreams (`proxy.transport.grpc_channels.reply_limit`)
        limit = min(max_body_bytes + max_body_bytes // _OVER, 2**31 - 1)  # grpc's option is a C int
        # a connection holds at most limits.max_concurrent_streams calls at once (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS,
        # which grpc sends in its first SETTINGS): a client's channel keeps its further calls waiting until one ends, and
        # a stream opened past it is refused (RST_STREAM REFUSED_STREAM) before any handler runs. Unbounded, one client
        # connection held 3,000 calls at once, each with its upstream call and its memory (HTTP/1.1: one at a time)
        streams = min(self.ref.current.config.limits.max_concurrent_streams, 2**31 - 1)  # (a C int)
        # a client's TLS handshake and HTTP/2 preface have limits.header_timeout_s, as the HTTP listener's TLS
        # handshake has (grpc's own default, 120 s, let clients that never finish one hold a socket each that long)
        limits = self.ref.current.config.limits
        handshake_ms = grpc_ms(limits.header_timeout_s)
        # a client gone without a word (its host down, a NAT's mapping dropped, the process hung) sends no FIN: grpc's
        # keepalive (2 h by default) let it hold its connection, and every call on it with its upstream's, that long.
        # A connection silent for limits.idle_timeout_s is pinged, and closed when the ping is not answered within
        # limits.header_timeout_s (its calls then end as a client that left: recorded `client_disconnected`, the
        # upstream's cancelled); one with no call for limits.idle_timeout_s is closed (GOAWAY: the client's channel
        # connects again for its next call), as an idle HTTP/1.1 connection is
        idle_ms = grpc_ms(limits.idle_timeout_s)
        # a call's metadata is bounded by limits.max_header_bytes, as an HTTP request's head is: grpc's soft and hard
        # limits alike, so that grpc takes every call under it and refuses every call over it (RESOURCE_EXHAUSTED; grpc
        # 1.85 starts such a call first: its handler runs and sees a cancel, recorded as a client that left). grpc's
        # defaults (8 KiB soft, 16 KiB hard) refused calls in between at random: 64 labels of 128 characters in
        # x-data-labels, which the labels' grammar allows, failed one call in five
        metadata = min(limits.max_header_bytes, 2**31 - 1)
        # past limits.max_connections, grpc closes a new connection as it accepts it (the client gets UNAVAILABLE):
        # unbounded, one client opening connections held a file descriptor each until the process could accept none.
        # grpc core takes a bound below INT_MAX only: 2**31 - 1 fails its check (the process aborts), past it the C int
        # overflows (OverflowError); the config takes any whole number
        connections = min(limits.max_connections, 2**31 - 2)
        # what grpc reads of a call's requests ahead of the proxy, limits.grpc_stream_window_bytes a call (`window_options`):
        # measured from the bandwidth-delay product, an upload to an upstream that reads nothing held 129 MiB at 20 ms
        # round trip, 463 MiB and growing at 80 ms. At most limits.grpc_max_calls calls at once, all connections
        # together (counted by the proxy from a call's start, before its request arrives: `service`), each reading
        # ahead at most bodies_max_bytes / grpc_max_calls (`call_window`): calls were bounded only by
        # max_connections x max_concurrent_streams, ~35 MiB each that the proxy did not read. Not grpc's own count
        # (maximum_concurrent_rpcs): it refused health checks alike, and its refusals reached no handler, so nothing
        # counted them
        server = grpc.aio.server(options=[*window_options(call_window(limits)),
            ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 1),
            ("grpc.max_metadata_size", metadata), ("grpc.absolute_max_metadata_size", metadata),
            ("grpc.server_handshake_timeout_ms", handshake_ms), ("grpc.max_connection_idle_ms", idle_ms),
            ("grpc.keepalive_time_ms", idle_ms), ("grpc.keepalive_timeout_ms", handshake_ms),
            ("grpc.http2.ping_timeout_ms", handshake_ms),  # (without it grpcio 1.85 waits on a ping's answer for good)
            ("grpc.max_allowed_incoming_connections", connections), ("grpc.max_concurrent_streams", streams),
        ])  # fmt: skip
        server.add_generic_rpc_handlers((self,))
        before = sockets()  # (its listening sockets are the ones it opens: `_listeners`)
        failure: BaseException | None = None
        try:
            if tls is None:
                port = server.add_insecure_port(str(address))
                client_auth = None
            else:
                # its certificate and key can be renewed for new handshakes without a new server (`_renewal`)
                certificates, client_ca = _certificates(tls, files)
                client_auth = (tls.require_client_cert, client_ca)
                credentials = grpc.dynamic_ssl_server_credentials(
                    certificates, self._renewal, require_client_authentication=tls.require_client_cert
                )
                self._renewed.clear()  # this server's files are read now
                port = server.add_secure_port(str(address), credentials)
            token = _SERVER.set(generation)
            try:
                await server.start()
            finally:
                _SERVER.reset(token)
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc
        if failure is not None:
            await server.stop(None)  # a port bound but never served would take a share of new connections
            raise failure
        self._listeners = listening(port, opened_since=before)
        self._secure = tls is not None and tls.require_client_cert  # grpc asks for a client certificate only then
        self._scheme = "https" if tls is not None else "http"
        self._client_auth, self._limit, self._timeouts = client_auth, max_body_bytes, _timeouts(limits)
        self._metadata_limit = limits.max_header_bytes
        self._max_calls = limits.grpc_max_calls
        # what a read may take: grpc's receive limit (a reload that changes it starts a new server)
        self.room.each, self.room.most = limit, limits.grpc_arriving_max_bytes
        self.health_room.each, self.health_room.most = limit, HEALTH_RESERVE * limit
        self.room.give(0)  # (calls waiting may fit now)
        self.health_room.give(0)
        return server, port

    def _renewal(self) -> grpc.ServerCertificateConfiguration | None:
        """What grpc asks before every new TLS handshake: a renewed certificate and key to use from now on, once
        (None: keep the ones in use). Called on one of grpc's own threads."""
        try:
            return self._renewed.pop()
        except IndexError:
            return None

    def _renewed_certificates(
        self, tls: Tls | None, max_body_bytes: int, files: ListenerFiles | None
    ) -> grpc.ServerCertificateConfiguration | None:
        """The reload's certificate and key when its listener settings differ from the serving server's in those
        only (their files named or renewed in place): new handshakes take them without a new server; else None.
        Client authentication (the client CA's contents, whether a certificate is required) is a connection's
        from its handshake on, and limits.max_body_bytes, idle_timeout_s, header_timeout_s, max_connections and
        max_concurrent_streams a server's from its
        start (the config in force's: the reload's): either needs a new server.
        Raises OSError as `_certificates`."""
        if tls is None or self._client_auth is None or max_body_bytes != self._limit:
            return None
        if _timeouts(self.ref.current.config.limits) != self._timeouts:  # a server's from its start, as the limit
            return None
        if self.ref.current.config.limits.max_header_bytes != self._metadata_limit:  # (as the limit)
            return None
        certificates, client_ca = _certificates(tls, files)
        return certificates if (tls.require_client_cert, client_ca) == self._client_auth else None

    async def replace(
        self, tls: Tls | None, max_body_bytes: int, grace_s: float, files: ListenerFiles | None = None
    ) -> None:
        """A reload changed the listener's TLS (its files, renewed in place or not, the client CA, whether a
        certificate is required) or limits.max_body_bytes, idle_timeout_s, header_timeout_s, max_connections or
        max_concurrent_streams. A new certificate or
        key alone is read now and taken by the next handshakes (`_renewed_certificates`): the server and its connections stay. Anything else: a new server on
        the same port (SO_REUSEPORT) takes every new connection from now on, its files read now; the old one
        stops accepting and sends its connections GOAWAY, so each client's next call makes a new connection and
        a new handshake under the new rules (grpc cannot close a connection by itself, and a connection keeps the
        identity its handshake proved). The old server's calls in flight have `grace_s` to end, then are cut, as
        a drain's; calls grpc had read but not yet handed to the proxy when it stopped are ended by grpc itself
        (CANCELLED, never recorded: README, TLS), which renewing in place avoids. `files`: the TLS files as the reload
        read them, off the event loop (None: read now, on it)."""
        async with self._replacing:
            old, generation = self._server, self._generation
            if old is None:
                return  # stopped (a SIGHUP during the drain): nothing may start listening again
            try:
                renewed = self._renewed_certificates(tls, max_body_bytes, files)
                if renewed is not None:
                    self._renewed[:] = [renewed]
                    return
            except OSError as exc:  # unreadable, or not a matching PEM pair (changed since the HTTP listener's check)
                log.error("reload: the gRPC listener could not read or use the new listen.tls certificate and key and "
                          "keeps its old ones (reload again once both files are written): %s", exc)  # fmt: skip
                return
            old_sockets = self._listeners
            try:
                self._server, _ = await self._open(self._bound, tls, max_body_bytes, generation + 1, files)
                self._generation = generation + 1
            except Exception as exc:  # the files were read for the HTTP listener a moment ago: not expected
                log.error("reload: the gRPC listener could not start with the new listen.tls or limits and keeps "
                          "its old ones (restart to apply them): %s", exc)  # fmt: skip
                return
            graceful = asyncio.ensure_future(old.stop(_UNTIL_CUT_S))
            await asyncio.sleep(0)  # its first step: the old server stops accepting and sends GOAWAY, before the
            # reload is done (a call made after it goes to the new server, never to one about to refuse it)
            await self._closed(old_sockets)
            retiring = asyncio.ensure_future(self._retire(old, generation, grace_s, "reload", graceful))
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)

    async def _closed(self, sockets: Listeners) -> None:
        """Wait until the old server's listening sockets have closed: grpc closes them on a thread of its own after
        a stop begins, and until then the kernel hands them a share of new connections, each reset by the stopping
        server (`listening`). At most _CLOSE_WAIT_S (then said in a warning)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + _CLOSE_WAIT_S
        while still_listening(sockets):
            if loop.time() >= until:
                log.warning("reload: the old gRPC server's listening socket is still open after %gs; a connection made "
                            "before it closes may be reset", _CLOSE_WAIT_S)  # fmt: skip
                return
            await asyncio.sleep(_CLOSE_POLL_S)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting; calls in flight have `grace_s` to end. The ones still running then are cut
        (their clients get UNAVAILABLE), recorded as `drain_timeout` and counted in one log line."""
        async with self._replacing:
            server, self._server = self._server, None
        current = [self._retire(server, self._generation, grace_s, "drain")] if server is not None else []
        retiring = [*self._retiring, *current]
        await asyncio.gather(*retiring, return_exceptions=True)
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()

    async def _retire(
        self, server: grpc.aio.Server, generation: int, grace_s: float, why: str,
        graceful: asyncio.Future[None] | None = None,
    ) -> None:  # fmt: skip
        # grpc's own grace would cancel the calls left without saying so, and each would be recorded as its
        # client's leaving: the ingress keeps the time itself, marks the cut, then has grpc cancel them
        if graceful is None:
            graceful = asyncio.ensure_future(server.stop(_UNTIL_CUT_S))
        # a health watch lasts as long as its client's channel: it would hold every drain to its end and be cut. It ends
        # now, OK (the client's channel watches again on its next connection), its upstream's call cancelled
        for rpc, of in list(self._watches.items()):
            if of == generation:
                self._drained.add(rpc)
                rpc.cancel()
        hurried = asyncio.ensure_future(self.hurried.wait())
        await asyncio.wait((graceful, hurried), timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        before = self._cut
        if not graceful.done():
            self._cutting.add(generation)  # a call of this server cancelled from now on was cut (`_cancelled`)
            await server.stop(None)  # cancels every call still running; returns when their handlers have ended
        await graceful
        cut = self._cut - before
        if cut and self.hurried.is_set():
            log.warning("%s: %d gRPC call(s) still running were cut off (cut short by %s)", why, cut, self.hurried_by)
        elif cut:
            log.warning("%s: %d gRPC call(s) still running after %gs were cut off (limits.drain_timeout_s)%s",
                        why, cut, grace_s, " on connections from before the reload" if why == "reload" else "")  # fmt: skip

    def end_retired_watches(self) -> None:
        """A reload retired upstream channels (`GrpcChannels.use`: an upstream moved, removed, or reached another way):
        the health watches relayed on them end now, OK, as a drain ends them, so their clients watch again and are
        answered by the upstream in force. Left, a watch relayed the health of a server the config no longer names
        for as long as its client's channel lived, and held the retired channel (its connection) open as long."""
        for rpc, channel in list(self._watched_on.items()):
            if not self.channels.in_use(channel):
                self._drained.add(rpc)
                rpc.cancel()

    # -- dispatch

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The handler for a method: by the adapter that matches it; other methods pass through."""
        method: str = details.method
        # grpc.aio looks a call's handler up in the call's own task, before it reads the call's request: counted from
        # here to that task's end, as grpc's own limit counted. Past limits.grpc_max_calls a call is refused
        # RESOURCE_EXHAUSTED without its request read (`busy`); a health check may take HEALTH_RESERVE more, a
        # watch WATCH_RESERVE of them (`_RESERVES`)
        if self.calls >= self._max_calls and self.calls >= self._max_calls + _RESERVES.get(method, 0):
            return self._busy_handler
        task = asyncio.current_task(self._loop)  # (the loop given: no getpid() system call, `_loop`)
        if task is not None:
            self.calls += 1
            task.add_done_callback(self._ended)
            _ARRIVED.set(details.invocation_metadata)  # (this task's context only: its handler's, `_received`)
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        # grpc.aio runs a handler as a coroutine when inspection says it is one: an interpreted coroutine function
        # that awaits the compiled method (`grpc_entry`), which inspection answers at once
        for adapter in GRPC_ADAPTERS:
            target = adapter.match("POST", method)
            if target is None:
                continue
            # every handler reads its request itself (`_request`), unary ones too: grpc's unary handlers run only once
            # the request is whole, and a call whose request never was could not be ended (`_sweep`)
            if not target.carries_data and target.stream:
                handler = grpc.stream_stream_rpc_method_handler(bound3(self.watch, adapter, target, method))
            elif not target.carries_data:
                handler = grpc.stream_unary_rpc_method_handler(bound3(self.data_free, adapter, target, method))
            elif target.stream:
                handler = grpc.stream_stream_rpc_method_handler(bound3(self.stream, adapter, target, method))
            else:
                handler = grpc.stream_unary_rpc_method_handler(bound3(self.unary, adapter, target, method))
            self._handlers[method] = handler  # adapters match a fixed set of methods: the cache is bounded
            self._rpcs[method] = _rpc(method)
            return handler
        # any other method (whatever name a client sends): made per call, never cached
        return grpc.stream_stream_rpc_method_handler(bound1(self.passthrough, method))

    def _ended(self, _: object) -> None:
        self.calls -= 1

    async def busy(self, details: str, requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """A call past limits.grpc_max_calls (`service`): refused RESOURCE_EXHAUSTED, its request unread, and
        counted (lineage_proxy_grpc_calls_refused_total). No record: the proxy has read nothing of the call but its
        method, and a flood of them would be a flood of records."""
        self.refused_busy += 1
        self.ref.current.runtime.metrics.grpc_busy()
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, details)

    # -- the steps every handler shares

    def _bound_metadata(self, ex: Exchange, received: _Received, method: str) -> None:
        """Refuse a call whose metadata is over the upstream's bound (`_metadata_over`, the upstreams' longest key
        counted): raises its RequestTooLarge; or that has more entries than `limits.max_headers`, as the HTTP
        listener refuses a head with more fields (HeaderTooLarge, INVALID_ARGUMENT): grpc bounds their bytes alone, so
        a call of a hundred and more short entries (`x-data-labels` each) was taken here and refused over HTTP."""
        pipeline = ex.pipeline
        most = pipeline.config.limits.max_headers
        if received.entries > most:
            raise HeaderTooLarge(f"the call has over limits.max_headers ({most}) metadata entries")
        if pipeline is not self._keys_of:
            self._keys_of = pipeline
            self._key = max((len(u.api_key) for u in pipeline.config.upstreams if u.api_key), default=0)
        over = _metadata_over(received, method, self._key)
        if over is not None:
            raise over

    def _exchange(
        self, adapter: Adapter, target: Target, method: str, received: _Received,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tuple[Exchange, Header]:  # fmt: skip
        pipeline = self.ref.current
        header = received.found.get
        rpc = self._rpcs.get(method)  # an adapter's method's, made once (`service`); any other's, made now
        attributes = dict(rpc) if rpc is not None else _rpc(method)  # the call's own: its record may add to it
        ex = Exchange(pipeline, adapter, target, pipeline.trace(header), attributes)
        if pipeline.client_address:
            ex.outcome.client = _client(context.peer())
        return ex, header

    def _peer(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, ...]:
        """What the client's certificate proves; nothing on a plaintext listener (no auth context asked)."""
        return _peer(context) if self._secure else ()

    def _admit(
        self,
        ex: Exchange,
        request: bytes,
        header: Header,
        context: grpc.aio.ServicerContext[Any, Any],
        received: _Received,
        deferred: bool = False,
    ) -> Upstream:
        """`Exchange.admit`, for a gRPC upstream. `deferred`: the handler calls `ex.forwarded()` once the request
        is sent (`_forwarded`). The metadata forwarded is read with the request: MLServer hands it to the model."""
        fields = functools.partial(header_text, received.forwarded)  # built only where read (`Pipeline._fields_read`)
        upstream = ex.admit(request, header, self._peer(context), deferred, fields)
        if upstream.grpc is None:  # refused here, its data gone nowhere: recorded so, never as allowed to it
            raise ex.refuse(
                UpstreamUnavailable(
                    f"upstream {upstream.name!r} speaks HTTP only; send this call to the HTTP listener"
                ),
                f"upstream:{upstream.name}",
            )
        return upstream

    @staticmethod
    def _data_free_upstream(pipeline: Pipeline, model: str) -> Upstream:
        matched = pipeline.policy.route(model)
        if matched is not None and matched[1].grpc:
            return matched[1]
        for upstream in pipeline.config.upstreams:
            if upstream.grpc:
                return upstream
        raise UpstreamUnavailable("no gRPC upstream is configured for this call")

    def _forward_metadata(
        self, ex: Exchange, upstream: Upstream, received: _Received, context: grpc.aio.ServicerContext[Any, Any]
    ) -> grpc.aio.Metadata:
        """The caller's metadata, less transport keys (and its key, unless the upstream is to see it) and its claims of
        where it came from (`_CLIENT_CLAIMS`), with the call's `traceparent`, the upstream's own key, and what the
        proxy knows of the client: `x-forwarded-for` the caller's list with the peer's address appended (as over
        HTTP, `proxy.ingress.http.forward_fields`; none to an upstream whose model is handed the metadata,
        `Upstream.fields_to_model`), `x-forwarded-proto` the listener's scheme. As a grpc.aio Metadata
        (`SentMetadata`): a list it would copy into one itself, pair by pair, after a slow `typing.Sequence` check."""
        # else a caller's tracestate is discarded: its trace not joined, or it is not one the span keeps
        # (`proxy.record.spans.kept_tracestate`)
        kept = ex.trace.tracestate
        out = received.forwarded.copy()  # (its own: this appends to it)
        if received.keys and not (ex.pipeline.strips_auth or upstream.api_key or ex.rerouted()):
            for at, pair in received.keys:  # where each came (in order: each goes where it was)
                out.insert(at, pair)
        if received.traced and kept is None:
            out = [(key, value) for key, value in out if key != "tracestate"]
        elif kept is not None and "\t" in kept:  # W3C's white space around a member, which grpc will not send
            out = _spaced_tracestate(out)
        if not upstream.fields_to_model:  # else the client's address would reach the model as data: not told
            # the peer as the call's record read it (`_exchange`); read here only where the record keeps none
            client = ex.outcome.client if ex.pipeline.client_address else _client(context.peer())
            address = _client_address(client)
            callers = received.callers
            out.append(("x-forwarded-for", f"{', '.join(callers)}, {address}" if callers else address))
        out.append(("x-forwarded-proto", self._scheme))
        out.append(("traceparent", ex.trace.traceparent()))
        if upstream.api_key:
            out.append(("authorization", f"Bearer {upstream.api_key}"))
        return SentMetadata(out, distinct=not received.repeats)

    def _unary(
        self,
        ex: Exchange,
        upstream: Upstream,
        method: str,
        request: bytes,
        received: _Received,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """The same unary call to the upstream, with the forwarded metadata and the caller's deadline."""
        metadata = self._forward_metadata(ex, upstream, received, context)
        return self._callable(upstream, method)(request, metadata=metadata, timeout=self._timeout(upstream, context))

    def _callable(self, upstream: Upstream, method: str) -> Any:
        """grpc.aio's callable for a unary `method` on `upstream`'s channel in use, made once per channel (making
        one is ~80 Python instructions of grpc.aio's). Unary methods are the adapters' fixed few, so the cache is
        bounded by the upstreams' names in the config in force; a retired channel's callable is replaced on the
        method's next call."""
        key = (upstream.name, method)
        made = self._callables.get(key)
        if made is not None:
            # `GrpcChannels.channel`'s own first step, without that call (~15 instructions, interpreted): the channel
            # open for the upstream's name, when it was made for this very upstream, is the one its calls take
            entry = self.channels.opened.get(upstream.name)
            if entry is not None and entry.upstream is upstream and entry.channel is made[0]:
                return made[1]
        channel = self.channels.channel(upstream)
        if made is not None and made[0] is channel:
            return made[1]
        if made is None:  # a name new here: those of upstreams a reload removed or renamed go, with their channels
            names = {one.name for one in self.ref.current.config.upstreams}
            for gone in [held for held in self._callables if held[0] not in names]:
                del self._callables[gone]
        call = channel.unary_unary(method)
        self._callables[key] = (channel, call)
        return call

    @staticmethod
    def _timeout(upstream: Upstream, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        remaining = context.time_remaining()
        return upstream.timeout_s if remaining is None else min(upstream.timeout_s, remaining)

    def _free_after_reply(self, left: tuple[Any, ...]) -> None:
        """Keep what a unary call leaves (its upstream call, its Exchange, the metadata read) until the loop's next
        turn. Freed as the handler returns, it (grpc.aio's call object and grpc core's call under it the most: ~8 µs)
        would be freed before grpc sends the reply; on the next turn, grpc has begun sending it."""
        spent = self._spent
        spent.append(left)
        if len(spent) == 1:  # the first since the last turn: the list is emptied on the next
            (self._loop or asyncio.get_running_loop()).call_soon(spent.clear)

    def _ends(self, ex: Exchange, context: grpc.aio.ServicerContext[Any, Any]) -> _Ends:
        """How every call ends (`_Ends.close`)."""
        return _Ends(self, ex, context)

    def _cancelled(self, context: grpc.aio.ServicerContext[Any, Any], generation: int) -> tuple[int, str]:
        """Why grpc cancelled a call's handler, as (the status its client got, the error.type): the drain's
        cut (UNAVAILABLE), the client's own deadline (DEADLINE_EXCEEDED), else the client left (CANCELLED)."""
        if generation in self._cutting:
            self._cut += 1
            return grpc.StatusCode.UNAVAILABLE.value[0], DRAIN_CUT
        if _deadline_passed(context):
            return grpc.StatusCode.DEADLINE_EXCEEDED.value[0], DEADLINE_PASSED
        return grpc.StatusCode.CANCELLED.value[0], CLIENT_GONE

    @staticmethod
    async def _abort(
        context: grpc.aio.ServicerContext[Any, Any], ex: Exchange, error: ProxyError, sent: Durable
    ) -> NoReturn:
        """End the call with `error`: recorded first (with the status it is answered with), then the status
        with the lineage as trailers. The record is held until the caller says the status's send is done (`sent`):
        grpc fails it for a client gone (`_Ends.close`), which the record then says."""
        code = _STATUS.get(error.grpc_code, grpc.StatusCode.UNKNOWN)
        answered = ex.refused or ex  # a stream ended by a denied message: it is that message's answer
        for one in (ex, answered) if answered is not ex else (ex,):
            if one.outcome.status is None:
                one.outcome.status = code.value[0]
        if answered is ex:
            ex.finish(error, until=sent)
            await ex.recorded()
        else:  # one status answers both: their records go as it does (`finish_with`)
            ex.finish_with(answered, error, sent)
            await answered.recorded(ex)
        await context.abort(code, error.message, (*error.trailers, *answered.lineage_headers()))
        raise AssertionError("unreachable: abort raises")

    async def _request(self, context: grpc.aio.ServicerContext[Any, Any], room: _Room) -> Any:
        """The call's request message (a unary call's, a stream's first), asked of grpc once there is `room` for it
        (`_Room`), `_EOF` if none came (the client ended its messages, or grpc failed the call: its client left, or the
        message was over grpc's receive limit), or, if it was not whole within limits.grpc_request_timeout_s of the
        call's start (`_sweep`), the seconds of them it waited for room. What a call costs: a dict entry while it
        arrives, and its room."""
        task = asyncio.current_task(self._loop)
        if task is None:  # (grpc.aio runs every handler in a task of its own)
            return await context.read()
        arriving = self._arriving
        arriving[task] = self._now
        taken = room.take()
        waited = 0.0
        message: Any = None
        try:
            if not taken:
                waited = -self._clock()
                taken = await room.wait()
                waited += self._clock()
            message = await context.read()
        except asyncio.CancelledError:
            pass
        finally:  # any other failure of grpc's read ("RPC already finished" at a stop) gives its room back all the same
            room.give(taken)
            arriving.pop(task, None)
        if message is not None:
            return message
        if task in self._late:  # the sweep's cancel: the call is late, not gone
            self._late.discard(task)
            task.uncancel()
            return waited if waited >= 0 else waited + self._clock()  # (still waiting when cut)
        raise asyncio.CancelledError  # its client left (grpc cancelled the handler)

    def _clock(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    async def _unread(
        self, adapter: Adapter, target: Target, method: str, context: grpc.aio.ServicerContext[Any, Any], got: Any
    ) -> NoReturn:
        """End a call whose request did not come (`_request`): late (`got`: the seconds it waited for room), recorded
        and answered DEADLINE_EXCEEDED (`MessageTimeout`), or, when it waited for room half of that time or more, refused
        `overloaded` (`_late_error`); else (`_EOF`) grpc failed the call (its client left, a message over its receive
        limit: a second read returns once it has, its handler's cancel asked for by then, as in `_no_messages`), or its
        client ended its messages without sending one: recorded and answered INVALID_ARGUMENT (grpc's own unary handling
        answered nothing, and the call stayed open, unrecorded, until the client's deadline, or for good)."""
        error: ProxyError
        if got is _EOF:
            try:
                await context.read()
            except asyncio.CancelledError:  # (the cancel met the read, not after it)
                raise self._left_unread(adapter, target, method, context) from None
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise self._left_unread(adapter, target, method, context)
            error = InvalidRequest(
                "no request message: the client ended its messages before sending one (a unary call takes one)"
            )
        else:
            error = self._late_error(float(got))
        ex, _ = self._exchange(adapter, target, method, _read(context), context)
        await self._ends(ex, context).close(error)
        raise AssertionError("unreachable: close raises")

    def _left_unread(
        self, adapter: Adapter, target: Target, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> asyncio.CancelledError:
        """Record a call grpc failed before its request message was whole (its client cancelled it or left, its deadline
        passed, the drain cut it): it had begun (it took a place of `limits.grpc_max_calls`), and is recorded as one
        refused before it was read is, as an HTTP request whose client leaves mid-body is, with the status its client
        got; the cancel to raise is returned. Before, it left no record at all."""
        ex, _ = self._exchange(adapter, target, method, _read(context), context)
        code, why = self._cancelled(context, _SERVER.get())
        ended = _UNREAD_ENDS.get(why, LeftUnread)(_UNREAD_REASON)
        ended.caller = ex.pipeline.caller_name(_read(context).found.get, self._peer(context))
        ex.outcome.status = code
        ex.finish(ended)
        return asyncio.CancelledError()

    def _late_error(self, waited: float) -> ProxyError:
        """What answers a call whose request message was not whole within limits.grpc_request_timeout_s, having waited
        `waited` seconds of them for room (`_Room`): a message that stopped coming (the client's), or, after half of
        them or more waiting, the listener's refusal (`Overloaded`), naming the limit."""
        limits = self.ref.current.config.limits
        timeout = limits.grpc_request_timeout_s
        if waited < timeout / 2:
            return MessageTimeout(f"the request message was not whole within limits.grpc_request_timeout_s "
                                  f"({timeout:g}s) of the call's start")  # fmt: skip
        return Overloaded(
            f"the request message could not be read within limits.grpc_request_timeout_s ({timeout:g}s) of the call's "
            f"start: it waited {waited:.1f}s for room, as the request messages arriving on the gRPC listener were at "
            f"limits.grpc_arriving_max_bytes ({limits.grpc_arriving_max_bytes} bytes, each counted at the most grpc "
            f"takes, {self.room.each}); retry shortly"
        )

    # -- inference

    async def unary(
        self, adapter: Adapter, target: Target, method: str, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        """A unary inference call (ModelInfer). Its lineage goes back as trailing metadata, with the
        reply and the status in one batch (a streamed call's goes as initial metadata)."""
        try:
            request: Any = await self._request(context, self.room)
        except asyncio.CancelledError:  # grpc failed it before its request was whole: recorded
            raise self._left_unread(adapter, target, method, context) from None
        if not isinstance(request, bytes):
            await self._unread(adapter, target, method, context, request)
        received = _read(context)
        ex, header = self._exchange(adapter, target, method, received, context)
        failure: BaseException | None = None
        held = 0
        unsent = False  # the upstream's initial metadata could not be sent: the client is gone
        try:
            self._bound_metadata(ex, received, method)
            held = self._hold(ex.pipeline, len(request))
            upstream = self._admit(ex, request, header, context, received, deferred=True)
            rpc = self._unary(ex, upstream, method, request, received, context)
            unforwarded: list[BaseException] = []  # what `ex.forwarded()` raised, if it did (`_forward`)
            (self._loop or asyncio.get_running_loop()).call_soon(_forward, rpc, ex, unforwarded)
            try:
                reply: bytes = await rpc
                initial = await rpc.initial_metadata()
                trailing = await rpc.trailing_metadata()
            except grpc.aio.AioRpcError as exc:
                raise _upstream_error(ex, exc, context) from None
            except asyncio.CancelledError:  # `_forward` cancelled the upstream's call: what it met is the answer
                if unforwarded:
                    raise unforwarded[0] from None
                raise
            ex.head(0, header)
            if ex.whole(reply):  # (a gRPC reply's observer reads it whole: never)
                while ex.more():
                    pass
            passed = _pass(initial)
            if passed:  # before the record (`_reply_metadata`)
                try:
                    await context.send_initial_metadata(passed)
                except Exception:
                    unsent = True
                    raise
            ex.finish()
            if ex.recording:  # a new flow's first edge is durable before the client has the reply
                await ex.recorded()  # (a coroutine only then: not for a flow seen before, most calls)
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc
        self.held -= held
        if failure is not None:  # an ended call's `close` has nothing left to do (`end` recorded it)
            request = rpc = None  # (and the upstream's call, which keeps it): not held as the call ends (`_Ends.close`)
            ends = self._ends(ex, context)
            ends.unsent = unsent
            try:
                await ends.close(failure)  # raises what failed
            finally:  # not kept by this frame, which its traceback holds (a reference cycle)
                failure = None
        _reply_metadata(context, (*_pass(trailing), *ex.lineage_headers()))
        self._free_after_reply((rpc, ex, initial, trailing, received))
        return reply

    def _hold(self, pipeline: Pipeline, size: int) -> int:
        """Count a request message's bytes as held (`size`, given back by the caller): a unary request's while it is
        served, a relayed stream's until its upstream's call has taken it (`_pump`); Overloaded when that would take
        the messages held past `limits.bodies_max_bytes`, as the HTTP listener's bodies are (grpc has read the message
        whole by then: what is bounded is what calls a slow upstream holds keep); RequestTooLarge over
        `limits.max_body_bytes` (`_too_large`)."""
        limits = pipeline.config.limits
        if size > limits.max_body_bytes:
            raise _too_large(size, pipeline)
        most = limits.bodies_max_bytes
        if self.held + size > most:
            raise Overloaded(
                f"the request messages lineage-proxy holds are at limits.bodies_max_bytes ({most} bytes); retry shortly"
            )
        self.held += size
        return size

    def _let_go(self, holding: list[int]) -> None:
        """Give back what a relay holds of its client's messages (`_pump`), once: its message sent, or its call ended."""
        self.held -= holding[0]
        holding[0] = 0

    async def stream(
        self,
        adapter: Adapter,
        target: Target,
        method: str,
        requests: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        """A streaming inference call (ModelStreamInfer). One stream is one call: decided on its first
        message, decided again whenever a later message adds labels (a denial, or a malformed message,
        ends the stream); the span ends with the stream. Messages go each way one at a time, each write
        awaited before the next read (back-pressure both ways); the lineage goes as initial metadata,
        with the first reply, and again, as it stands at the end, with the status. A reply after the first is written
        to the client before it is read (`Exchange.stream_message`), once its write returns, before the upstream's next is
        awaited: what ends the call is its upstream's status, and reading a reply decides nothing about what is
        written; a later message denied during that write has its record (`Exchange.refused`) given what the reply says
        as the relay ends. (`requests`: grpc's iterator over `context.read`, which is read instead.)"""
        try:
            first: Any = await self._request(context, self.room)
        except asyncio.CancelledError:  # grpc failed it before its first message was whole: recorded
            raise self._left_unread(adapter, target, method, context) from None
        if not isinstance(first, bytes) and first is not _EOF:
            await self._unread(adapter, target, method, context, first)
        if first is _EOF:
            return await self._no_messages(adapter, target, method, context)
        received = _read(context)
        ex, header = self._exchange(adapter, target, method, received, context)
        ends = self._ends(ex, context)
        failure: BaseException | None = None
        holding = [0]  # what the relay holds of the client's messages (`_pump`): the first, until it is sent
        try:
            self._bound_metadata(ex, received, method)
            holding[0] = self._hold(ex.pipeline, len(first))  # refused here, past the bound, before it is admitted
            upstream = self._admit(ex, first, header, context, received, deferred=True)
            rpc = self.channels.channel(upstream).stream_stream(method)(
                metadata=self._forward_metadata(ex, upstream, received, context), timeout=context.time_remaining()
            )
            quiet = _Quiet(rpc, upstream.timeout_s)  # the upstream's timeout_s, between messages
            ended: list[ProxyError] = []  # why the proxy ended the stream, if it did
            # the writer runs `ex.forwarded()` once the first message is with grpc's core
            writer = asyncio.get_running_loop().create_task(
                self._pump(rpc, context, first, ex, header, ended, holding, asyncio.current_task(), quiet)
            )
            first = b""  # the writer's now, which lets it go once sent (`_pump`)
            sent_metadata = complete = False
            relayed: BaseException | None = None  # what ended the relay, if not the upstream's end
            try:
                message = await rpc.read()
                if message is not _EOF:
                    ex.forwarded()  # a reply before the first message was sent (a no-op once the writer ran it)
                while message is not _EOF:
                    quiet.heard()
                    lineage = None
                    later = sent_metadata
                    if not later:  # the first reply: read first, the lineage (its labels with this reply's) goes first
                        ex.stream_message(message)
                        lineage = [*_pass(await rpc.initial_metadata()), *ex.lineage_headers()]
                        sent_metadata = True
                    try:
                        if lineage is not None:
                            await context.send_initial_metadata(lineage)
                        await context.write(message)  # returns once grpc has taken it: the client's pace
                    except Exception:
                        ends.unsent = True  # grpc could not send it: the client's side of the call is gone
                        raise
                    finally:
                        # a later reply cannot end the call (its upstream's status does) nor change what is written:
                        # its client has it before it is read, once the write returns (until 2026-12-06 read first, as the first)
                        if later:
                            ex.stream_message(message)
                    message = b""  # passed on: not held while the next is awaited (`_pump`)
                    message = await rpc.read()
                ex.outcome.status = 0
                complete = True
            except (Exception, asyncio.CancelledError) as exc:
                relayed = exc
            quiet.stop()
            try:
                await _stop(rpc, writer, complete)
            except BaseException:  # the writer's failure: `relayed` not kept by this frame, which its traceback holds
                relayed = None
                raise
            failed = _relay_failure(ex, context, ended, relayed, initial=not sent_metadata)
            if failed is not None:
                relayed = None  # (neither kept by this frame, which the traceback of what it raises holds: a cycle)
                if ex.refused is not None:
                    # a later message denied while a reply was being written: its record was begun as the stream's
                    # stood then, and that reply was read once its write returned; the denial's record has what it
                    # says (the model's version), as when a later reply was read before its write (until 2026-12-06)
                    ex.refused.outcome.extra.update(ex.outcome.extra)
                try:
                    raise quiet.failure(ex, ended) or failed
                finally:
                    failed = None
            if not sent_metadata:  # no reply carried the upstream's initial metadata: it goes before the status
                initial = _pass(await rpc.initial_metadata())
                if initial:
                    try:
                        await context.send_initial_metadata(initial)
                    except Exception:
                        ends.unsent = True  # (as a reply's)
                        raise
            # the upstream's trailers, and the lineage as it stands at the end (the first reply's was what was known
            # then): the labels later messages added, what the detectors found in the replies (`end` read them)
            trailing = _pass(await rpc.trailing_metadata())
            await ex.end()
            context.set_trailing_metadata((*trailing, *ex.lineage_headers()))
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc
        self._let_go(holding)
        first = b""  # refused before the writer took it: not held as the call ends (`_Ends.close`)
        try:
            await ends.close(failure)
        finally:  # not kept by this frame, which its traceback holds (a reference cycle)
            failure = None

    async def _no_messages(
        self, adapter: Adapter, target: Target, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """A ModelStreamInfer its client ended with no message: nothing names a model to decide on or route by, and an
        upstream answers such a stream OK with no reply, so it is answered here, as a data-free call is: the caller's
        key checked (a keyless caller where anonymous calls are denied gets UNAUTHENTICATED, as for any call), recorded
        (a span, an access line, no lineage edge), OK with `x-trace-id` as trailing metadata. grpc.aio's `read` gives
        EOF too for a call that failed before its first message (its client cancelled it or left, or sent a message
        over the receive limit): a second read returns once grpc has failed it, its handler's cancel asked for by
        then (`_pump`); such a call is recorded as that cancel says (`_Ends.close`), never as answered OK."""
        ex, header = self._exchange(adapter, target, method, _read(context), context)
        failure: BaseException | None = None
        try:
            ex.admit_data_free(None, ex.pipeline.identify_only(header, self._peer(context)))
            await context.read()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            ex.outcome.status = 0
            context.set_trailing_metadata(tuple(ex.lineage_headers()))
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc
        try:
            await self._ends(ex, context).close(failure)  # raises what failed
        finally:  # not kept by this frame, which its traceback holds (a reference cycle)
            failure = None

    async def _pump(
        self,
        rpc: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        first: bytes | None,
        ex: Exchange | None,
        header: Header | None,
        ended: list[ProxyError],
        holding: list[int],
        handler: asyncio.Task[Any] | None,
        quiet: _Quiet | None = None,
    ) -> None:
        """The client's messages to the upstream's call, each written before the next is read, then the end of
        them, only if the client ended them: grpc.aio's `read` gives EOF too for a call that failed (its client
        cancelled it or left, or sent a message over the receive limit), and cancels the call's `handler` after.
        An inference stream's (`ex`, admitted deferred) runs `ex.forwarded()` once its first message is with
        grpc's core, while the upstream computes (if that fails, the proxy's fault, the upstream's call is
        cancelled and the failure raised, as `_forwarded`); its later messages are each decided again first
        (`Exchange.readmit`): a denial, or a malformed message, ends the stream (`ended`) and cancels the
        upstream's call; so does a message over `limits.max_body_bytes` (`_too_large`), in any stream. Each message
        is counted in the listener's `held` from its read until the upstream's call has taken it (`holding`: the
        bytes counted now, the first's by the handler; what is left when the call ends its handler gives back,
        `_let_go`): an upstream that reads slowly, or nothing, keeps it in the proxy's hands (uncounted, 32 streams
        each sending 16 MiB took a `serve` process bounded at 64 MiB to 1.1 GiB), and a message that would take them
        past `limits.bodies_max_bytes` ends its stream `overloaded` (`_hold`), as a unary request past it is refused.
        Each message sent, and the end of them, is heard by `quiet`, if given (the upstream's silence is counted from
        then)."""
        if first is not None:
            if not await _write(rpc, first):
                return
            self._let_go(holding)
            if quiet is not None:
                quiet.heard()
            first = None  # sent: a stream left open holds none of the messages it passed on
            if ex is not None:
                try:
                    ex.forwarded()
                except ProxyError as error:  # the stream's answer, as a refused later message's (`ended`)
                    ended.append(error.with_traceback(None))  # (as the bound's refusal, below)
                    rpc.cancel()
                    return
                except BaseException:
                    rpc.cancel()
                    raise
        message = await context.read()
        while message is not _EOF:
            try:  # over max_body_bytes, or past the bound: ends the stream, as a refused message does
                holding[0] = self._hold(self.ref.current, len(message))
            except ProxyError as error:
                # without its traceback, which holds this frame and with it the message: kept in `ended`, a cycle that
                # only a gc pass freed (measured: each refused stream's 16 MiB stayed in a `serve` process)
                ended.append(error.with_traceback(None))
                rpc.cancel()
                return
            if ex is not None and header is not None:
                try:
                    refused = ex.readmit(message, header, self.ref.current)
                except ProxyError as error:  # a malformed later message ends the stream at once
                    refused = error.with_traceback(None)  # (as the bound's refusal, above)
                if refused is not None:
                    ended.append(refused)
                    rpc.cancel()
                    return
            if not await _write(rpc, message):
                return
            self._let_go(holding)
            if quiet is not None:
                quiet.heard()
            message = b""  # sent: not held while the client's next one is awaited
            message = await context.read()
        # a second read returns once grpc has failed the call, whose handler's cancel it has asked for by then: a
        # failed call's messages must not reach the upstream as all the client sent (an upload cut short as whole)
        await context.read()
        if handler is not None and handler.cancelling():
            return
        try:
            await rpc.done_writing()
        except Exception:  # the upstream's call ended as it was half-closed, and grpc's core refused the half-close
            pass  # (its ExecuteBatchError, no AioRpcError): the call's status is the answer, read by the relay
        if quiet is not None:
            quiet.heard()

    # -- everything else

    def _admit_data_free(
        self, ex: Exchange, header: Header, received: _Received, method: str, adapter: Adapter, target: Target,
        request: bytes, context: grpc.aio.ServicerContext[Any, Any],
    ) -> tuple[int, Upstream]:  # fmt: skip
        """What a data-free RPC (`data_free`, `watch`) does before its upstream is asked: its metadata bounded, its
        request held (`_hold`: the bytes held, given back by the caller once it ends, or here if this refuses it), its
        caller's key checked, its upstream found; the call admitted data-free."""
        self._bound_metadata(ex, received, method)
        pipeline = ex.pipeline
        held = self._hold(pipeline, len(request))
        try:
            caller = pipeline.identify_only(header, self._peer(context))
            model = adapter.read(target, request, header).model
            upstream = self._data_free_upstream(pipeline, model)
            ex.admit_data_free(upstream, caller, model)  # named in its record, as REST's `GET /v2/models/{name}` is
        except BaseException:
            self.held -= held
            raise
        return held, upstream

    async def data_free(
        self, adapter: Adapter, target: Target, method: str, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        """Health and metadata RPCs: the caller's key is checked; recorded (a span, an access line), with no
        lineage edge; `x-trace-id` goes back as trailing metadata. The request is held while the upstream answers,
        counted as an inference call's is (`_hold`)."""
        request: Any = await self._request(context, self.health_room if method in _RESERVES else self.room)
        if not isinstance(request, bytes):
            await self._unread(adapter, target, method, context, request)
        received = _read(context)
        ex, header = self._exchange(adapter, target, method, received, context)
        failure: BaseException | None = None
        held = 0
        unsent = False  # the upstream's initial metadata could not be sent: the client is gone
        try:
            held, upstream = self._admit_data_free(ex, header, received, method, adapter, target, request, context)
            rpc = self._unary(ex, upstream, method, request, received, context)
            try:
                reply: bytes = await rpc
                initial = await rpc.initial_metadata()
                trailing = await rpc.trailing_metadata()
            except grpc.aio.AioRpcError as exc:
                raise _upstream_error(ex, exc, context) from None
            ex.outcome.status = 0
            passed = _pass(initial)
            if passed:  # before the record (`_reply_metadata`)
                try:
                    await context.send_initial_metadata(passed)
                except Exception:
                    unsent = True
                    raise
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc
        self.held -= held
        ends = self._ends(ex, context)
        ends.unsent = unsent
        try:
            await ends.close(failure)  # raises what failed
        finally:  # not kept by this frame, which its traceback holds (a reference cycle)
            failure = None
        _reply_metadata(context, (*_pass(trailing), ("x-trace-id", ex.trace.trace_id_hex)))
        return reply

    async def watch(
        self, adapter: Adapter, target: Target, method: str, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """A data-free RPC whose reply is a stream (`grpc.health.v1.Health/Watch`): decided and recorded as
        `data_free` is, then the upstream's messages are relayed as they come, for as long as the upstream's stream
        lasts (the client's deadline is its only bound: a watch is silent while nothing changes); the client leaving
        cancels the upstream's stream; a drain, or a reload's retiring its server, ends it OK at once (`_retire`).
        `x-trace-id` goes back as trailing metadata."""
        request: Any = await self._request(context, self.health_room if method in _RESERVES else self.room)
        if not isinstance(request, bytes):
            await self._unread(adapter, target, method, context, request)
        received = _read(context)
        ex, header = self._exchange(adapter, target, method, received, context)
        ends = self._ends(ex, context)
        failure: BaseException | None = None
        held = 0
        try:
            if len(request) > WATCH_REQUEST_BYTES:
                raise RequestTooLarge(
                    f"a health watch's request is {len(request)} bytes, over {WATCH_REQUEST_BYTES}: it names a service"
                )
            held, upstream = self._admit_data_free(ex, header, received, method, adapter, target, request, context)
            channel = self.channels.channel(upstream)
            rpc = channel.unary_stream(method)(
                request,
                metadata=self._forward_metadata(ex, upstream, received, context),
                timeout=context.time_remaining(),
            )
            self._watches[rpc] = _SERVER.get()
            self._watched_on[rpc] = channel
            complete = False
            relayed: BaseException | None = None  # what ended the relay, if not the upstream's end
            try:
                initial = _pass(await rpc.initial_metadata())  # as the upstream sent it, before any reply
                if initial:
                    try:
                        await context.send_initial_metadata(initial)
                    except Exception:
                        ends.unsent = True  # (as a stream's reply)
                        raise
                message = await rpc.read()
                while message is not _EOF:
                    try:
                        await context.write(message)
                    except Exception:
                        ends.unsent = True  # grpc could not send it: the client's side of the call is gone
                        raise
                    message = await rpc.read()
                ex.outcome.status = 0
                complete = True
            except (Exception, asyncio.CancelledError) as exc:
                relayed = exc
            del self._watches[rpc]
            del self._watched_on[rpc]
            task = asyncio.current_task()
            if rpc in self._drained:
                self._drained.discard(rpc)
                if isinstance(relayed, asyncio.CancelledError) and task is not None and not task.cancelling():
                    relayed = None  # the drain ended it (its client still there): OK, without the upstream's trailers
                    complete = True
                    ex.outcome.status = 0
            if not complete:
                rpc.cancel()
            if relayed is not None:
                # (not kept by this frame, which the traceback of what it raises holds: a cycle)
                failed: BaseException | None
                failed = (
                    _upstream_error(ex, relayed, context, initial=False)
                    if isinstance(relayed, grpc.aio.AioRpcError)
                    else relayed
                )
                relayed = None
                try:
                    raise failed
                finally:
                    failed = None
            trailing = [] if rpc.cancelled() else _pass(await rpc.trailing_metadata())
            context.set_trailing_metadata((*trailing, ("x-trace-id", ex.trace.trace_id_hex)))
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc
        self.held -= held
        try:
            await ends.close(failure)  # raises what failed
        finally:  # not kept by this frame, which its traceback holds (a reference cycle)
            failure = None

    async def passthrough(self, method: str, requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Any other method, unary or streaming alike (the wire does not tell them apart): its messages
        are not read, so it is decided as an opaque call on its metadata (`policy.passthrough`: refused
        while zones are configured or a route limits purposes, unless `forward`), routed by the `"*"` route, then
        bytes both ways."""
        received = _read(context)
        ex, header = self._exchange(GRPC_ADAPTERS[0], PASSTHROUGH, method, received, context)
        ex.outcome.extra["rpc.method"] = method
        ends = self._ends(ex, context)
        failure: BaseException | None = None
        holding = [0]  # what the relay holds of the client's messages (`_pump`)
        try:
            self._bound_metadata(ex, received, method)
            upstream = ex.admit(b"", header, self._peer(context), deferred=True)
            decision = ex.decision
            if upstream.grpc is None and decision is not None and not decision.zones:
                # the '*' route serves HTTP (vLLM) beside a gRPC upstream on named routes (Triton): no zone
                # says where this call's data may go, so it goes where gRPC is served, as the record says
                upstream = self._data_free_upstream(ex.pipeline, "")
                ex.retarget(upstream)
            elif upstream.grpc is None:
                raise ex.refuse(UpstreamUnavailable(
                    f"{method}: the '*' route's upstream {upstream.name!r} speaks HTTP only, and this call's zones "
                    f"({', '.join(decision.zones) if decision else '?'}) say where its data may go: route '*' to a "
                    "gRPC upstream in their regions"
                ), f"upstream:{upstream.name}")  # fmt: skip
            rpc = self.channels.channel(upstream).stream_stream(method)(
                metadata=self._forward_metadata(ex, upstream, received, context), timeout=context.time_remaining()
            )
            await _forwarded(rpc, ex)  # its request is its metadata, sent by the call's first step
            quiet = _Quiet(rpc, upstream.timeout_s)  # the upstream's timeout_s, between messages
            ended: list[ProxyError] = []  # a message over the limit, or past the bound, ended it (`_pump`)
            writer = asyncio.get_running_loop().create_task(
                self._pump(rpc, context, None, None, None, ended, holding, asyncio.current_task(), quiet)
            )
            complete = False
            relayed: BaseException | None = None  # what ended the relay, if not the upstream's end
            try:
                # the upstream's initial metadata, once it sends it (before its first reply, or alone), as it sent
                # it: a client may read it before any reply comes
                initial = _pass(await rpc.initial_metadata())
                if initial:
                    try:
                        await context.send_initial_metadata(initial)
                    except Exception:
                        ends.unsent = True  # (as a reply's, below)
                        raise
                message = await rpc.read()
                while message is not _EOF:
                    quiet.heard()
                    try:
                        await context.write(message)
                    except Exception:
                        ends.unsent = True  # (as a stream's)
                        raise
                    message = b""  # (as a stream's)
                    message = await rpc.read()
                ex.outcome.status = 0
                complete = True
            except (Exception, asyncio.CancelledError) as exc:
                relayed = exc
            quiet.stop()
            try:
                await _stop(rpc, writer, complete)
            except BaseException:  # the writer's failure: `relayed` not kept by this frame, which its traceback holds
                relayed = None
                raise
            failed = _relay_failure(ex, context, ended, relayed, passed_on=True)
            if failed is not None:
                relayed = None  # (neither kept by this frame, which the traceback of what it raises holds: a cycle)
                try:
                    raise quiet.failure(ex, ended) or failed
                finally:
                    failed = None
            context.set_trailing_metadata((*_pass(await rpc.trailing_metadata()), *ex.lineage_headers()))
            await ex.end()  # a new flow's first edge is durable before the client has the status
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc
        self._let_go(holding)
        try:
            await ends.close(failure)
        finally:  # not kept by this frame, which its traceback holds (a reference cycle)
            failure = None


class _Quiet:
    """An upstream's `timeout_s` on a relayed stream (ModelStreamInfer, a passthrough call, unary or streaming), as an
    HTTP upstream's is on a reply: a bound on its silence, not on the call. From the stream's last message either way
    (`heard`: each of the client's messages sent, the end of them, each of the upstream's), the upstream has
    `timeout_s` to send its next message or its status; if it does not, its call is cancelled (`expired`), and the
    call ends `upstream_timeout` (DEADLINE_EXCEEDED, `failure`), as a unary ModelInfer whose upstream does not answer
    within it. A stream that keeps moving is never cut. Each message costs a clock read; the timer is re-armed only
    when it fires."""

    def __init__(self, rpc: Any, timeout_s: float) -> None:
        self._rpc = rpc
        self._timeout = timeout_s
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self.expired = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(self._last + timeout_s, self._due)

    def heard(self) -> None:
        self._last = self._loop.time()

    def _due(self) -> None:
        due = self._last + self._timeout
        if self._loop.time() < due:  # a message since: the bound runs from it
            self._timer = self._loop.call_at(due, self._due)
            return
        self._timer = None
        self.expired = True
        self._rpc.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def failure(self, ex: Exchange, ended: list[ProxyError]) -> ProxyError | None:
        """What ends the call when the silence cancelled the upstream's (unless the proxy ended it first), else None."""
        if not self.expired or ended:
            return None
        ex.outcome.status = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        return ex.upstream_failed(TimeoutError())  # UpstreamTimeout: "did not answer within {timeout_s}s"


def _too_large(size: int, pipeline: Pipeline) -> RequestTooLarge:
    """A request message over `limits.max_body_bytes`, refused as the HTTP listener refuses such a body (413
    `request_too_large`, RESOURCE_EXHAUSTED) and recorded: grpc's own refusal, which only a message a quarter over it
    meets (`_open`), is not."""
    limit = pipeline.config.limits.max_body_bytes
    return RequestTooLarge(
        f"request message of {size} bytes is over the limit of {limit} bytes (limits.max_body_bytes)"
    )


def _deadline_passed(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    """Whether the client's own deadline (`grpc-timeout`) has passed, give or take `DEADLINE_SLACK_S`."""
    remaining = context.time_remaining()
    return remaining is not None and remaining <= DEADLINE_SLACK_S


def _relay_failure(
    ex: Exchange,
    context: grpc.aio.ServicerContext[Any, Any],
    ended: list[ProxyError],
    relayed: BaseException | None,
    passed_on: bool = False,
    initial: bool = False,
) -> BaseException | None:
    """What ended a stream's relay, to raise; None when the upstream ended it well. The proxy's refusal first
    (`ended`, by `_pump`, which cancelled the upstream's call: the answer, whatever that call said of its cancel),
    then the upstream's status (`_upstream_error`; `initial`: no reply passed on the upstream's initial metadata),
    then what broke the relay."""
    if ended and (relayed is None or isinstance(relayed, (asyncio.CancelledError, grpc.aio.AioRpcError))):
        return ended[0]
    if isinstance(relayed, grpc.aio.AioRpcError):
        return _upstream_error(ex, relayed, context, passed_on=passed_on, initial=initial)
    return relayed


# how grpc's client says a message it received is over its receive limit (`grpc.max_receive_message_length`:
# `reply_limit`), "Stream removed (CLIENT: Received message larger than max (N vs. M))"; an upstream's own refusal of
# a request message over its limit says it without "CLIENT: ", and is passed on as its status
_OVER_REPLY_LIMIT: Final = "CLIENT: Received message larger than max"


def _upstream_error(
    ex: Exchange,
    exc: grpc.aio.AioRpcError,
    context: grpc.aio.ServicerContext[Any, Any],
    *,
    passed_on: bool = False,
    initial: bool = True,
) -> BaseException:
    """What ends a call whose upstream call ended with `exc`: the contract's error (`Exchange.upstream_failed`), or
    the upstream's status as it is (`passed_on`: a passthrough's). The upstream's call is given what is left of the
    client's deadline, so both end at about the same moment: an upstream's DEADLINE_EXCEEDED once the client's
    deadline has passed is the client's deadline (`deadline_exceeded`, as when grpc cancels the handler first), not
    the upstream's `upstream_timeout` (its `timeout_s` did not run out). Which comes first is a race of grpc's
    timers, decided by the load. The upstream's trailing metadata go with the status, and its initial metadata
    before it (`initial`: unless a reply, or a passthrough's relay, passed them on already)."""
    code = exc.code()
    ex.outcome.status = code.value[0]
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and _OVER_REPLY_LIMIT in (exc.details() or ""):
        # the proxy's channel refused the upstream's reply message, over its limit: the proxy's refusal, not the
        # upstream's status (a passthrough's too), recorded as the call's failure
        most = reply_limit(ex.pipeline.config.limits)
        return ex.upstream_failed(ReplyTooLarge(
            f"the upstream's reply message is over limits.grpc_max_reply_bytes ({most} bytes; grpc: {exc.details()})"
        ))  # fmt: skip
    status = upstream_status(exc)
    # `upstream_failed` always runs (a request that never left is recorded as one that did), whatever answers
    failed = status if passed_on else ex.upstream_failed(status)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED and _deadline_passed(context):
        return DeadlinePassed("the call's deadline passed before its upstream answered")
    failed.trailers = tuple(_pass(exc.trailing_metadata()))  # rich error details among them
    if initial:
        failed.initial = tuple(_pass(exc.initial_metadata()))
    return failed


async def _forwarded(rpc: Any, ex: Exchange) -> None:
    """`ex.forwarded()` (`admit(deferred=True)`) once a unary call's request (a passthrough's: its metadata) is on
    its way, so that what only the record and the reply need is done while the upstream computes. grpc.aio sends
    it from a task of its own, whose first step is queued when the call is made: the handler's next step, queued
    after it, runs once the request is with grpc's core. If the handler is cancelled meanwhile (its client left), or
    `forwarded` fails (the proxy's fault, raised as it is), the upstream's call is cancelled, as grpc.aio cancels
    one whose awaiting is."""
    try:
        await asyncio.sleep(0)
        ex.forwarded()
    except BaseException:
        rpc.cancel()
        raise


def _forward(rpc: Any, ex: Exchange, failed: list[BaseException]) -> None:
    """`ex.forwarded()` for a unary call (`_forwarded` without a step of the handler's own: queued with the loop as the
    upstream's call is made, just after grpc.aio's first step of that call, which hands the request to grpc's core,
    it runs on the same turn, while the upstream computes). If it fails (the proxy's fault), the upstream's call is
    cancelled and what it raised is kept in `failed`, for the handler, which the cancel wakes, to raise as it is. A
    handler cancelled meanwhile (its client left) has cancelled the upstream's call already (grpc.aio cancels one
    whose awaiting is); its record runs `forwarded` once either way (`Exchange.finish`)."""
    try:
        ex.forwarded()
    except BaseException as exc:
        failed.append(exc)
        rpc.cancel()


async def _write(rpc: Any, message: bytes) -> bool:
    """One of the client's messages to the upstream's call; False if that call has ended (its status, an error,
    trailers only or OK, is the answer, read by the relay): the rest of the client's messages go nowhere. Checked
    before writing, as grpc.aio's own check (which raises InvalidStateError) is: a write that meets the call's end
    in grpc's core instead replaces the upstream's status with INTERNAL, "Internal error from Core" (grpc/grpc#36066;
    README, gRPC)."""
    if rpc.done():
        return False
    try:
        await rpc.write(message)
    except asyncio.InvalidStateError:  # "RPC already finished" (grpc.aio's check of `done`)
        return False
    return True


async def _stop(rpc: Any, writer: asyncio.Task[None], complete: bool) -> None:
    """A relayed stream's end: unless the upstream's call ended by itself (`complete`), it is cancelled (the
    client left, the drain cut the call, the proxy ended it); the writer (`_pump`) is stopped and waited for. What it
    raised is not kept by this frame: raised here, its traceback held this frame, which holds the writer, which holds
    it, a reference cycle with the call's frames and Exchange (a write that met the upstream's end in grpc's core).
    A SystemExit or KeyboardInterrupt (no Exception) goes on as it is, its traceback with it: asyncio raised it out of
    the loop as the writer did (the process is ending: a cycle left costs nothing, where it was raised is its last
    words)."""
    if not complete:
        rpc.cancel()
    if not writer.done():
        writer.cancel()
    try:
        await writer
    except (asyncio.CancelledError, grpc.aio.AioRpcError, ProxyError) as error:
        error.__traceback__ = None
    except Exception as error:  # a defect's: raised on (logged, answered INTERNAL: `_Ends.close`) as a new error
        # from it, with where it was raised: the writer keeps this one, and whatever traceback it had (the writer's
        # frames, which hold the relay's task; this frame, which holds the writer; the relay's, which holds it too) made
        # a cycle. Until 2026-12-06 raised on as it was
        where = traceback.extract_tb(error.__traceback__)[-1:]
        error.__traceback__ = None
        at = f" (raised at {where[0].filename}:{where[0].lineno} in {where[0].name})" if where else ""
        raise RuntimeError(f"the relay's writer failed: {type(error).__name__}: {error}{at}") from error


def _unchained(error: ProxyError) -> None:
    """Drop what a refusal keeps of where it was raised (its traceback, and the exception it was raised in handling),
    before grpc's abort answers it: grpc keeps the abort's exception, whose traceback holds the handler's frame, with the
    call's state, in a cycle only a gc pass frees, and with them this error, whose traceback held the frames that read
    the request message and so the message (measured: each call refused so with a 16 MiB message kept 17 MiB in a
    `serve` process until a gc pass, uncounted in `limits.bodies_max_bytes`). A refusal's traceback is never logged."""
    error.__traceback__ = error.__context__ = error.__cause__ = None


# what a handler raises that is answered as it is: a refusal or an upstream's status (ProxyError), a cancel (the client
# left, the drain), grpc's own abort
_ENDS_AS_THEY_ARE: tuple[type[BaseException], ...] = (ProxyError, asyncio.CancelledError, grpc.aio.AbortError)


class _Ends:
    """How every gRPC call ends (`close`, with what its handler raised, if anything): a ProxyError is recorded,
    then sent as the status with the lineage as trailers; a client that leaves (its handler cancelled, or a
    reply grpc could not send it: `unsent`) is recorded as gone; and whatever happens, the call is finished.
    Not an `async with` (see the module's docstring): a handler calls `close` after its `try`, never in it."""

    def __init__(self, ingress: GrpcIngress, ex: Exchange, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._ingress, self._ex, self._context = ingress, ex, context
        self._generation = _SERVER.get()  # the server the call came to (a reload may start another meanwhile)
        # a streamed reply's write failed: grpc's error (the call's client side is gone) goes on to grpc as a
        # cancel (`close`), and the call is recorded as one its client left
        self.unsent = False

    async def close(self, error: BaseException | None) -> None:
        """End the call; `error`, what its handler raised, is raised again (a ProxyError as grpc's abort). Anything
        else raised (a defect of the proxy's) is logged, recorded as internal_error and answered INTERNAL, as the
        HTTP ingress answers it: grpc would answer UNKNOWN with the exception's text, and the record said nothing
        failed."""
        ex = self._ex
        # (an upstream's in-band error that did not end the stream gives way to what did in `Exchange.finish`; one a
        # call was recorded with stays, counted then, should its client leave while the record is held: `_unanswered`)
        if error is not None and not self.unsent and not isinstance(error, _ENDS_AS_THEY_ARE):
            log.error("internal error handling gRPC %s", ex.target.operation, exc_info=error,
                      extra={"trace_id": ex.trace.trace_id_hex})  # fmt: skip
            error = ProxyError("internal error in lineage-proxy; see its log")
            ex.outcome.status = grpc.StatusCode.INTERNAL.value[0]  # whatever the upstream said, the client gets this
        try:
            if isinstance(error, ProxyError):
                _unchained(error)
                if ex.call is None:  # refused before it was read: its caller, if known
                    context = self._context
                    ex.pipeline.name_refused(error, _read(context).found.get, self._ingress._peer(context))
                sent: Durable = concurrent.futures.Future()  # the status's send: the record is held until it is done
                try:
                    # the upstream's initial metadata, before its status (`_upstream_error`) and the record
                    unsent = await self._initial(error.initial) if error.initial else None
                    if unsent is None:
                        await self._ingress._abort(self._context, ex, error, sent)  # raises: the status goes out
                    error = unsent  # the client is gone (recorded so): no status to send it; grpc's error goes on
                except asyncio.CancelledError:  # while its answer waited for the record's write: it never went out
                    self._gone()
                    raise
                except grpc.aio.InternalError as failed:  # grpc could not send the status (ExecuteBatchError): the
                    self._gone()  # client left after the call was refused; its record, held till now, says so
                    error = failed
                finally:
                    sent.set_result(None)
            elif error is not None and (self.unsent or isinstance(error, asyncio.CancelledError)):
                self._gone()
        finally:
            ex.finish()
            if ex.refused is not None:  # the client left before its stream's denial was answered
                ex.refused.finish(CLIENT_GONE)
        if error is not None:
            if isinstance(error, grpc.aio.InternalError):
                # grpc's core failed a send (ExecuteBatchError): the client left, recorded so (`unsent`, `_initial`; any
                # other is answered INTERNAL, above). Told grpc as a cancel, which grpc.aio logs at DEBUG: raised on,
                # it would be logged at ERROR with a traceback whenever the call is not yet marked closed, a race of its
                # core
                error = asyncio.CancelledError()
            try:
                raise error
            finally:  # not kept by this frame, which its traceback holds (a reference cycle)
                error = None

    async def _initial(self, metadata: Metadata) -> BaseException | None:
        """Send the upstream's initial metadata before an error status (`_reply_metadata`); None once sent. A client gone
        meanwhile is recorded so (`_gone`): grpc cancelled the handler in the round (raised), or could not send it
        (returned: what grpc raised, for the handler to raise as a reply's unsent is, `unsent`). Such a call is not
        then answered (`_abort`): that waited for its record's write and sent a status to no one, and a drain's cut
        that met the wait was counted twice (`_cancelled`: "2 gRPC call(s) ... cut off" for one)."""
        try:
            await self._context.send_initial_metadata(metadata)
        except Exception as exc:
            self._gone()
            return exc
        return None

    def _gone(self) -> None:
        """The call ended by grpc's cancel (its client left, its deadline passed, the drain cut it), or by a reply grpc
        could not send: recorded so, with the status its client got; one recorded already whose answer waited for its
        record's write (`Exchange.held`) never got that answer."""
        ex = self._ex
        code, why = self._ingress._cancelled(self._context, self._generation)
        for one in (ex, ex.refused):
            if one is not None and (not one.outcome.ended_ns or one.held):
                one.outcome.status = code
                one.finish(why)
