"""Checkpoint identity: which weights serve a model name, from the most trusted source available.

Order of trust (ARCHITECTURE.md): a pin in config, then the upstream's own metadata, read by the
upstream's dialect (proxy/protocols/) in the background and kept fresh, then what the response says.
`resolve` is a dict lookup: nothing on the hot path waits for discovery. What is not known yet is said
by `why_unknown` (for a call refused for it only), for `lineage.on_unapproved: block` to refuse the call
rather than let it reach weights nobody checked.

The model names an upstream's metadata is asked about are its routes' names, the names it listed when
asked, and names calls asked for since (`want`). A name calls asked for waits to be asked about, at most
`WAITING_PER_CALLER` per caller and `NEW_PER_ROUND` per round, and is asked about once: a name the metadata
does not list is remembered as such (bounded) and not asked about again until a call asks for it after
`NUDGE_GAP_S` (a refused one) or `discovery_interval_s` (a forwarded one). So names a caller makes up cost
one metadata request each and keep no other caller's model out, and a round asks only the names waiting,
not every model again (the names kept are read again every `discovery_interval_s`). A name longer than
`NAME_MAX_CHARS` (no server's; a caller's, as long as a body) is not asked about: the tables would keep it whole.

Some upstreams answer names their metadata does not list, and their metadata says so (a server that loads
one model answers every name with it; Ollama answers `llama3` with the `llama3:latest` it lists): their
dialect's catalog resolves such names to the checkpoint that really serves them (proxy/protocols/openai.py,
`Dialect.discover`), so the record names those weights, not the name the call made up, and `block` decides
on them. Any other name the metadata does not name stays unknown.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import ipaddress
import itertools
import logging
import math
import mmap
import tempfile
import time
import zlib
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from proxy.config import Upstream
from proxy.config.loader import shown_url
from proxy.errors import CheckpointUnknown, plaintext_hint
from proxy.flow import CONFIG, NAME_MAX_CHARS, UPSTREAM, Checkpoint
from proxy.logs import escaped
from proxy.protocols import DIALECTS, LOADERS, Catalog, Fetch, MetadataIncomplete
from proxy.protocols import MetadataStatus as MetadataStatus  # where the upstream client raises it from

log = logging.getLogger("lineage_proxy.checkpoints")

# the model listing each dialect reads (`Dialect.discover`): not found there, the upstream may speak another protocol
_LISTINGS: Final = {"openai": "/v1/models"}
_OIP_SERVER = "/v2"  # OIP v2's server metadata: `{"name": "mlserver", "version": "1.6.1", "extensions": [...]}`


async def protocol_hint(upstream: Upstream, fetch: Fetch, exc: BaseException) -> str:
    """What to add to the warning when an HTTP upstream's model listing is not found (404: an `openai` upstream, the
    default, in front of MLServer or Triton): the `protocol:` values, and what the server seems to be, asked once
    (GET /v2) when the warning is said; discovery only, never a call. Else ''."""
    listing = _LISTINGS.get(upstream.protocol)
    if not isinstance(exc, MetadataStatus) or exc.status != 404 or listing is None or exc.what != listing:
        return ""
    try:
        server = await fetch.get_json(upstream, _OIP_SERVER)
    except Exception:
        server = None
    default = " (the default)" if upstream.protocol == "openai" else ""
    said = f"GET {listing} is not found: protocol: {upstream.protocol}{default} lists the models there"
    values = f"protocol: is one of {', '.join(DIALECTS)}"
    if isinstance(server, dict) and isinstance(server.get("name"), str) and "extensions" in server:
        version = server.get("version")
        what = escaped(server["name"][:64] + (f" {version[:32]}" if isinstance(version, str) else ""))
        return (
            f" ({said}; the server answers GET {_OIP_SERVER} as an OIP v2 server ({what}): set protocol: oip; {values})"
        )
    return (f" ({said}: is the url the server's root, and does it speak that protocol? {values}: oip for OIP v2 "
            "servers (MLServer, Triton, KServe), passthrough for any other HTTP API)")  # fmt: skip


# dialects whose metadata never names a checkpoint (passthrough reads none): only a pin or the reply does
SILENT_DIALECTS = frozenset({"passthrough"})
METADATA_TIMEOUT_S = 10.0  # how long one metadata request may take, at most (the transports read it too)


def unreached_reason(exc: BaseException, upstream: Upstream) -> str:
    """Why an upstream's metadata was not read, in words: a request that ran out of time raises a TimeoutError with
    no text, which said only `TimeoutError` of a server that takes connections and answers nothing (hung)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        bound = min(upstream.timeout_s, METADATA_TIMEOUT_S)
        return f"no answer within {bound:g}s (its timeout_s, at most {METADATA_TIMEOUT_S:g}s for metadata)"
    return str(exc) or type(exc).__name__


# a name a refused call asks for is asked about again at most this often: what its Retry-After says
NUDGE_GAP_S = float(CheckpointUnknown.retry_after_s)
# a readiness probe (`check`) asks an upstream that is down again this long after its last try at least, doubled after
# each try that fails (NUDGE_GAP_S first), up to the max: a probe a second from many kubelets asked a down server once
# a second. Below a kubelet's default period (10 s): an upstream back up is ready again within it and the next probe
DOWN_PROBE_MAX_S = 8.0
MODELS_KEPT = 1024  # names the metadata listed, kept fresh per upstream besides its routes' names
ABSENT_KEPT = 1024  # names the metadata did not list, remembered per upstream (the oldest forgotten first)
NEW_PER_ROUND = 64  # names calls asked for, asked about in one round of an upstream's metadata at most
WAITING_PER_CALLER = 16  # names one caller asked for, waiting to be asked about at most (per upstream)
CHANGE_SLOTS: Final = 4096  # upstream names' slots in the changes the workers share (`Changes`), 8 bytes each
# what a change that replaced a server's weights adds to its count (`Changes.bump`) beside the 1 every change adds: the
# changes are counted in its low 32 bits, those replacements in the bits above (2**32 changes to one server: none)
REPLACED_BIT: Final = 32
REPLACED: Final = 1 << REPLACED_BIT
LEARNING: Final = ""  # who waits for the names forwarded calls ask for (to name their checkpoint in the record)


