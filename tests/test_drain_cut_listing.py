"""A listing merged from several upstreams (`GET /v1/models`) that the SIGTERM drain cuts while an upstream has not
answered is a call that was read whole and allowed: recorded as the drain cut it (`drain_timeout`, allowed), not as
a request that had not arrived whole (a denial, the reason saying its body was still coming)."""

from __future__ import annotations

import asyncio
import threading

import httpx

from tests.harness import LoopThread
from tests.record.test_every_call_recorded import RawOrigin
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: origin, url: "${UPSTREAM}"}
  - {name: stuck, url: "${STUCK}", timeout_s: 30}
routes:
  - {model: "m", upstream: origin}
  - {model: "*", upstream: stuck}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}"}
limits: {drain_timeout_s: 0.2}
lineage: {store: null}
"""


def test_a_listing_the_drain_cuts_is_recorded_as_cut_not_as_unread(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy
) -> None:  # type: ignore[no-untyped-def]
    origin = RawOrigin()
    served = loop_thread.run(origin.start())

    connections = 0

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:  # the metadata probe, made before the proxy listens: it fails at once (unanswered, the
            writer.close()  # proxy's start waited its whole bound, 10 s, for it), as the unanswered one had by then
            return
        await reader.read()  # takes the request, never answers

    stuck = loop_thread.run(asyncio.start_server(never, "127.0.0.1", 0))
    port = stuck.sockets[0].getsockname()[1]
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=f"http://127.0.0.1:{origin.port}", STUCK=f"http://127.0.0.1:{port}",
                       OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
    failed: list[Exception] = []

    def list_models() -> None:
        try:
            httpx.get(f"{proxy.url}/v1/models", timeout=10)
        except httpx.HTTPError as exc:  # the drain cuts the connection, without an answer
            failed.append(exc)

    listing = threading.Thread(target=list_models, daemon=True)
    try:
        listing.start()
        until(lambda: proxy.process.runtime.stats.in_flight == 1)
        loop_thread.run(proxy.process.stop())
        spans = otlp.wait_for(lambda spans: any(s.attributes.get("error.type") == "drain_timeout" for s in spans), 5)
        span = next(s for s in spans if s.attributes.get("error.type") == "drain_timeout")
        assert span.attributes["lineage.decision"] == "allow"  # read whole and allowed: the drain cut it
        listing.join(15)
        assert [type(exc) for exc in failed] == [httpx.RemoteProtocolError]  # the client was cut, not answered
    finally:
        listing.join(15)
        served.close()
        stuck.close()
