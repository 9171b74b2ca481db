"""Checkpoint identity: which weights serve a model name, from the most trusted source available.

Order of trust (ARCHITECTURE.md): a pin in config, then the upstream's own metadata (vLLM/OpenAI
`/v1/models` root+parent, TGI `/info` model_id+model_sha, OIP model metadata versions), then what the
response says. Metadata is fetched in the background and refreshed; `resolve` is a dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from proxy.config import Upstream

log = logging.getLogger("lineage_proxy.checkpoints")

CONFIG = "config"
UPSTREAM = "upstream"
RESPONSE = "response"

# (upstream, path) -> parsed JSON body, or raises. Supplied by the transport that owns the pool.
GetJson = Callable[[Upstream, str], Awaitable[Any]]
# (upstream, model) -> OIP model metadata as a dict with "versions", or raises (gRPC upstreams).
GetModelMetadata = Callable[[Upstream, str], Awaitable[dict[str, Any]]]


class MetadataStatus(LookupError):
    """The upstream answered a metadata request, but not with 2xx (404: it does not serve that)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"HTTP {status} for {what}")
        self.status = status


@dataclass(frozen=True, slots=True)
class Checkpoint:
    name: str
    source: str
    parent: str | None = None


def latest_version(versions: Iterable[str]) -> str | None:
    """The highest version, numerically when the versions are numbers (Triton/MLServer's default policy)."""
    items = [v for v in versions if v]
    if not items:
        return None
    numeric = [v for v in items if v.isdigit()]
    return max(numeric, key=int) if numeric else max(items)


def oip_checkpoint(model: str, version: str | None) -> str:
    return f"{model}:{version}" if version else model


class CheckpointBook:
    """What every upstream serves, kept fresh by one background task per upstream."""

    def __init__(
        self,
        upstreams: Iterable[Upstream],
        get_json: GetJson,
        get_model_metadata: GetModelMetadata | None = None,
        oip_models: dict[str, set[str]] | None = None,
    ) -> None:
        self._upstreams = {u.name: u for u in upstreams}
        self._get_json = get_json
        self._get_model_metadata = get_model_metadata
        self._served: dict[str, dict[str, Checkpoint]] = {}  # upstream -> model -> checkpoint
        self._versions: dict[tuple[str, str], tuple[str, ...]] = {}  # (upstream, model) -> OIP versions
        self._oip_models = {name: set(models) for name, models in (oip_models or {}).items()}
        self.reachable: dict[str, bool] = {name: False for name in self._upstreams}
        self.probed: dict[str, bool] = {name: False for name in self._upstreams}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._all_probed = asyncio.Event()
        self._all_reachable = asyncio.Event()

    # -- hot path

    def resolve(self, upstream: Upstream, model: str, version: str | None = None) -> Checkpoint | None:
        if upstream.checkpoint:
            return Checkpoint(upstream.checkpoint, CONFIG)
        if upstream.protocol == "oip":
            versions = self._versions.get((upstream.name, model))
            if versions is None:
                self.want(upstream, model)
                return None
            if version:
                return Checkpoint(oip_checkpoint(model, version), UPSTREAM) if version in versions else None
            latest = latest_version(versions)
            return Checkpoint(oip_checkpoint(model, latest), UPSTREAM) if latest else None
        served = self._served.get(upstream.name)
        if not served:
            return None
        return served.get(model) or served.get("*")

    def want(self, upstream: Upstream, model: str) -> None:
        """Ask the background task to learn about a model seen in traffic (never waits)."""
        known = self._oip_models.setdefault(upstream.name, set())
        if model and model not in known and len(known) < 1024:
            known.add(model)
            event = self._wake.get(upstream.name)
            if event is not None:
                event.set()

    # -- background

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for upstream in self._upstreams.values():
            if upstream.checkpoint and upstream.protocol != "oip":
                self.reachable[upstream.name] = True  # pinned: nothing to learn; readiness still probed
            self._wake[upstream.name] = asyncio.Event()
            self._tasks.append(loop.create_task(self._keep_fresh(upstream)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def refresh(self, upstream: Upstream) -> None:
        try:
            if upstream.protocol == "openai":
                await self._discover_openai(upstream)
            elif upstream.protocol == "oip":
                await self._discover_oip(upstream)
            else:
                try:
                    await self._get_json(upstream, "/")
                except LookupError:
                    pass  # any HTTP answer means the upstream is up
            ok = True
        except Exception as exc:  # any failure means "not reachable now"; logged on change only
            ok = False
            if self.reachable.get(upstream.name, True) or not self.probed[upstream.name]:
                log.warning("upstream %s: metadata not reachable: %s", upstream.name, exc or type(exc).__name__)
        if ok and not self.reachable[upstream.name]:
            log.info("upstream %s: reachable", upstream.name)
        self.reachable[upstream.name] = ok
        self.probed[upstream.name] = True
        if all(self.probed.values()):
            self._all_probed.set()
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

    async def _keep_fresh(self, upstream: Upstream) -> None:
        wake = self._wake[upstream.name]
        delay = 0.05
        while True:
            await self.refresh(upstream)
            # retry quickly while unreachable (backing off), otherwise at the configured interval
            interval = upstream.discovery_interval_s if self.reachable[upstream.name] else delay
            delay = min(delay * 2, upstream.discovery_interval_s)
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), interval)
            except TimeoutError:
                pass

    async def _discover_openai(self, upstream: Upstream) -> None:
        body = await self._get_json(upstream, "/v1/models")
        served: dict[str, Checkpoint] = {}
        for entry in body.get("data", []) if isinstance(body, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                root, parent = entry.get("root"), entry.get("parent")
                served[entry["id"]] = Checkpoint(
                    str(root) if isinstance(root, str) else str(entry["id"]),
                    UPSTREAM,
                    parent if isinstance(parent, str) else None,
                )
        try:  # TGI: /info names the exact weights (model_sha); vLLM answers 404
            info = await self._get_json(upstream, "/info")
        except Exception:
            info = None
        if isinstance(info, dict) and isinstance(info.get("model_id"), str):
            sha = info.get("model_sha")
            name = f"{info['model_id']}@{sha}" if isinstance(sha, str) and sha else info["model_id"]
            served = {model: Checkpoint(name, UPSTREAM) for model in served} or {}
            served["*"] = Checkpoint(name, UPSTREAM)
        self._served[upstream.name] = served

    async def _discover_oip(self, upstream: Upstream) -> None:
        models = sorted(self._oip_models.get(upstream.name, ()))
        if upstream.grpc and self._get_model_metadata is not None:
            fetch: Callable[[str], Awaitable[Any]] = lambda m: self._get_model_metadata(upstream, m)  # type: ignore[misc]  # noqa: E731
        else:
            await self._get_json(upstream, "/v2/health/ready")
            fetch = lambda m: self._get_json(upstream, f"/v2/models/{m}")  # noqa: E731
        if not models and upstream.grpc and self._get_model_metadata is not None:
            try:
                await self._get_model_metadata(upstream, "")  # a liveness probe: any answer will do
            except LookupError:
                pass
        for model in models:
            try:
                meta = await fetch(model)
            except LookupError:
                continue  # the upstream does not serve it (yet); not an outage
            versions = meta.get("versions") if isinstance(meta, dict) else None
            if isinstance(versions, list):
                self._versions[(upstream.name, model)] = tuple(str(v) for v in versions)