class Changes:
    """How many times each upstream was told to change what serves through the proxy (a `POST /lora-adapters`
    relayed), counted by every worker of `serve --workers N` in memory they share: made by the supervisor before it
    forks them (`share_changes`). A worker that relays one counts it (`bump`); the others find the count changed
    where they resolve a checkpoint that depends on it (`CheckpointBook.resolve`, one int read) and read the
    upstream again as the one that relayed it does. An upstream's count is in the slot its server's address hashes
    to (`server`, `CHANGE_SLOTS`): every name that reaches one server shares it, and two servers that share one (1 in
    4,096 a pair) make a change to either read both again. A count says what kind of change moved it too: those that
    replaced the weights its base serves (SGLang's `update_weights_from_disk`, `REPLACED` each) are in its high bits,
    so one read of one word says both, as they were counted together (`replacements`). So a replacement on one of two
    servers sharing a slot makes every worker forget the other's base too, from its next call on it until a round of
    it, asked then, reads it again: one round, not told apart, as that needs a second word read apart from the first
    and a second count kept for each server through rounds and reloads, where a slip keeps a base that was replaced."""

    def __init__(self) -> None:
        # a file unlinked already, only its descriptor kept (inherited by fork): its memory is what the workers share,
        # and the lock a bump takes on it is a POSIX record lock, each process's own, let go if the process dies
        self._file = tempfile.TemporaryFile(prefix="lineage-proxy-changes-")  # noqa: SIM115 (open for good)
        self._file.truncate(8 * CHANGE_SLOTS)
        self._map = mmap.mmap(self._file.fileno(), 8 * CHANGE_SLOTS)
        self._counts = memoryview(self._map).cast("q")

    def slot(self, name: str) -> int:
        return zlib.crc32(name.encode("utf-8", "surrogatepass")) % CHANGE_SLOTS

    def get(self, slot: int) -> int:
        return int(self._counts[slot])

    def bump(self, slot: int, replaced: bool = False) -> int:
        """Count a change in `slot`, `replaced` when it replaced the weights its base serves (whichever worker counts
        one at the same time, none is lost); the count after."""
        fd = self._file.fileno()
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            count = int(self._counts[slot]) + 1 + (REPLACED if replaced else 0)
            self._counts[slot] = count
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        return count


def replacements(count: int) -> int:
    """Of the changes a `Changes` count holds, how many replaced the weights their server's base serves."""
    return count >> REPLACED_BIT


_shared_changes: list[Changes] = []  # the one `share_changes` made (none: one process serves)


def share_changes() -> None:
    """Called by `serve --workers N`'s supervisor before it forks its workers: their books count the changes made
    through the proxy in memory they share (`Changes`). A single process has none to share."""
    if not _shared_changes:
        _shared_changes.append(Changes())


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LOOPBACK: Final = "localhost"  # every name of this host's loopback, as one (`server`)


def server(upstream: Upstream) -> str:
    """The server `upstream` reaches, as a change made through the proxy is known by (`CheckpointBook.changed`): its
    HTTP URL (a `POST /lora-adapters` changes what serves every call to that server, whichever upstream name reached
    it), else its name. The URL as the connection reads it, whatever its spelling: scheme and host in lower case,
    the port given (80, 443 when the URL has none), an IP address in one form, and `localhost` and every loopback
    address as one host, so `http://localhost:8080` and `http://127.0.0.1:8080/` are one server. Names are not
    resolved (DNS, at start, may hang or change): two names of one remote server stay two. Taking two servers for
    one only makes a change to either read both again."""
    if not upstream.url:
        return upstream.name
    try:
        parts = urlsplit(upstream.url)
        port = parts.port
    except ValueError:  # (the loader refuses such a URL)
        return upstream.url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")  # (lower case)
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if host == _LOOPBACK or host.endswith("." + _LOOPBACK):
            host = _LOOPBACK
    else:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        address = mapped or address
        host = _LOOPBACK if address.is_loopback else f"[{address}]" if address.version == 6 else str(address)
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def metadata_names(upstream: Upstream) -> bool:
    """Whether `upstream`'s metadata names the checkpoint its calls reach: no pin, a dialect that reads one."""
    return not upstream.checkpoint and upstream.protocol not in SILENT_DIALECTS


