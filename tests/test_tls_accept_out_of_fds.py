"""The TLS listener accepts its connections itself (`HttpServer._accept`). Out of file descriptors (EMFILE), as
asyncio's own accept does, it stops watching the listener for `wire.ACCEPT_RETRY_S` and says so once, then accepts
again: a listener whose readiness was left watched would fail `accept` over and over, the event loop spinning and the
log flooded, for as long as the process has no descriptor free. Tested for real, in a subprocess (its own descriptor
table, lowered with RLIMIT_NOFILE and filled): a client connected while the table is full is accepted and served
once descriptors are free again, on both event loops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import proxy
from tests.certs import Authority

ROOT = Path(proxy.__file__).resolve().parents[1]  # the build this test runs

SCRIPT = r"""
import asyncio, logging, os, resource, socket, ssl, sys
import uvloop
import proxy
from proxy.config import Limits, Tls
from proxy.ingress.wire import HttpServer
from proxy.tls import ListenerTls

cert, key, ca, loop_name = sys.argv[1:5]
print("imported", proxy.__file__, flush=True)
warned = []

class Said(logging.Handler):
    def emit(self, record):
        if "cannot accept a connection" in record.getMessage():
            warned.append(record.getMessage())
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

logging.getLogger("lineage_proxy").addHandler(Said())
logging.getLogger("lineage_proxy").setLevel(logging.INFO)
waiter = None

class Listener(socket.socket):
    # the listening socket, counting the accepts the server tries
    tries = 0

    def accept(self):
        Listener.tries += 1
        return super().accept()

async def handler(request, conn):
    conn.reply(request, 200, b"text/plain", b"served")

async def main():
    global waiter
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    server = HttpServer(handler, Limits())
    listener = Listener(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    await server.start(listener, ListenerTls(Tls(cert, key, None, False)).context)
    client = socket.create_connection(listener.getsockname())  # in the listener's backlog, not accepted yet
    client.setblocking(False)
    context = ssl.create_default_context(cafile=ca)  # (its files read before the table is full)
    # the descriptor table full: the listener's accept fails with EMFILE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd"))) + 32, hard))
    filler = []
    try:
        while True:
            filler.append(os.dup(0))
    except OSError:
        pass
    await asyncio.wait_for(waiter, 30)
    # the listener is no longer watched: the event loop goes round (a hundred times) without trying again (a listener
    # left watched, its connection still waiting, would be tried, and fail, at each turn)
    for _ in range(100):
        await asyncio.sleep(0)
    print("tried", Listener.tries, flush=True)
    for fd in filler:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # accepted once ACCEPT_RETRY_S has passed, its handshake and request served
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(sock=client, ssl=context, server_hostname="127.0.0.1"), 30)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 30)
    print("reply", reply.split(b"\r\n")[0].decode(), reply.endswith(b"served"), flush=True)
    print("warned", len(warned), flush=True)
    writer.close()
    await server.shutdown(1.0)

(uvloop.run if loop_name == "uvloop" else asyncio.run)(main())
"""


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_tls_listener_out_of_descriptors_waits_then_accepts(tmp_path: Path, loop_name: str) -> None:
    ca = Authority(tmp_path)
    pair = ca.issue("server", common_name="lineage-proxy", server=True)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(pair.cert), str(pair.key), str(ca.pair.cert), loop_name],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert out[0] == f"imported {ROOT / 'proxy' / '__init__.py'}", out
    assert out[1:] == ["tried 1", "reply HTTP/1.1 200 OK True", "warned 1"], done.stdout + done.stderr
