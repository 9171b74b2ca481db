"""An HTTPS upstream's TLS context is made in a thread (`ConnectionPool._connect`: the system's CAs take ~40 ms of
CPU to load). The connections opened while it is being made wait for that one: each made its own, so the burst of
calls at start (and after each reload, for an upstream with TLS files) loaded the CAs once a connection. And a
reload while it is being made (its files renewed in place) is not undone by it: the context read before the reload
was kept for every later connection, with the old certificate, until the next reload."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading

import pytest

from proxy import tls as tls_module
from proxy.config import Upstream, UpstreamTls
from proxy.transport.pool import ConnectionPool, UpstreamPool
from tests.harness import dead_port


class Contexts:
    """`client_context` counting what it made, each held until `release` (set by the test)."""

    def __init__(self) -> None:
        self.made: list[ssl.SSLContext] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, tls: UpstreamTls | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.made.append(context)
        self.started.set()
        assert self.release.wait(30)
        return context


def tls_pool(monkeypatch: pytest.MonkeyPatch) -> tuple[ConnectionPool, Contexts]:
    contexts = Contexts()
    monkeypatch.setattr(tls_module, "client_context", contexts)  # (`client_context_in_thread` calls it)
    tls = UpstreamTls(cert="client.pem", key="client.key")  # (files of its own: a reload reads them again)
    return UpstreamPool().pool(Upstream(name="tls", url=f"https://127.0.0.1:{dead_port()}", tls=tls)), contexts


async def connected(pool: ConnectionPool) -> None:
    with contextlib.suppress(OSError):  # (nothing listens there)
        await pool._connect()


def test_connections_opened_together_wait_for_one_context(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, contexts = tls_pool(monkeypatch)

    async def burst() -> None:
        calls = [asyncio.ensure_future(connected(pool)) for _ in range(8)]
        await asyncio.to_thread(contexts.started.wait, 30)  # every call has reached its wait for the context
        contexts.release.set()
        await asyncio.gather(*calls)
        await connected(pool)  # and the next one uses it

    asyncio.run(burst())
    assert len(contexts.made) == 1
    assert pool._ssl is contexts.made[0]


def test_a_reload_while_the_context_is_made_has_the_next_connection_read_the_files_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool, contexts = tls_pool(monkeypatch)

    async def reloaded() -> None:
        first = asyncio.ensure_future(connected(pool))
        await asyncio.to_thread(contexts.started.wait, 30)
        pool.reread_tls()  # a reload: the files were renewed after they were read
        contexts.release.set()
        await first
        await connected(pool)

    asyncio.run(reloaded())
    assert len(contexts.made) == 2  # the files read again, for the connection after the reload
    assert pool._ssl is contexts.made[1]


def test_a_context_that_cannot_be_made_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[UpstreamTls | None] = []

    def unreadable(tls: UpstreamTls | None) -> ssl.SSLContext:
        tries.append(tls)
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tls_module, "client_context", unreadable)
    pool = UpstreamPool().pool(Upstream(name="tls", url=f"https://127.0.0.1:{dead_port()}"))

    async def twice() -> None:
        for _ in range(2):
            with pytest.raises(FileNotFoundError):
                await pool._connect()

    asyncio.run(twice())
    assert len(tries) == 2 and pool._ssl is None
