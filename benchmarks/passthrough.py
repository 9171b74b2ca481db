"""The second reference hop: the naive aiohttp passthrough (read the body, post it upstream with a
pooled ClientSession, return the reply). The floor of this stack before any lineage work.

    python -m benchmarks.passthrough PORT UPSTREAM_URL
"""

import sys

import aiohttp
from aiohttp import web


async def main(port: int, upstream: str) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with session.request(request.method, upstream + request.path_qs, data=body,
                                   headers={"Content-Type": request.headers.get("Content-Type", "application/json")}) as up:  # fmt: skip
            if up.headers.get("Content-Type", "").startswith("text/event-stream"):
                reply = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers["Content-Type"]})
                await reply.prepare(request)
                async for chunk in up.content.iter_any():
                    await reply.write(chunk)
                await reply.write_eof()
                return reply
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    import asyncio

    await asyncio.Event().wait()


if __name__ == "__main__":
    import asyncio

    import uvloop

    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
