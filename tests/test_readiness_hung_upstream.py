"""An upstream that stops answering (hung: its port still takes connections, nothing comes back) was reported ready at
/readyz until the next discovery round, `discovery_interval_s` (60 s by default) after the last, plus that round's
timeout: a Kubernetes readiness probe kept sending traffic to a pod whose every call would wait out `timeout_s`. A probe
now asks each upstream whether it still answers (a light round: no model asked about again), at most once a second,
and is answered with what is known then: the probe after the upstream's metadata request runs out says 503. Through
the proxy, to the real llama.cpp server stopped with SIGSTOP (and let go with SIGCONT: ready again)."""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, serving
from tests.servers.real import llama_cpp_server

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: llama, url: "${UPSTREAM}", timeout_s: 2}
routes: [{model: "*", upstream: llama}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
WITHIN = 20.0  # the upstream's metadata timeout (2 s) and a few probes; the discovery interval is 60 s


def probe_until(loop_thread: LoopThread, url: str, status: int) -> float:
    """Probe /readyz as a kubelet does (a fifth of a second apart, not one a second) until it answers `status`;
    how long that took."""
    began = time.monotonic()
    while (reply := httpx.get(f"{url}/readyz", timeout=5)).status_code != status:
        assert time.monotonic() - began < WITHIN, f"/readyz still {reply.status_code} after {WITHIN:g} s: {reply.text}"
        loop_thread.run(asyncio.sleep(0.2))
    return time.monotonic() - began


def test_readyz_follows_an_upstream_that_stops_answering(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    with llama_cpp_server(tmp_path / "llama.log", started) as upstream:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream)
        assert httpx.get(f"{proxy.url}/readyz", timeout=5).status_code == 200
        [server] = started
        server.send_signal(signal.SIGSTOP)  # hung: the kernel still takes its connections, nothing answers them
        try:
            probe_until(loop_thread, proxy.url, 503)
            assert httpx.get(f"{proxy.url}/readyz", timeout=5).json()["upstreams_down"] == ["llama"]
        finally:
            server.send_signal(signal.SIGCONT)
        probe_until(loop_thread, proxy.url, 200)  # answering again: ready at the next probes, not a minute later


OIP_CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: oip, url: "${UPSTREAM}", protocol: oip, discovery_interval_s: 600}
routes: [{model: iris, upstream: oip}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


def test_a_probes_round_asks_whether_the_upstream_answers_not_its_models(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """What a probe costs the upstream: an OIP server is asked its readiness (`/v2/health/ready`), one request, not
    every model's metadata again (that stays every `discovery_interval_s`); and the checkpoint read before stays."""
    asked: list[str] = []

    async def ready(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response()

    async def metadata(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.json_response({"name": "iris", "versions": ["1"], "platform": "sklearn"})

    app = web.Application()
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/models/iris", metadata)
    with serving(loop_thread, app) as upstream:
        proxy = make_proxy(OIP_CONFIG, UPSTREAM=upstream)
        assert asked == ["/v2/health/ready", "/v2/models/iris"]  # the first round: a full one
        for probe in range(3):
            before = len(asked)
            loop_thread.loop.call_soon_threadsafe(proxy.process.book._quiet_until.clear)  # (probes a second apart)
            assert httpx.get(f"{proxy.url}/readyz", timeout=5).status_code == 200
            deadline = time.monotonic() + WITHIN
            quiet = proxy.process.book._quiet_until  # (inf while a round asks; the time it ended + 1 s after)
            while len(asked) == before or not 0 < quiet.get("oip", 0.0) < math.inf:  # the probe's round, ended
                assert time.monotonic() < deadline, f"probe {probe}: no round asked, or it did not end"
                loop_thread.run(asyncio.sleep(0.01))
            assert asked[before:] == ["/v2/health/ready"]
        resolved = proxy.process.book.resolve(proxy.process.config.upstreams[0], "iris", None, learn=False)
        assert resolved is not None and resolved.name == "iris:1"
