"""gRPC upstreams: one keep-alive channel per upstream, and OIP model metadata for discovery."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio

from proxy.checkpoints import METADATA_TIMEOUT_S
from proxy.config import Limits, Upstream, UpstreamTls
from proxy.errors import UpstreamStatus, UpstreamUnavailable
from proxy.protocols import MetadataStatus
from proxy.protocols.oip_grpc import MODEL_METADATA, encode_model_metadata_request, read_model_metadata
from proxy.record.export import RECONNECT_OPTIONS
from proxy.tls import UpstreamFiles as Files
from proxy.tls import grpc_channel_credentials, read_tls

# grpc's default reconnect backoff (1 s, x1.6 per failed attempt, up to 120 s) left an upstream back from an
# outage unreached for seconds to minutes: every call between two attempts was answered UNAVAILABLE untried (a
# model server restarted beside the sidecar). Capped at 1 s, as the OTLP exporter's: one refused connect a second
# while it is down
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1), ("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0),
    *RECONNECT_OPTIONS,
]  # fmt: skip


WINDOW_BYTES: Final = Limits().grpc_stream_window_bytes  # (`use` is told the config's: `call_window`)


def reply_limit(limits: Limits) -> int:
    """The largest reply message an upstream's call takes (limits.grpc_max_reply_bytes, else max_body_bytes), as grpc's
    `grpc.max_receive_message_length` on the channels (a C int). grpc reads a message whole before the proxy sees it:
    unbounded (-1, until 2026-12-03), an upstream answering with a message of gigabytes had the proxy hold all of it.
    Past it grpc fails the call RESOURCE_EXHAUSTED ("Received message larger than max"), which the ingress answers as
    the proxy's own refusal (`proxy.ingress.grpc._upstream_error`: `reply_too_large`)."""
    most = limits.grpc_max_reply_bytes
    return min(limits.max_body_bytes if most is None else most, 2**31 - 1)


REPLY_BYTES: Final = reply_limit(Limits())
# what `use` is told: each call's window (`call_window`) and its largest reply message (`reply_limit`); a window alone
# takes the default reply limit
Sizes = tuple[int, int]


def window_options(window: int) -> list[tuple[str, int]]:
    """grpc's options for a fixed HTTP/2 receive window of `window` bytes a stream (limits.grpc_stream_window_bytes).
    grpc sized it from the bandwidth-delay product it measured (BDP probing), without bound: a stream whose other side
    read nothing held 18-66 MiB on loopback, about 0.5 GiB at 80 ms round trip, 1 GiB at 200 ms. Fixed, a stream holds
    at most about `window` of what the proxy has not passed on, and moves at most `window` a round trip. A message
    larger than it still passes: grpc widens one stream's window for the message it is reading."""
    return [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window)]


