"""Checkpoint identity: which weights serve a model name, from the most trusted source available.

Order of trust (ARCHITECTURE.md): a pin in config, then the upstream's own metadata, read by the
upstream's dialect (proxy/protocols/) in the background and kept fresh, then what the response says.
`resolve` is a dict lookup: nothing on the hot path waits for discovery. What is not known yet is said
by `why_unknown` (on a miss only), for `lineage.on_unapproved: block` to refuse the call rather than let
it reach weights nobody checked.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable

from proxy.config import Upstream
from proxy.flow import CONFIG, Checkpoint
from proxy.protocols import DIALECTS, Catalog, Fetch
from proxy.protocols import MetadataStatus as MetadataStatus  # where the upstream client raises it from

log = logging.getLogger("lineage_proxy.checkpoints")

# dialects whose metadata never names a checkpoint (passthrough reads none): only a pin or the reply does
SILENT_DIALECTS = frozenset({"passthrough"})
METADATA_TIMEOUT_S = 10.0  # how long one metadata request may take, at most (the transports' bound)
NUDGE_GAP_S = 1.0  # a call refused for want of a checkpoint asks an upstream's metadata again at most this often
MODELS_ASKED = 1024  # model names asked about per upstream, at most (routes' names, then calls')


class CheckpointBook:
    """What every upstream serves, kept fresh by one background task per upstream."""

    def __init__(self, upstreams: Iterable[Upstream], fetch: Fetch, models: dict[str, set[str]] | None = None) -> None:
        """`models`: upstream name -> the model names its routes name (asked about at start)."""
        self._upstreams = {u.name: u for u in upstreams}
        self._fetch = fetch
        self._pins = {u.name: Checkpoint(u.checkpoint, CONFIG) for u in self._upstreams.values() if u.checkpoint}
        self._catalogs: dict[str, Catalog] = {}
        self._models = {name: set(found) for name, found in (models or {}).items()}
        self.reachable: dict[str, bool] = {name: False for name in self._upstreams}
        self.probed: dict[str, bool] = {name: False for name in self._upstreams}
        # the upstreams whose metadata names the checkpoint a call reaches: no pin, a dialect that reads one
        self._named = frozenset(
            u.name for u in self._upstreams.values() if not u.checkpoint and u.protocol not in SILENT_DIALECTS
        )
        self._asked: dict[str, frozenset[str]] = {}  # the models the last answered discovery was asked about
        self._quiet_until: dict[str, float] = {}  # loop time before which a refused call does not wake discovery
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._all_probed = asyncio.Event()
        self._named_probed = asyncio.Event()
        self._all_reachable = asyncio.Event()

    # -- hot path

    def resolve(
        self, upstream: Upstream, model: str, version: str | None = None, *, learn: bool = True
    ) -> Checkpoint | None:
        """The checkpoint serving `model` on `upstream`, if a pin or the metadata says; with `learn`,
        a miss asks the background task to learn about the model (never waits)."""
        pinned = self._pins.get(upstream.name)
        if pinned is not None:
            return pinned
        catalog = self._catalogs.get(upstream.name)
        found = catalog.resolve(model, version) if catalog is not None else None
        if found is None and learn:
            self.want(upstream, model)
        return found

    def why_unknown(self, upstream: Upstream, model: str) -> str | None:
        """After a `resolve` miss: why the checkpoint `upstream` serves for `model` is not known yet, when
        its metadata could say (it is asked again: the model wanted, discovery woken, at most once every
        `NUDGE_GAP_S`); None when nothing before the reply can name it (a pin would have: a dialect that
        reads no metadata, or a call that names no model). A model the metadata was asked about and does
        not list is not known either: it may have been loaded since (a LoRA adapter, a Triton model), or
        the upstream answers it under another name (llama.cpp serves any name): only a pin says then."""
        name = upstream.name
        if not model or name not in self._named:
            return None
        self.want(upstream, model)
        self.nudge(upstream)
        if name not in self._catalogs:
            if self.probed.get(name):
                return f"upstream {name!r} did not answer its metadata (it is asked again)"
            return f"upstream {name!r} has not answered its metadata yet"
        if model in self._asked.get(name, ()):
            return (f"upstream {name!r}'s metadata does not list model {model!r} (it is asked again; an upstream "
                    "that serves the model under another name needs upstreams[].checkpoint)")  # fmt: skip
        if model not in self._models.get(name, ()):
            return f"upstream {name!r} is asked about {MODELS_ASKED} model names already, not about {model!r}"
        return f"upstream {name!r}'s metadata is being asked about model {model!r}"

    def nudge(self, upstream: Upstream) -> None:
        """Ask `upstream`'s metadata again now (a call was refused for want of it), unless it is being
        asked, or was less than `NUDGE_GAP_S` ago: calls arriving while it is down do not become a stream
        of probes."""
        event = self._wake.get(upstream.name)
        if event is not None and asyncio.get_running_loop().time() >= self._quiet_until.get(upstream.name, 0.0):
            event.set()

    def want(self, upstream: Upstream, model: str) -> None:
        known = self._models.setdefault(upstream.name, set())
        if model and model not in known and len(known) < MODELS_ASKED:
            known.add(model)
            event = self._wake.get(upstream.name)
            if event is not None:
                event.set()

    def suspect(self, upstream: Upstream) -> None:
        """A call could not reach `upstream` (refused, reset, unavailable): its metadata is asked again now,
        not at the next `discovery_interval_s`, so /readyz and `lineage_proxy_upstream_up` say it is down
        within a round trip (they lagged a minute behind calls failing with 502)."""
        event = self._wake.get(upstream.name)
        if event is not None and self.reachable.get(upstream.name):
            event.set()

    def inherit(self, previous: CheckpointBook) -> None:
        """Keep what `previous`, the book a reload replaces, knew about each upstream this book reaches the
        same way (name, address and protocol), until this book's own discovery replaces it. A new book
        knows nothing for as long as an upstream's metadata takes to answer: `on_unapproved: block` would
        let every call through meanwhile (an unknown checkpoint fits any approved one), and /readyz would
        say not ready."""
        for name, upstream in self._upstreams.items():
            before = previous._upstreams.get(name)
            if before is None or _reached(before) != _reached(upstream):
                continue
            catalog = previous._catalogs.get(name)
            if catalog is not None:
                self._catalogs[name] = catalog
                self._asked[name] = previous._asked.get(name, frozenset())
            self._models.setdefault(name, set()).update(previous._models.get(name, ()))
            self.reachable[name] = previous.reachable.get(name, False)
            self.probed[name] = previous.probed.get(name, False)
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

    async def refresh(self, upstream: Upstream) -> None:
        dialect = DIALECTS[upstream.protocol]
        models = frozenset(self._models.get(upstream.name, ()))
        self._quiet_until[upstream.name] = math.inf  # being asked: a refused call need not wake it
        try:
            self._catalogs[upstream.name] = await dialect.discover(upstream, self._fetch, models)
            self._asked[upstream.name] = models
            ok = True
        except Exception as exc:  # any failure means "not reachable now"; logged on change only
            ok = False
            if self.reachable.get(upstream.name, True) or not self.probed[upstream.name]:
                log.warning("upstream %s: metadata not reachable: %s", upstream.name, exc or type(exc).__name__)
        if ok and not self.reachable[upstream.name]:
            log.info("upstream %s: reachable", upstream.name)
        self.reachable[upstream.name] = ok
        self.probed[upstream.name] = True
        self._quiet_until[upstream.name] = asyncio.get_running_loop().time() + NUDGE_GAP_S
        self._settle()

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
        while True:
            wake.clear()  # before asking: a model wanted while the metadata is being read is asked about next
            await self.refresh(upstream)
            # retry quickly while unreachable (backing off), otherwise at the configured interval
            if self.reachable[upstream.name]:  # backing off only over failures in a row: a new outage starts quick
                interval, delay = upstream.discovery_interval_s, 0.05
            else:
                interval, delay = delay, min(delay * 2, upstream.discovery_interval_s)
            try:
                await asyncio.wait_for(wake.wait(), interval)
            except TimeoutError:
                pass


def _reached(upstream: Upstream) -> tuple[str | None, str | None, str]:
    """What makes two configs' upstreams the same server speaking the same dialect."""
    return upstream.url, upstream.grpc, upstream.protocol