class _Known:
    """What one upstream's metadata said, and what it is to be asked. The catalog of the last full round
    (`base`), and for names asked about in a round since, the catalog of that round (`fresh`: a newer
    answer, listed or not)."""

    def __init__(self) -> None:
        self.base: Catalog | None = None
        self.fresh: dict[str, Catalog] = {}
        self.listed: dict[str, None] = {}  # names asked about and listed (kept fresh), in order
        # names asked about and not listed -> when (monotonic), oldest first (an OrderedDict: popped at the front)
        self.absent: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.waiting: dict[str, str] = {}  # names to ask about -> who asked for it, first come first asked
        self.waits: collections.Counter[str] = collections.Counter()  # who -> how many names of theirs wait
        # names kept (routed, or listed before) whose metadata answered "not ready" (`Catalog.unready`): a model
        # loading, or that failed to load; and names a route names whose metadata answered "not found"
        # (`Catalog.missing`): a model not loaded yet, or unloaded -> when (monotonic); full rounds come sooner while
        # there are any (`CheckpointBook._keep_fresh`), and a refused call asks again as for a name not listed (`want`)
        self.unready: dict[str, float] = {}
        self.due = True  # the next round asks about every name kept (not only those waiting)
        # with workers (`Changes`): the upstream's slot once a round read scales a change would make stale (-1: none
        # read, or one process), and the count of changes in it that what is kept was read after, or knows of
        self.watch = -1
        self.seen = 0

    def scales_unknown(self) -> None:
        """What serves was changed through the proxy and not read since (`CheckpointBook.changed`): every catalog
        kept names what depends on it unknown (`Catalog.scales_unknown`; once more is the same)."""
        if self.base is not None:
            self.base = self.base.scales_unknown()
        self.fresh = {model: catalog.scales_unknown() for model, catalog in self.fresh.items()}

    def weights_unknown(self) -> None:
        """The weights its base serves were replaced through the proxy (SGLang's `update_weights_from_disk`) and not
        read since: nothing read before names what serves any name there now (a loader's base kept by
        `scales_unknown` too), so nothing is kept, as before its first round (`CheckpointBook._hold`: its limited
        routes wait for the listing)."""
        self.base, self.fresh = None, {}

    def copy(self) -> _Known:
        other = _Known()
        other.base, other.fresh, other.listed = self.base, dict(self.fresh), dict(self.listed)
        other.absent, other.waiting, other.waits = self.absent.copy(), dict(self.waiting), self.waits.copy()
        other.unready, other.due = dict(self.unready), self.due
        other.watch, other.seen = self.watch, self.seen
        return other

    def take(self) -> tuple[str, ...]:
        """The names waiting that the next round asks about (the first `NEW_PER_ROUND`)."""
        return tuple(itertools.islice(self.waiting, NEW_PER_ROUND))

    def answered(
        self, catalog: Catalog, asked: frozenset[str], taken: tuple[str, ...], full: bool,
        routed: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        """What a round learnt: `catalog`, the answer about the names `asked` (all kept when `full`). A name kept
        (`routed`, or listed) that the upstream says is not ready stays kept, to be asked again: its model is
        loading, not gone; so does a name a route names that it says it does not serve (newer Triton's 404 for a
        model not loaded yet): the route says it is to be served. A name only a call asked for (a `"*"` route's) is
        as one not listed, asked again when a call asks."""
        for model in taken:
            who = self.waiting.pop(model)
            self.waits[who] -= 1
            if not self.waits[who]:
                del self.waits[who]
        if full:
            self.base, self.fresh = catalog, {}
        now = time.monotonic()
        unready, missing = catalog.unready, catalog.missing
        if full:  # names no longer kept (a reload's routes) are not retried
            for model in [name for name in self.unready if name not in asked]:
                del self.unready[model]
        for model in asked:
            if catalog.resolve(model, None) is not None:
                self.absent.pop(model, None)
                self.unready.pop(model, None)
                if model in self.listed or len(self.listed) < MODELS_KEPT:
                    self.listed[model] = None
            elif (model in unready and (model in routed or model in self.listed)) or (
                model in missing and model in routed
            ):
                self.absent.pop(model, None)
                self.unready[model] = now
            else:
                self.unready.pop(model, None)
                self.listed.pop(model, None)
                self.absent[model] = now
                self.absent.move_to_end(model)  # the oldest answer is forgotten first
                if len(self.absent) > ABSENT_KEPT:
                    self.absent.popitem(last=False)
            if not full:
                self.fresh[model] = catalog
        if len(self.fresh) > MODELS_KEPT + ABSENT_KEPT:  # more rounds than one interval's names: start over
            self.due = True


class CheckpointBook:
    """What every upstream serves, kept fresh by one background task per upstream."""

    def __init__(
        self, upstreams: Iterable[Upstream], fetch: Fetch, models: dict[str, set[str]] | None = None,
        changes: Changes | None = None, limits: Iterable[tuple[str, str, frozenset[str]]] = (),
    ) -> None:  # fmt: skip
        """`models`: upstream name -> the model names its routes name (asked about every round); `changes`: those the
        workers share, if not `share_changes`'s (tests); `limits`: the routes that limit their model's purposes, as
        (upstream name, model, purposes), whose weights hold every name served by them (`held`)."""
        self._upstreams = {u.name: u for u in upstreams}
        self._fetch = fetch
        self._pins = {u.name: Checkpoint(u.checkpoint, CONFIG) for u in self._upstreams.values() if u.checkpoint}
        self._known = {name: _Known() for name in self._upstreams}
        self._routed = {name: frozenset(found) for name, found in (models or {}).items()}
        self.reachable: dict[str, bool] = {name: False for name in self._upstreams}
        self.probed: dict[str, bool] = {name: False for name in self._upstreams}
        # upstreams that answered their model list but not the rest of what names what serves (llama.cpp's LoRA
        # adapters: `MetadataIncomplete`) in their last round: up (ready), their checkpoints those read before
        self.incomplete: dict[str, bool] = {name: False for name in self._upstreams}
        self._unread: dict[str, str] = {}  # of those, what was not read (`MetadataIncomplete.what`), last said
        # upstreams told to change what serves through the proxy (`changed`: a `POST /lora-adapters` relayed) how many
        # times, and how many of those a round that answered whole began after (`refresh`): fewer, what was read before
        # is known stale (its catalogs made `scales_unknown`, its metadata incomplete) until a round reads it again
        self._changes: dict[str, int] = {name: 0 for name in self._upstreams}
        self._read: dict[str, int] = {name: 0 for name in self._upstreams}
        # of those changes, the last that replaced the weights its base serves (`changed`'s `replaced`): while a round
        # that answered whole began before it, nothing read before is kept (`_Known.weights_unknown`)
        self._replaced: dict[str, int] = {name: 0 for name in self._upstreams}
        # upstreams whose weights are being replaced through this worker (`replacing`: the update forwarded, its reply
        # not back) -> how many such updates: no round read meanwhile makes what it read known
        self._pending: dict[str, int] = {}
        # the upstreams whose metadata names the checkpoint a call reaches: no pin, a dialect that reads one
        self._named = frozenset(u.name for u in self._upstreams.values() if metadata_names(u))
        self._said_stale: dict[str, bool] = {}  # upstreams whose stale state was logged (once, until read again)
        self._quiet_until: dict[str, float] = {}  # monotonic time before which a refused call does not wake discovery
        self._checks: set[str] = set()  # the upstreams a readiness probe asked to check (`check`): a light round next
        # upstreams down: the monotonic time before which a probe does not ask again, and the gap after the next try
        # that fails (DOWN_PROBE_MAX_S)
        self._probe_after: dict[str, float] = {}
        self._down_gap: dict[str, float] = {}
        self._wake: dict[str, asyncio.Event] = {}
        # one round of an upstream at a time (`refresh`): a round's answer is applied over what the round before it
        # applied, never the other way round, and the names it took are still waiting when it answers
        self._rounds = {name: asyncio.Lock() for name in self._upstreams}
        self._tasks: list[asyncio.Task[None]] = []
        self._all_probed = asyncio.Event()
        self._named_probed = asyncio.Event()
        self._all_reachable = asyncio.Event()
        # upstream name -> futures done once a round that begins after they were made has ended (`changed`)
        self._after_round: dict[str, list[asyncio.Future[None]]] = {}
        # the changes every worker counts (`serve --workers N`), and each upstream's slot in it; None: one process
        self._shared: Changes | None = (
            changes if changes is not None else (_shared_changes[0] if _shared_changes else None)
        )
        shared = self._shared
        self._slots = (
            {name: shared.slot(server(u)) for name, u in self._upstreams.items()} if shared is not None else {}
        )
        # upstream name -> the names of the upstreams a change through it makes stale: itself first, then every other
        # reaching the same server whose metadata names its checkpoints (`changed`)
        self._siblings = {
            name: (name, *(other for other, o in self._upstreams.items()
                           if other != name and other in self._named and server(o) == server(u)))
            for name, u in self._upstreams.items()
        }  # fmt: skip
        self._limits = tuple((name, model, purposes) for name, model, purposes in limits if name in self._upstreams)
        # upstream name -> checkpoint -> the routes (model, purposes) whose model it serves there, of those that limit
        # their purposes: a call served by it is held to each (`Pipeline.decide`), by whatever name it reached them.
        # Per server (the route's upstream and those reaching its server, `_siblings`): a checkpoint's name is the
        # weights only where it is listed (KServe's vLLM lists every model's root as /mnt/models; llama-server the path
        # it was started with). Made when what serves is read (`_hold`), never per call; empty without such routes, so
        # an ordinary call pays one truth test
        self.held: dict[str, dict[str, tuple[tuple[str, frozenset[str]], ...]]] = {}
        # upstream name -> the limiting routes (model, purposes) on its server whose weights are not known yet: their
        # upstream's metadata has not answered whole since start (or since a reload added it). Any other name a call
        # sends there may be one of them (`Pipeline._held` refuses it, retryable, until it is known); such an upstream
        # is in `held` too (no checkpoint held yet), so an ordinary call still pays one truth test
        self.unheld: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
        # upstream name -> the limiting routes (model, purposes) on its server whose weights are a vLLM's base: vLLM
        # serves one base and loads a LoRA adapter on it by name at run time (`POST /v1/load_lora_adapter`, a resolver
        # plugin on the first call naming it), so a name its listing did not hold when read may run on them
        # (`Pipeline._held` refuses it as `unheld`'s, retryable)
        self.loading: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
        # the limiting routes a reload added or changed (`inherit`) whose upstream has not answered a whole round of
        # this book since: what the book replaced read may not name their model (a model pulled or loaded since, not
        # routed then), so until their upstream answers they are `unheld` when their model is not resolved
        self._unasked: set[tuple[str, str, frozenset[str]]] = set()
        self._hold()

    # -- hot path

    def resolve(
        self, upstream: Upstream, model: str, version: str | None = None, *, learn: bool = True
    ) -> Checkpoint | None:
        """The checkpoint serving `model` on `upstream`, if a pin or the metadata says; with `learn`,
        a miss asks the background task to learn about the model (never waits)."""
        pinned = self._pins.get(upstream.name)
        if pinned is not None:
            return pinned
        known = self._known.get(upstream.name)
        if known is not None and known.watch >= 0 and self._shared is not None:
            seen = self._shared.get(known.watch)  # another worker relayed a change: what was read is stale here too
            if seen != known.seen:
                self._changed_elsewhere(upstream, known, seen)
        catalog = known.fresh.get(model, known.base) if known is not None else None
        found = catalog.resolve(model, version) if catalog is not None else None
        if found is None and learn:
            self.want(upstream, model, LEARNING, upstream.discovery_interval_s)
        return found

    def could_name(self, upstream: Upstream, model: str) -> bool:
        """Whether `upstream`'s metadata could name the checkpoint a call for `model` reaches: no pin
        (which `resolve` answers), a dialect that reads metadata, and a model named."""
        return bool(model) and upstream.name in self._named

    def why_unknown(self, upstream: Upstream, model: str, caller: str) -> str:
        """For a call of `caller` refused because `resolve` missed, where `could_name`: why the checkpoint
        is not known yet. The metadata is asked again (the model wanted, or discovery woken, at most once
        every `NUDGE_GAP_S`). A model the metadata was asked about and does not list is not known either:
        it may have been loaded since (a LoRA adapter, a Triton model), or the upstream answers it in a
        way its model list does not say (a one-model server its dialect does not recognise)."""
        name = upstream.name
        known = self._known[name]
        queued = self.want(upstream, model, caller, NUDGE_GAP_S)
        if self.stale(name):
            self.nudge(upstream)
            return (f"upstream {name!r} was told to change its LoRA adapters or weights through the proxy (POST "
                    "/lora-adapters, a load_lora_adapter or unload_lora_adapter, SGLang's update_weights_from_disk) "
                    "and they could not be read since (they are asked again)")  # fmt: skip
        if known.base is None or not self.reachable.get(name) or self.incomplete.get(name):
            self.nudge(upstream)
            if known.base is None:
                if self.incomplete.get(name):
                    unread = self._unread.get(name, "LoRA adapters (/lora-adapters)")
                    return f"upstream {name!r} answered its model list but not its {unread} (asked again)"
                if self.probed.get(name):
                    return f"upstream {name!r} did not answer its metadata (it is asked again)"
                return f"upstream {name!r} has not answered its metadata yet"
        if len(model) > NAME_MAX_CHARS:
            return (f"upstream {name!r}'s metadata is not asked about model names over {NAME_MAX_CHARS} characters: "
                    "approve the flow for any checkpoint, or pin upstreams[].checkpoint")  # fmt: skip
        if model in known.unready:
            catalog = known.fresh.get(model, known.base)
            if catalog is not None and model in catalog.missing:
                return (f"upstream {name!r} answered that it does not serve model {model!r} (not loaded, or "
                        "unloaded); a route names it, so it is asked again")  # fmt: skip
            return (f"upstream {name!r} answered that model {model!r} is not ready (loading, or it failed to load); "
                    "it is asked again")  # fmt: skip
        if model in known.absent:
            return (f"upstream {name!r}'s metadata does not list model {model!r} (it is asked again, at most once "
                    "a second): call the model by a name the metadata lists; or approve the flow for any "
                    "checkpoint (a baseline entry without checkpoints:); or, for an upstream serving one model "
                    "under any name, pin upstreams[].checkpoint")  # fmt: skip
        if not queued:
            return (f"caller {caller!r} is waiting for upstream {name!r}'s metadata to be asked about "
                    f"{WAITING_PER_CALLER} other model names already, not about {model!r} yet")  # fmt: skip
        return f"upstream {name!r}'s metadata is being asked about model {model!r}"

    def unlisted(self, upstream: Upstream, model: str, caller: str) -> bool:
        """Whether `upstream`'s model list did not hold `model` when last asked about it, its metadata read whole since
        and nothing changed through the proxy since (`stale`): a name it does not serve (a typo), or one it may load
        only on a call (a vLLM's LoRA resolver plugin). Asked again, at most once every `NUDGE_GAP_S` (`want`), so a
        name loaded on the server since is learnt."""
        name = upstream.name
        known = self._known[name]
        if (
            model not in known.absent
            or known.base is None
            or self.stale(name)
            or not self.reachable.get(name)
            or self.incomplete.get(name)
        ):
            return False
        self.want(upstream, model, caller, NUDGE_GAP_S)
        return True

    def _hold(self) -> None:
        """Make `held` anew from what the metadata says now serves each limited route's model."""
        if not self._limits:
            return
        held: dict[str, dict[str, tuple[tuple[str, frozenset[str]], ...]]] = {}
        unheld: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
        loading: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
        for name, model, purposes in self._limits:
            found = self.resolve(self._upstreams[name], model, learn=False)
            if (
                found is None
                and name in self._named
                and (self._known[name].base is None or (name, model, purposes) in self._unasked)
            ):
                # its metadata has not answered whole (since start, or since a reload added or changed the route):
                # which names run on the route's weights is not known yet
                for reaching in self._siblings[name]:
                    held.setdefault(reaching, {})
                    unheld[reaching] = (*unheld.get(reaching, ()), (model, purposes))
                continue
            # a pin names what its upstream serves for every name, not which names are the same weights (an upstream
            # of LoRA adapters pinned to their base): only the metadata's names hold one another
            if found is None or found.source != UPSTREAM:
                continue
            # and the checkpoints the same metadata lists as the same weights (Ollama's tags of one digest): on this
            # server alone, as the name itself; by every catalog kept, not the model's alone: a name made since its
            # round (`ollama cp`) resolves through the round that asked about it, which lists it with the same digest
            same = [found.name]
            for catalog in self._catalogs(name):
                same.extend(twin for twin in catalog.twins(found.name) if twin not in same)
            for reaching in self._siblings[name]:
                served = held.setdefault(reaching, {})
                for checkpoint in same:
                    served[checkpoint] = (*served.get(checkpoint, ()), (model, purposes))
                if found.provider in LOADERS and found.parent is None:  # a vLLM's (SGLang's) base, not an adapter
                    loading[reaching] = (*loading.get(reaching, ()), (model, purposes))
        self.held, self.unheld, self.loading = held, unheld, loading

    def _catalogs(self, name: str) -> list[Catalog]:
        """The catalogs kept of upstream `name` (its full round's, and those of rounds since), each once."""
        known = self._known[name]
        catalogs: dict[int, Catalog] = {id(known.base): known.base} if known.base is not None else {}
        for catalog in known.fresh.values():
            catalogs.setdefault(id(catalog), catalog)
        return list(catalogs.values())

    def stale(self, name: str) -> bool:
        """Whether upstream `name` was told to change what serves through the proxy (`changed`) since the last round
        that read its metadata whole began: what was read before is known stale."""
        return self._read.get(name, 0) < self._changes.get(name, 0)

    def nudge(self, upstream: Upstream) -> None:
        """Ask `upstream`'s metadata again now (a call was refused for want of it), unless it is being
        asked, or was less than `NUDGE_GAP_S` ago: calls arriving while it is down do not become a stream
        of probes."""
        event = self._wake.get(upstream.name)
        if event is not None and time.monotonic() >= self._quiet_until.get(upstream.name, 0.0):
            event.set()

    def check(self) -> None:
        """A readiness probe (`/readyz`) asks whether the upstreams still answer: each is asked now, not at the next
        `discovery_interval_s` (an upstream hung since its last round kept /readyz 200 until then), unless it is being
        asked or was less than `NUDGE_GAP_S` ago. One that answered before gets a light round (`refresh`: whether it
        answers, its models not asked about again); one that did not, a full round, as while it is retried, once its
        last try is 1, 2, 4 ... s old (doubled with each try that fails, up to DOWN_PROBE_MAX_S). The probe
        is answered with what is known now: it never waits on an upstream, and the next probe sees this one's answer
        (an upstream that stops answering is down once its metadata request's `timeout_s`, at most 10 s, runs out)."""
        now = time.monotonic()
        for name, event in self._wake.items():
            if now >= self._quiet_until.get(name, 0.0):
                if self.reachable.get(name):
                    self._checks.add(name)
                elif now < self._probe_after.get(name, 0.0):
                    continue  # down: asked by its retries, and by probes backing off
                event.set()

    def want(self, upstream: Upstream, model: str, caller: str = LEARNING, gap: float = NUDGE_GAP_S) -> bool:
        """Ask `upstream`'s metadata about `model` (for `caller`) in a round soon, unless it is kept (and was not
        answered as not ready), waiting already, or was answered as not listed or not ready less than `gap` seconds ago. False when the
        caller has `WAITING_PER_CALLER` names waiting already: it is not asked about."""
        known = self._known.get(upstream.name)
        if (
            known is None
            or not model
            or model in known.waiting
            or (model in known.listed and model not in known.unready)
        ):
            return True
        if len(model) > NAME_MAX_CHARS:  # no server's; as long as a body, and each table below would keep it whole
            return True
        asked = known.absent.get(model)
        if asked is None:
            asked = known.unready.get(model)
        if asked is not None and time.monotonic() - asked < gap:
            return True
        if known.waits[caller] >= WAITING_PER_CALLER:
            return False
        known.waiting[model] = caller
        known.waits[caller] += 1
        event = self._wake.get(upstream.name)
        if event is not None:
            event.set()
        return True

    def suspect(self, upstream: Upstream) -> None:
        """A call could not reach `upstream` (refused, reset, unavailable): its metadata is asked again now,
        not at the next `discovery_interval_s`, so /readyz and `lineage_proxy_upstream_up` say it is down
        within a round trip (they lagged a minute behind calls failing with 502)."""
        event = self._wake.get(upstream.name)
        if event is not None and self.reachable.get(upstream.name):
            self._known[upstream.name].due = True
            event.set()

    def changed(self, upstream: Upstream, replaced: bool = False) -> asyncio.Future[Any] | None:
        """`upstream` changed what serves through the proxy (a `POST /lora-adapters` it relayed, which sets a
        llama-server's scales; a vLLM's or SGLang's `load_lora_adapter` or `unload_lora_adapter`, which change what it
        lists; `replaced`: SGLang's `update_weights_from_disk`, which replaces its base's weights, listed under a new
        name): a full round now, not at the next `discovery_interval_s`, of it and of every other upstream reaching
        the same server (`server`: the scales are the server's, whichever name set them). Returns what is done once a
        round begun after this call has ended for each (answered or not); None when none runs."""
        seen = -1
        if self._shared is not None:  # the other workers read it again too, when a call of theirs depends on it
            seen = self._shared.bump(self._slots[upstream.name], replaced)
        waiters: list[asyncio.Future[None]] = []
        for name in self._siblings.get(upstream.name, (upstream.name,)):
            known = self._known[name]
            replacing = replaced
            if seen >= 0 and known.watch >= 0:
                # (and one another worker counted that no call here has found yet)
                replacing = replacing or replacements(seen) - replaced > replacements(known.seen)
                known.seen = seen
            if self._stale(self._upstreams[name], known, replacing) is None:
                continue
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._after_round.setdefault(name, []).append(waiter)
            waiters.append(waiter)
        if not waiters:
            return None
        return waiters[0] if len(waiters) == 1 else asyncio.gather(*waiters)

    def replacing(self, upstream: Upstream) -> None:
        """SGLang's `update_weights_from_disk` is forwarded to `upstream`: a call that reaches its server while the
        update runs waits for it (a writer-preferring lock) and runs on the new weights, so nothing read of that server
        is known here from now on, and no round read before the update's reply makes it known (`replaced`; until
        review revroutes2, 2026-12-05, such a call was recorded and held as the weights replaced)."""
        for name in self._siblings.get(upstream.name, (upstream.name,)):
            known = self._known.get(name)
            if known is not None:
                self._pending[name] = self._pending.get(name, 0) + 1
                self._stale(self._upstreams[name], known, True)

    def replaced(self, upstream: Upstream) -> None:
        """The update `replacing` marked has ended (answered, failed, or its client gone): a round begun from now on
        reads what serves (asked now; `changed` makes the others stale when it answered 2xx)."""
        for name in self._siblings.get(upstream.name, (upstream.name,)):
            pending = self._pending.get(name, 0)
            if pending > 1:
                self._pending[name] = pending - 1
            elif pending:
                del self._pending[name]
                event = self._wake.get(name)
                if event is not None:
                    self._known[name].due = True
                    event.set()

    def _changed_elsewhere(self, upstream: Upstream, known: _Known, seen: int) -> None:
        """Another worker relayed a change to what `upstream` serves (`changed` there): stale here as there, from now
        on, until a round begun now reads it again; nothing read before is kept when one of the changes counted since
        replaced its weights (before 2026-12-05 its base was, and a call for its old name here was recorded and held
        as the weights replaced until this worker's next round)."""
        replaced = replacements(seen) > replacements(known.seen)
        known.seen = seen
        self._stale(upstream, known, replaced)

    def _stale(self, upstream: Upstream, known: _Known, replaced: bool = False) -> asyncio.Event | None:
        """What was read of `upstream` is stale from now on: a call (anyone's) is recorded and checked as served by
        weights not known, not by those the upstream no longer applies, until a round begun after this reads them
        again, asked for now; the event that wakes its discovery (None when none runs). `replaced`: its base's weights
        were, so none read before is kept (`_Known.weights_unknown`)."""
        self._changes[upstream.name] += 1
        known.scales_unknown()
        if replaced:
            self._replaced[upstream.name] = self._changes[upstream.name]
            known.weights_unknown()
        self._hold()  # the limited routes' models are served by weights not known now: held as such
        self.incomplete[upstream.name] = True
        event = self._wake.get(upstream.name)
        if event is None:
            return None
        known.due = True
        event.set()
        return event

    def inherit(self, previous: CheckpointBook) -> None:
        """Keep what `previous`, the book a reload replaces, knew about each upstream this book reaches the
        same way (name, address and protocol), until this book's own discovery replaces it. A new book
        knows nothing for as long as an upstream's metadata takes to answer: `on_unapproved: block` would
        refuse every call meanwhile, and /readyz would say not ready."""
        for name, upstream in self._upstreams.items():
            before = previous._upstreams.get(name)
            if before is None or _reached(before) != _reached(upstream):
                continue
            self._known[name] = previous._known[name].copy()
            self._known[name].due = True  # the new routes' names are asked about in the first round
            self.reachable[name] = previous.reachable.get(name, False)
            self.probed[name] = previous.probed.get(name, False)
            self.incomplete[name] = previous.incomplete.get(name, False)
            if name in previous._down_gap:  # down still: probes back off as they did
                self._down_gap[name], self._probe_after[name] = previous._down_gap[name], previous._probe_after[name]
            self._changes[name] = int(previous.stale(name))  # read before it: as stale as it was (its catalogs too)
            self._replaced[name] = int(previous._read[name] < previous._replaced[name])  # (its base forgotten too)
            if name in previous._pending:  # (an update forwarded before the reload: its end lets go of this book's)
                self._pending[name] = previous._pending[name]
        # a route the replaced book was still waiting to hear about (a reload before it added it) waits here too: what
        # was read then was read before the route was added all the same
        kept = set(previous._limits).difference(previous._unasked)
        self._unasked = {limit for limit in self._limits if limit not in kept}
        self._hold()
        self._settle()

    # -- background

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for upstream in self._upstreams.values():
            self._wake[upstream.name] = asyncio.Event()
            self._tasks.append(loop.create_task(self._keep_fresh(upstream)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for waiters in self._after_round.values():
            _done(waiters)
        self._after_round.clear()

    async def refresh(self, upstream: Upstream) -> bool:
        """One round: ask the metadata about the names waiting, or, when a full round is due (at start,
        every `discovery_interval_s`, while unreachable, after a call failed to reach it), about every
        name kept as well (the routes' names, and the names it listed). A readiness probe's (`check`), when none of
        that is due, asks about no name: whether the upstream answers (the dialect's `discover` of no names: an OIP
        server's readiness, the openai dialect's model list), what was read before kept. True for such a light
        round. A round of `upstream` being asked (its discovery's) ends first: this one begins after it, so what it
        reads is applied last (rounds that overlapped applied in the order their answers came, an older one's failure
        after a newer one's answer, and the second to answer a name both took raised KeyError)."""
        async with self._rounds[upstream.name]:
            return await self._round(upstream)

    async def _round(self, upstream: Upstream) -> bool:
        """`refresh`'s round, the upstream's lock held."""
        name = upstream.name
        known = self._known[name]
        taken = known.take()
        light = name in self._checks
        self._checks.discard(name)
        full = known.due or known.base is None or not self.reachable[name] or not (taken or light)
        light = light and not full and not taken
        asked = frozenset(taken)
        if full:
            asked |= self._routed.get(name, frozenset()).union(known.listed)  # `| keys()` is a set
        known.due = False
        began = self._changes[name]  # the changes this round can read (those made before it asks)
        shared, slot = self._shared, self._slots.get(name, -1)
        counted = shared.get(slot) if shared is not None and slot >= 0 else 0  # (the same, made by any worker)
        stale = self.stale(name)  # (incomplete for that alone: its read again is said apart, below, when it failed)
        self._quiet_until[name] = math.inf  # being asked: a refused call need not wake it
        waiters = self._after_round.pop(name, [])  # those `changed` made before this round began
        incomplete = False
        unreached: Exception | None = None  # why it is not reachable, to say once the `except` block is left
        try:
            catalog = await DIALECTS[upstream.protocol].discover(upstream, self._fetch, asked)
        except MetadataIncomplete as partial:
            # it answers (ready: /readyz, `upstream_up`), but what serves its calls is not known now: the checkpoints
            # read before stay (none yet: its calls' checkpoint is unknown), never its base model alone; said on change
            ok = incomplete = True
            self._unread[name] = partial.what
            known.due = True  # the next round, soon (`_keep_fresh`), asks about every name again
            if self.stale(name):
                if not self._said_stale.get(name):
                    self._said_stale[name] = True
                    log.warning("upstream %s: was told to change its %s through the proxy, and they could not be read "
                                "since (%s): its calls that depend on them are recorded with a checkpoint saying so "
                                "and checked as served by one not known, until they are (asked again)", name,
                                partial.what, partial.why)  # fmt: skip
            elif not self.incomplete[name]:
                log.warning("upstream %s: answers, but its %s could not be read (%s): its calls are recorded and "
                            "checked with what was read before (their checkpoint unknown if nothing was) until they "
                            "are (asked again)", name, partial.what, partial.why)  # fmt: skip
        except Exception as exc:  # any failure means "not reachable now"; logged on change only
            ok = False
            if self.reachable.get(name, True) or not self.probed[name]:
                unreached = exc  # (its hint may ask the server: not awaited here, see below)
        else:
            ok = True
            known.answered(catalog, asked, taken, full, self._routed.get(name, frozenset()))
            if full and self._unasked:  # the routes a reload added there are asked about now: held as it says
                self._unasked = {limit for limit in self._unasked if limit[0] != name}
            if full:
                if name not in self._pending:  # (one read while its weights are being replaced read the old ones)
                    self._read[name] = max(self._read[name], began)
                # scales a change would make stale (`scales_unknown` makes a catalog of its own), or a listing a load
                # or unload changes (`Catalog.loads`): watched from now on
                if shared is not None and (catalog.loads or catalog.scales_unknown() is not catalog):
                    known.seen = max(known.seen, counted) if known.watch == slot else counted
                    known.watch = slot
                else:
                    known.watch = -1
        finally:
            _done(waiters)
        if unreached is not None:
            # said once the `except` block is left: a compiled coroutine suspended inside one (the hint's GET /v2)
            # leaves its exception as the one every other call on the loop meets (`sys.exc_info`, `__context__`).
            # Where it was asked: a url from `${VAR:-default}` is not the one the file shows; as the config's words
            # show it (`shown_url`: what may be a token before a path's `@` hidden; it loads, its host unreached)
            url = shown_url(upstream.url) if upstream.url is not None else None
            where = " or ".join(a for a in (url, upstream.grpc) if a is not None)
            hint = plaintext_hint(unreached) or await protocol_hint(upstream, self._fetch, unreached)
            log.warning("upstream %s: metadata not reachable at %s: %s%s", name, where,
                        unreached_reason(unreached, upstream), hint)  # fmt: skip
            unreached = None  # not kept by this frame, which its traceback holds (a reference cycle)
        if self.stale(name):  # (a round begun before the change may have answered it with what it changed)
            known.scales_unknown()
            if self._read[name] < self._replaced[name]:
                known.weights_unknown()
            incomplete = True
        elif self._said_stale.pop(name, False):
            log.info("upstream %s: what it was told to change through the proxy is read again", name)
        if ok and not self.reachable[name]:
            log.info("upstream %s: reachable", name)
        if ok and not incomplete and self.incomplete[name] and not stale:
            log.info("upstream %s: its metadata is read whole again", name)
        self.reachable[name] = ok
        self.incomplete[name] = incomplete
        self.probed[name] = True
        self._hold()
        now = time.monotonic()
        self._quiet_until[name] = now + NUDGE_GAP_S
        if ok:
            self._down_gap.pop(name, None)
        else:
            gap = self._down_gap.get(name, NUDGE_GAP_S / 2) * 2
            self._down_gap[name] = min(gap, DOWN_PROBE_MAX_S)
            self._probe_after[name] = now + min(gap, DOWN_PROBE_MAX_S)
        self._settle()
        return light

    def _settle(self) -> None:
        if all(self.probed.values()):
            self._all_probed.set()
        if all(self.probed[name] for name in self._named):
            self._named_probed.set()
        if all(self.reachable.values()):
            self._all_reachable.set()
        else:
            self._all_reachable.clear()

    async def wait_probed(self) -> None:
        """Until every upstream was asked once (whatever the answer)."""
        await self._all_probed.wait()

    async def wait_reachable(self) -> None:
        """Until every upstream answered its metadata (what /readyz reports)."""
        await self._all_reachable.wait()

    def first_probe_timeout(self) -> float:
        """How long the first probes may take: one metadata request's bound (0: none is waited for)."""
        return max((min(self._upstreams[name].timeout_s, METADATA_TIMEOUT_S) for name in self._named), default=0.0)

    async def wait_named(self, timeout: float) -> list[str]:
        """Wait, `timeout` seconds at most, until every upstream whose metadata names the checkpoint its
        calls reach was asked once (answered or failed); the names of those that were not, sorted."""
        if any(not self.probed[name] for name in self._named):
            try:
                await asyncio.wait_for(self._named_probed.wait(), timeout)
            except TimeoutError:
                pass
        return sorted(name for name in self._named if not self.probed[name])

    async def _keep_fresh(self, upstream: Upstream) -> None:
        wake = self._wake[upstream.name]
        delay = 0.05
        retry = NUDGE_GAP_S  # the next wait while models kept are not ready (doubled each round, to the interval)
        full_at = 0.0  # when the next full round is due (monotonic): a readiness probe's light round keeps it
        while True:
            wake.clear()  # before asking: a model wanted while the metadata is being read is asked about next
            light = await self.refresh(upstream)
            # retry quickly while unreachable (backing off), otherwise at the configured interval
            # (an upstream whose metadata was read in part is asked again as soon as one not reached is)
            if self.reachable[upstream.name] and not self.incomplete[upstream.name]:
                interval, delay = upstream.discovery_interval_s, 0.05
                known = self._known[upstream.name]
                if known.waiting:
                    continue  # more names than one round asks about: the next round asks the rest
                if known.unready:  # a model loading: asked again soon (a full round), backing off to the interval
                    interval, retry = min(retry, interval), min(retry * 2, interval)
                else:
                    retry = NUDGE_GAP_S
                if light:  # (probes a second apart would otherwise put the full round off for ever)
                    interval = max(0.0, full_at - time.monotonic())
                else:
                    full_at = time.monotonic() + interval
            else:
                interval, delay = delay, min(delay * 2, upstream.discovery_interval_s)
            try:
                await asyncio.wait_for(wake.wait(), interval)
            except TimeoutError:
                self._known[upstream.name].due = True


def _done(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def _reached(upstream: Upstream) -> tuple[str | None, str | None, str]:
    """What makes two configs' upstreams the same server speaking the same dialect."""
    return upstream.url, upstream.grpc, upstream.protocol
