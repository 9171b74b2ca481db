"""Running the proxy: one process, or a supervisor with N worker processes sharing the listen ports.

Signals: SIGTERM/SIGINT drain in-flight calls and exit 0; SIGHUP reloads the config (each worker
validates and swaps it in, or refuses it and keeps the old one). The supervisor restarts a worker that
dies unexpectedly. Ports given as 0 are resolved once by the supervisor, which holds a bound but not
listening SO_REUSEPORT socket (so it takes no connections) while workers listen on the same port.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import Connection

from proxy.config import Config, load
from proxy.errors import ConfigError
from proxy.server import Bound, ProxyProcess, bind, bound_address

log = logging.getLogger("lineage_proxy")


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(config_path: str, config: Config, ports: Bound | None, ready: Connection | None) -> int:
    process = ProxyProcess(config, reuse_port=ports is not None, ports=ports)
    bound = await process.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: process.reload(config_path))
    if ready is not None:
        ready.send(bound.describe())
        ready.close()
    else:
        announce(bound)
    await stop.wait()
    log.info("stopping: draining in-flight calls (at most %gs)", config.limits.drain_timeout_s)
    await process.stop()
    return 0


def announce(bound: Bound) -> None:
    """The one line scripts and tests wait for: the proxy is serving, on these addresses."""
    print(f"lineage-proxy ready {bound.describe()}", flush=True)
    log.info("serving %s", bound.describe())


def run_single(config_path: str, config: Config) -> int:
    install_uvloop()
    return asyncio.run(_serve(config_path, config, None, None))


def _worker_main(config_path: str, config: Config, ports: Bound, ready: Connection) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop installs its own handler
    install_uvloop()
    sys.exit(asyncio.run(_serve(config_path, config, ports, ready)))


def run_workers(config_path: str, config: Config, workers: int) -> int:
    """Reserve the ports, start `workers` processes, supervise them until told to stop."""
    listen = config.listen
    addresses = {"http": listen.http, "grpc": listen.grpc, "admin": listen.admin}
    reserved = {name: bind(addr, listen=False, reuse_port=True) for name, addr in addresses.items() if addr}
    resolved = {name: bound_address(sock) for name, sock in reserved.items()}
    ports = Bound(resolved["http"], resolved.get("grpc"), resolved.get("admin"))
    context = multiprocessing.get_context("fork")
    children: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False

    def spawn(index: int) -> None:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_worker_main, args=(config_path, config, ports, send), name=f"worker-{index}")
        child.start()
        send.close()
        if receive.poll(60):
            receive.recv()
        receive.close()
        children[index] = child

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping, config
        if signum == signal.SIGHUP:
            try:
                config = load(config_path)  # workers validate and log themselves; this keeps restarts current
            except ConfigError:
                pass
        else:
            stopping = True
        for child in children.values():
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM if signum != signal.SIGHUP else signal.SIGHUP)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    for index in range(workers):
        spawn(index)
    announce(ports)
    while children:
        for index, child in list(children.items()):
            child.join(0.2)
            if child.exitcode is None:
                continue
            del children[index]
            if not stopping:
                log.error("worker %d exited with %s; restarting it", index, child.exitcode)
                spawn(index)
    for sock in reserved.values():
        sock.close()
    return 0
