"""`lineage-proxy demo`: the embedded default, end to end on loopback, in one process.

A demo model server, the proxy in front of it with the sample policy (demo_config.yaml), a handful of
calls that show each decision, then what the record holds. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from importlib import resources

import aiohttp
import orjson
from aiohttp import web

from proxy.config import parse
from proxy.demo_model import MODEL, make_app
from proxy.edges_query import render_table
from proxy.record.store import SqliteStore
from proxy.server import ProxyProcess
from proxy.workers import install_uvloop

GLASSES_KEY = "demo-glasses-key"
ANALYTICS_KEY = "demo-analytics-key"

CALLS = [
    ("glasses-app asks the assistant (its data must stay in the EU: rerouted)",
     GLASSES_KEY, {"x-purpose": "assistant"}, "What is that building?", False),
    ("glasses-app streams an answer",
     GLASSES_KEY, {"x-purpose": "assistant"}, "Read this sign to me, please.", True),
    ("glasses-app sends an e-mail address (detected: pii:email)",
     GLASSES_KEY, {}, "Remind me to write to ana@example.org", False),
    ("glasses-app tries to use interaction data for analytics (denied by the zone)",
     GLASSES_KEY, {"x-purpose": "analytics"}, "What did I look at today?", False),
    ("analytics-job runs on unlabelled data (allowed, stays on the US model)",
     ANALYTICS_KEY, {"x-purpose": "analytics", "x-data-labels": "public"}, "Summarise: sales rose 4%.", False),
    ("a call without an API key (anonymous: deny)",
     None, {"x-purpose": "assistant"}, "Hello?", False),
]  # fmt: skip


def _config_text() -> str:
    return resources.files("proxy").joinpath("demo_config.yaml").read_text(encoding="utf-8")


async def _send(session: aiohttp.ClientSession, base: str, key: str | None, headers: dict[str, str],
                text: str, stream: bool) -> tuple[int, dict[str, str], str]:  # fmt: skip
    headers = dict(headers)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}
    async with session.post(f"{base}/v1/chat/completions", data=orjson.dumps(body), headers=headers) as resp:
        raw = await resp.read()
        if resp.status >= 400:
            answer = orjson.loads(raw)["error"]["message"]
        elif stream:
            pieces = []
            for line in raw.split(b"\n"):
                if line.startswith(b"data: {"):
                    delta = orjson.loads(line[6:])["choices"][0].get("delta", {})
                    pieces.append(delta.get("content") or "")
            answer = "".join(pieces) + f"   ({len(pieces)} chunks)"
        else:
            answer = orjson.loads(raw)["choices"][0]["message"]["content"]
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, answer


async def _demo(keep: bool, store: str) -> int:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    env = {"DEMO_UPSTREAM": f"http://127.0.0.1:{upstream_port}", "DEMO_STORE": store, **os.environ}
    if keep:
        env.setdefault("DEMO_PORT", "8080")
    config = parse(_config_text(), source="demo_config.yaml", env=env)
    proxy = ProxyProcess(config)
    bound = await proxy.start()
    base = f"http://{bound.http}"
    for _ in range(200):  # wait until the upstream's metadata is known (checkpoint from the source)
        if proxy.ready()[0]:
            break
        await asyncio.sleep(0.01)
    print(f"demo model server on http://127.0.0.1:{upstream_port}, proxy on {base}, store {store}\n")
    async with aiohttp.ClientSession() as session:
        for title, key, headers, text, stream in CALLS:
            status, reply_headers, answer = await _send(session, base, key, headers, text, stream)
            print(f"- {title}")
            print(f"    HTTP {status}  decision={reply_headers.get('x-lineage-decision', '-')}  "
                  f"checkpoint={reply_headers.get('x-lineage-checkpoint', '-')}  "
                  f"labels={reply_headers.get('x-data-labels') or '-'}  trace={reply_headers.get('x-trace-id', '-')}")  # fmt: skip
            print(f"    {answer}")
    if proxy.runtime.edges is not None:
        future = proxy.runtime.edges.flush()
        if future is not None:
            await asyncio.wrap_future(future)
    reader = SqliteStore(store, readonly=True)
    rows = reader.rows()
    reader.close()
    print(f"\nlineage edges recorded ({len(rows)}):\n")
    print(render_table(rows))
    if keep:
        print(f"\nstill serving on {base} (Ctrl-C to stop). Try:\n"
              f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {GLASSES_KEY}' "
              f"-H 'x-purpose: assistant' -d '{{\"model\": \"{MODEL}\", \"messages\": "
              f"[{{\"role\": \"user\", \"content\": \"hi\"}}]}}' -i")  # fmt: skip
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
    await proxy.stop()
    await runner.cleanup()
    return 0


def run_demo(keep: bool = False, store: str | None = None) -> int:
    install_uvloop()
    if store is not None:
        return asyncio.run(_demo(keep, store))
    with tempfile.TemporaryDirectory(prefix="lineage-demo-") as tmp:
        return asyncio.run(_demo(keep, os.path.join(tmp, "lineage.db")))
