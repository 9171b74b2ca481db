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
from proxy.server import Bound, ProxyProcess, bind

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
    reserved = [bind(addr, listen=False, reuse_port=True) for addr in _addresses(config)]
    resolved = [_resolved(sock) for sock in reserved]
    names = [name for name in ("http", "grpc", "admin") if getattr(config.listen, name) is not None]
    ports = Bound(**{name: resolved[names.index(name)] if name in names else None for name in ("http", "grpc", "admin")})
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
                config = load(config_path)  # workers re-validate; this only keeps restarts current
            except Exception:
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
    for sock in reserved:
        sock.close()
    return 0


def _addresses(config: Config) -> list:  # type: ignore[type-arg]
    return [a for a in (config.listen.http, config.listen.grpc, config.listen.admin) if a is not None]


def _resolved(sock):  # type: ignore[no-untyped-def]
    from proxy.server import _bound

    return _bound(sock)
