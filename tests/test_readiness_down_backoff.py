"""An upstream that is down was asked again by every `/readyz` probe that came a second after its last try: under a
probe every second (or many kubelets', or a load balancer's), a down model server got a metadata request a second from
each proxy, for as long as it stayed down, while discovery's own retries back off (0.05, 0.1, 0.2 ... s, up to
`discovery_interval_s`). Probes now back off too: a down upstream is asked by a probe at most 1, 2, 4 ... s after its
last try (doubling with each try that fails, up to `checkpoints.DOWN_PROBE_MAX_S`), so one back up is still ready
again within that bound and the next probe. A counting upstream: when each metadata request came."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

import httpx
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, serving

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: vllm, url: "${UPSTREAM}", discovery_interval_s: 600}
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
TRIES = 7  # the metadata requests looked at once the upstream is down: their gaps reach 1.6 s (discovery's retries)
WITHIN = 40.0  # what the test may take at most; it takes ~3 s down, then a few to be ready again


def test_probes_back_off_from_a_down_upstream(loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]) -> None:
    asked: list[float] = []  # when each metadata request came (monotonic)
    up = [True]

    async def models(request: web.Request) -> web.Response:
        asked.append(time.monotonic())
        if not up[0]:
            return web.Response(status=503, text="loading")
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    with serving(loop_thread, app) as upstream:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream)
        assert httpx.get(f"{proxy.url}/readyz", timeout=5).status_code == 200
        up[0] = False
        went_down = len(asked)
        deadline = time.monotonic() + WITHIN
        statuses = []
        while len(asked) < went_down + TRIES:  # probes as fast as they come (each a new connection)
            assert time.monotonic() < deadline, f"only {len(asked) - went_down} metadata requests since it went down"
            statuses.append(httpx.get(f"{proxy.url}/readyz", timeout=5).status_code)
            loop_thread.run(asyncio.sleep(0.02))
        assert statuses[-1] == 503
        tries = asked[went_down:]
        gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
        # the first try is the probe's that found it down; then discovery's retries, 0.05 s doubling, which probes no
        # longer come before (they came every second: a try 1 s after the one before, whatever the retries' wait)
        # (asyncio runs a timer up to its clock's resolution early: a 0.4 s wait was measured 0.3999... s once)
        least = [0.05 * 2**index - 0.005 for index in range(len(gaps))]
        assert all(gap >= bound for gap, bound in zip(gaps, least, strict=True)), [round(gap, 3) for gap in gaps]
        up[0] = True
        while httpx.get(f"{proxy.url}/readyz", timeout=5).status_code != 200:  # within the probes' bound (8 s)
            assert time.monotonic() < deadline, "not ready again after the upstream came back"
            loop_thread.run(asyncio.sleep(0.05))
