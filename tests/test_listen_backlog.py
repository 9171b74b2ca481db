"""Every HTTP listener keeps the backlog `server.bind()` asks for (1024). The plain listener (and the admin one)
were served by `loop.create_server(sock=...)`, which listens again with its own default of 100 on asyncio and
uvloop alike: a fleet's clients reconnecting at once after a restart overflowed it and waited a SYN retry (1 s,
then 3 s) for a sidecar that was idle. Read as the kernel holds it (`ss`: a listening socket's Send-Q is its
backlog), on both event loops."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable

import pytest
import uvloop

from proxy.config import Address, Limits
from proxy.ingress.wire import LISTEN_BACKLOG, HttpServer
from proxy.server import bind, bound_address

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def backlog(port: int) -> int:
    """The listen backlog of the socket listening on 127.0.0.1:`port`, as the kernel reports it."""
    ss = shutil.which("ss")
    assert ss is not None, "ss (Debian's iproute2) is needed: .ci/run installs it"
    out = subprocess.run([ss, "-Hltn", f"sport = :{port}"], check=True, capture_output=True, text=True).stdout
    (line,) = out.splitlines()
    return int(line.split()[2])  # State Recv-Q Send-Q Local Peer


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_plain_listener_keeps_the_backlog_it_was_bound_with(loop_name: str) -> None:
    async def main() -> int:
        server = HttpServer(None, Limits())  # type: ignore[arg-type]  # no connection comes: nothing is served
        sock = bind(Address("127.0.0.1", 0))
        await server.start(sock)
        try:
            return backlog(bound_address(sock).port)
        finally:
            await server.shutdown(0.1)

    loop = LOOPS[loop_name]()
    try:
        assert loop.run_until_complete(main()) == LISTEN_BACKLOG == 1024
    finally:
        loop.close()
