"""The pool's `sent` callback (the exchange's deferred work, `Exchange.forwarded`) runs once a request, after
the send that went out: a request retried on a new connection, after its reused one turned out closed, runs it
after the retry's send, not after the send the upstream never read."""

from __future__ import annotations

import asyncio

import pytest

from proxy.transport.pool import UpstreamPool
from tests.transport.test_pool import Script, Scripted, keep_answering, serve, upstream

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_retried_request_runs_sent_once_after_the_send_that_went_out() -> None:
    def make(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            await server.read_request(reader)
            writer.write(OK)
            await writer.drain()
            if n == 1:
                await server.read_request(reader)  # the second request on this connection: read, then closed

        return run

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            resp = await pool.request(up, "GET", "/v1/models", [], b"")
            assert await resp.read() == b"ok"
            resp.release()
            seen: list[int] = []  # requests the upstream had read when `sent` ran
            resp = await pool.request(up, "GET", "/v1/models", [], b"", sent=lambda: seen.append(len(server.requests)))
            assert await resp.read() == b"ok"
            resp.release()
            assert server.connections == 2  # retried on a new connection
            # once, after the retry's send: the upstream had read the first request and the one it dropped
            assert seen == [2]
            await pool.close()

    asyncio.run(main())


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_sent_runs_once_on_a_reused_connection_and_its_failure_fails_the_request(method: str) -> None:
    async def main() -> None:
        async with serve(keep_answering(OK)) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            calls: list[int] = []
            for _ in range(3):
                resp = await pool.request(up, method, "/v1/x", [], b"{}", sent=lambda: calls.append(1))
                assert await resp.read() == b"ok"
                resp.release()
            assert len(calls) == 3 and server.connections == 1

            def fails() -> None:
                raise RuntimeError("deferred work failed")

            with pytest.raises(RuntimeError, match="deferred work failed"):
                await pool.request(up, method, "/v1/x", [], b"{}", sent=fails)
            await pool.close()

    asyncio.run(main())