def call_window(limits: Limits) -> int:
    """Each gRPC call's receive window, on the listener (the client's requests) and on the upstream channels (the
    upstream's replies): limits.grpc_stream_window_bytes, at most limits.bodies_max_bytes / limits.grpc_max_calls (at
    least HTTP/2's initial 65535). The listener takes at most grpc_max_calls calls at once, and each makes at most
    one upstream call: what grpc reads ahead of the proxy, every call at once, is at most bodies_max_bytes on each
    side. (The channels' window was grpc_stream_window_bytes alone: upstreams flooding clients that read nothing held
    up to grpc_max_calls x 32 MiB, 16 GiB with the defaults.)"""
    return max(65_535, min(limits.grpc_stream_window_bytes, limits.bodies_max_bytes // limits.grpc_max_calls))


def grpc_ms(seconds: float) -> int:
    """A grpc option in milliseconds: a C int, at least 1."""
    return min(max(1, round(seconds * 1000)), 2**31 - 1)


_LOOKUP_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)
# A retired channel closes once its calls have ended, however long that takes (streams may have no
# deadline); `close` ends the rest when the proxy stops.
_UNTIL_CALLS_END_S = 1e9


def upstream_status(exc: grpc.aio.AioRpcError) -> UpstreamStatus:
    """grpc's error as the transport-neutral one the Exchange maps (like httpcore's map_exceptions)."""
    code = exc.code()
    return UpstreamStatus(code.name, exc.details() or code.name)


Pair = tuple[str, str | bytes]


class SentMetadata(grpc.aio.Metadata):  # type: ignore[misc]  # grpc has no types
    """The metadata of a call to an upstream, made from its pairs in one step. grpc.aio reads a call's metadata
    only by iterating it, once, as it makes the call (`tuple(metadata)`); its own Metadata is built pair by pair
    (`add`) and iterated by a generator: Python for every key, twice, on every call. Iterated, it gives what
    grpc.aio's would (the pairs as made when no key repeats). Anything else asked of this
    one (a key, `add`, equality) first makes the mapping grpc.aio's Metadata keeps, and is then answered as
    grpc.aio's is."""

    def __init__(self, pairs: list[Pair], distinct: bool = False) -> None:  # (grpc.aio's would build the mapping)
        self._pairs: list[Pair] | None = pairs
        # no key repeats among `pairs`, as its maker knows (the gRPC ingress, from its one walk of the caller's
        # metadata: `_Received.repeats`): iterated as they are, with no check
        self._distinct = distinct
        self._mapping: OrderedDict[str, list[str | bytes]] | None = None

    @property
    def _metadata(self) -> OrderedDict[str, list[str | bytes]]:
        """grpc.aio's Metadata's mapping (key: its values, in order), read by every method of its but these."""
        mapping = self._mapping
        if mapping is None:
            mapping = self._mapping = OrderedDict()
            for key, value in self._pairs or ():
                mapping.setdefault(key, []).append(value)
            self._pairs = None  # from now on the mapping is the metadata (`add` changes it)
        return mapping

    def __iter__(self) -> Iterator[Pair]:
        pairs = self._pairs
        # grpc.aio iterates a key's values together, keys in the order they first came: the pairs as made when no
        # key repeats (a caller's metadata seldom repeats one; a dict made in C says whether one does)
        if pairs is not None and (self._distinct or len(dict(pairs)) == len(pairs)):
            return iter(pairs)
        return super().__iter__()  # type: ignore[no-any-return]

    def __len__(self) -> int:
        pairs = self._pairs
        return len(pairs) if pairs is not None else super().__len__()

    def __bool__(self) -> bool:  # grpc.aio asks `metadata or Metadata()` of every call: no __len__ call for it
        pairs = self._pairs
        return bool(pairs) if pairs is not None else bool(self._mapping)


def _shape(upstream: Upstream) -> tuple[str | None, UpstreamTls | None, float]:
    """The settings a channel is made from: the address, the TLS settings and the connect timeout."""
    return upstream.grpc, upstream.tls, upstream.connect_timeout_s


@dataclass(frozen=True, slots=True)
class _Open:
    upstream: Upstream  # the settings it was made with
    files: Files | None  # the contents of the TLS files it was made with (None: plaintext)
    channel: grpc.aio.Channel


class GrpcChannels:
    """One keep-alive channel per gRPC upstream, made as the config in force says.

    A reload (`use`) that changes how an upstream is reached — its address, its TLS settings, the
    contents of its TLS files, or its `connect_timeout_s` — retires its channel (each call's window, `call_window`, or
    largest reply, `reply_limit`: every channel): the next call opens a new
    one, and the old one closes once the calls made on it have ended. A call decided on the config a reload replaced goes the way that
    config said, on a channel of its own that closes when the call ends.
    """

    def __init__(self) -> None:
        # the channel each upstream takes its calls on, by name (`channel`), read too by the gRPC ingress to find the
        # callable it made on one without a call of `channel` (`GrpcIngress._callable`): never rebound
        self.opened: dict[str, _Open] = {}
        self._wanted: dict[str, Upstream] | None = None  # the config in force's gRPC upstreams, once told
        # the TLS files of the config in force's gRPC upstreams, by their settings, as read off the event loop (a
        # reload's) or at start (`use`), or why they could not be; and those the config before it read (calls decided
        # on it): never read by a call
        self._tls_read: dict[UpstreamTls, Files | OSError] = {}
        self._tls_before: dict[UpstreamTls, Files] = {}
        self._retiring: dict[grpc.aio.Channel, asyncio.Task[None]] = {}
        # each channel's own for the upstream's metadata (`model_metadata`: readiness, checkpoints), a connection of its
        # own, made on its first ask; retired with it
        self._probes: dict[grpc.aio.Channel, grpc.aio.Channel] = {}
        self._window = WINDOW_BYTES  # each stream's receive window (`window_options`)
        self._most = REPLY_BYTES  # each call's largest reply message (`reply_limit`)

    def use(
        self,
        upstreams: Iterable[Upstream],
        sizes: int | Sizes = WINDOW_BYTES,
        read: dict[str, Files | OSError] | None = None,
    ) -> None:
        """The config in force (at start and on every reload), with each call's window and largest reply message
        (`window_for` its limits; a window alone: the default reply limit); its TLS files as `read` holds them
        (`read_tls`: a reload's, read off the event loop), else read here (at start, before serving): the channels
        made from now on are made with them. One whose files the start could not read (gone since the loader checked
        them) has its calls refused (`_files_for`); a reload that could not read or use them is refused whole
        (`server._unread`), so `read` holds none."""
        upstreams = list(upstreams)
        self._wanted = {u.name: u for u in upstreams if u.grpc}
        if read is None:
            read = read_tls(upstreams)
        self._tls_before = {tls: files for tls, files in self._tls_read.items() if not isinstance(files, OSError)}
        self._tls_read = {}
        for name, files in read.items():
            tls = self._wanted[name].tls if name in self._wanted else None
            if tls is None:
                continue
            self._tls_read[tls] = files
        window, most = (sizes, REPLY_BYTES) if isinstance(sizes, int) else sizes
        rewindowed = window != self._window or most != self._most
        self._window = window
        self._most = most
        for name, entry in list(self.opened.items()):
            wanted = self._wanted.get(name)
            if (wanted is not None and not rewindowed and _shape(wanted) == _shape(entry.upstream)
                    and self._read_for(wanted) == entry.files):  # fmt: skip
                self.opened[name] = _Open(wanted, entry.files, entry.channel)
                continue
            del self.opened[name]
            self._retire(entry.channel)

    @staticmethod
    def window_for(limits: Limits) -> Sizes:
        """Each call's receive window on the channels and its largest reply message, as `limits` say (`call_window`,
        `reply_limit`)."""
        return call_window(limits), reply_limit(limits)

    def in_use(self, channel: grpc.aio.Channel) -> bool:
        """Whether `channel` is the one an upstream of the config in force takes its calls on (not retired)."""
        return any(entry.channel is channel for entry in self.opened.values())

    def channel(self, upstream: Upstream) -> grpc.aio.Channel:
        entry = self.opened.get(upstream.name)
        if entry is not None and (entry.upstream is upstream or _shape(entry.upstream) == _shape(upstream)):
            return entry.channel
        wanted = self._wanted.get(upstream.name) if self._wanted is not None else upstream
        files = self._files_for(upstream)
        if wanted is None or _shape(wanted) != _shape(upstream):  # decided before a reload changed it
            channel = self._make(upstream, files)
            self._retire(channel)  # closes once the call made on it right after this returns has ended
            return channel
        if entry is not None:
            self._retire(entry.channel)
        channel = self._make(upstream, files)
        self.opened[upstream.name] = _Open(upstream, files, channel)
        return channel

    def _read_for(self, upstream: Upstream) -> Files | OSError | None:
        """`upstream`'s TLS files as the config in force read them (or why they could not be); None without TLS."""
        return self._tls_read.get(upstream.tls) if upstream.tls is not None else None

    def _files_for(self, upstream: Upstream) -> Files | None:
        """`upstream`'s TLS files as read at start or by a reload, off the event loop (`use`); None without TLS. Read by
        a call on the loop, a file on a hung mount held every call and the stop for good. UpstreamUnavailable when they
        could not be read (the call is refused, and recorded so), or were not (a call decided two reloads ago)."""
        if upstream.tls is None:
            return None
        files = self._tls_read.get(upstream.tls) or self._tls_before.get(upstream.tls)
        if isinstance(files, OSError):
            raise UpstreamUnavailable(f"upstream {upstream.name!r}: cannot read its TLS files ({files.strerror or files})"
                                      ": reload once they can be read")  # fmt: skip
        if files is None:
            raise UpstreamUnavailable(f"upstream {upstream.name!r}: its TLS settings were replaced by two reloads "
                                      "since this call was decided: try it again")  # fmt: skip
        return files

    def _make(self, upstream: Upstream, files: Files | None, own: bool = False) -> grpc.aio.Channel:
        """A channel to `upstream`; `own`: on a connection of its own (grpc shares one among channels made alike)."""
        assert upstream.grpc is not None
        # a connect attempt is given `connect_timeout_s`, as an HTTP upstream's is (grpc's own: 20 s); calls waiting
        # on it are answered UNAVAILABLE then
        options: list[tuple[str, str | int]] = [
            *_CHANNEL_OPTIONS,
            *window_options(self._window),
            ("grpc.max_receive_message_length", self._most),
            ("grpc.min_reconnect_backoff_ms", grpc_ms(upstream.connect_timeout_s)),
        ]
        if own:
            options.append(("grpc.use_local_subchannel_pool", 1))
        if upstream.tls is None or files is None:
            return grpc.aio.insecure_channel(upstream.grpc, options=options)
        if upstream.tls.server_name:
            options.append(("grpc.ssl_target_name_override", upstream.tls.server_name))
        return grpc.aio.secure_channel(upstream.grpc, grpc_channel_credentials(files), options=options)

    def _retire(self, channel: grpc.aio.Channel) -> None:
        """Take no new calls on `channel` (nor on its probe's); close it once the calls already made on it have ended."""
        probe = self._probes.pop(channel, None)
        if probe is not None:
            self._retire(probe)
        task = asyncio.get_running_loop().create_task(channel.close(_UNTIL_CALLS_END_S))
        self._retiring[channel] = task
        task.add_done_callback(lambda _: self._retiring.pop(channel, None))

    async def model_metadata(self, upstream: Upstream, model: str) -> dict[str, Any]:
        """OIP ModelMetadata for checkpoint discovery (and readiness); LookupError when the upstream does not serve it.
        Asked on a connection of its own (`_probe`), never behind the upstream's calls: an upstream allowing few
        streams a connection (`grpc.max_concurrent_streams`), every one of them held by a busy call, kept it waiting in
        the channel until it timed out, and the upstream was called down (/readyz 503) while it served."""
        channel = self._probe(upstream)
        method = channel.unary_unary(MODEL_METADATA)
        headers = (("authorization", f"Bearer {upstream.api_key}"),) if upstream.api_key else None
        try:
            reply = await method(encode_model_metadata_request(model),
                                 timeout=min(upstream.timeout_s, METADATA_TIMEOUT_S), metadata=headers)  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in _LOOKUP_CODES:
                raise MetadataStatus(404, f"model {model!r}") from None
            if code != grpc.StatusCode.DEADLINE_EXCEEDED and channel.get_state() == grpc.ChannelConnectivity.READY:
                # connected, the server answered about this model with a status of its own (Triton's UNAVAILABLE,
                # "has no available versions", for a model loading or that failed to load): up, the model not ready
                raise MetadataStatus(503, f"model {model!r}: {code.name}: {exc.details()}") from None
            raise ConnectionError(f"{code.name}: {exc.details()}") from None
        return read_model_metadata(reply)

    def _probe(self, upstream: Upstream) -> grpc.aio.Channel:
        """The channel `upstream`'s metadata is asked on: its calls' channel's own probe, on a connection of its own,
        made with it (the same address, TLS files and options) on its first ask; the calls' channel itself for one
        decided before a reload changed the upstream (`channel`), which closes once that ask ends."""
        channel = self.channel(upstream)
        entry = self.opened.get(upstream.name)
        if entry is None or entry.channel is not channel:
            return channel
        probe = self._probes.get(channel)
        if probe is None:
            probe = self._probes[channel] = self._make(entry.upstream, entry.files, own=True)
        return probe

    async def close(self) -> None:
        """Close every channel now, retired ones included (calls still on them are cancelled)."""
        retiring = list(self._retiring.items())
        self._retiring.clear()
        for _, task in retiring:
            task.cancel()
        await asyncio.gather(*(task for _, task in retiring), return_exceptions=True)
        probes = list(self._probes.values())
        self._probes.clear()
        for channel in [*(entry.channel for entry in self.opened.values()), *(channel for channel, _ in retiring)]:
            await channel.close()
        for probe in probes:
            await probe.close()
        self.opened.clear()
