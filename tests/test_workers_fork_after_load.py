"""A `--workers` supervisor loads a reloaded config on a thread of its own (`follow_reload`: a load waiting on a file
held its signal handler). It forked a worker it restarts meanwhile, with that thread in the middle of the load: a lock
the thread held then (the ssl module's, as it reads a TLS file; an import's module lock; OpenSSL's own) is taken for
good in the child, whose next use of it never returns. A worker is now forked once the load has ended (waiting at
most FORK_WAIT_S, for a load that does not end: a hung mount), or while it waits on a FIFO, which holds no lock.

The supervisor's load is held by a shim (sitecustomize) on a pipe the test writes to. Forked before the load ended,
the restarted worker was one `behind` it, sent a SIGHUP to reload itself as it served; forked after, it starts on
the reloaded config."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import proxy
from tests.test_reload_load_waits import _holding
from tests.test_workers import WAIT_S, Serve, chat

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
"""
# the supervisor's read of the reloaded config (`hand_over`, the one `follow_reload` calls, the workers reading what it
# hands over) waits for a writer on $LP_TEST_HOLD_LOAD first, then reads; its wait holds no lock of the proxy's
SITECUSTOMIZE = """
import os, select
import proxy.workers

_SUPERVISOR = os.getpid()
_hand_over = proxy.workers.hand_over

def hand_over(path, *args, **kwargs):
    if os.getpid() == _SUPERVISOR:
        fd = os.open(os.environ["LP_TEST_HOLD_LOAD"], os.O_RDONLY | os.O_NONBLOCK)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not (poller.poll(100) and os.read(fd, 64)):
                pass
        finally:
            os.close(fd)
    return _hand_over(path, *args, **kwargs)

proxy.workers.hand_over = hand_over
"""


def held_workers(
    tmp_path: Path, sitecustomize: str, config: Path, *, own_group: bool = False, **env: str
) -> tuple[Serve, Path]:
    """`serve --workers 2` on `config`, the shim `sitecustomize` on its path holding the supervisor's load on a pipe
    (`$LP_TEST_HOLD_LOAD`) until the test writes to it; `env`, more of its environment (`own_group`: `Serve`'s). The
    process, and the pipe."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(sitecustomize)
    hold = tmp_path / "hold.pipe"
    os.mkfifo(hold)
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    env = {"PYTHONPATH": os.pathsep.join([str(shim), root]), "LP_TEST_HOLD_LOAD": str(hold), **env}
    return Serve.workers(config, 2, env, own_group=own_group), hold


def wait_held(serve: Serve, hold: Path) -> None:
    """The supervisor's load has begun, and waits on `hold`."""
    deadline = time.monotonic() + WAIT_S
    while not _holding(serve.proc.pid, hold):
        assert serve.proc.poll() is None and time.monotonic() < deadline, "".join(serve.err)
        time.sleep(0.005)


def _workers_serving(serve: Serve) -> int:
    return sum(" worker-" in line and "lineage_proxy: serving" in line for line in serve.err)


def test_a_worker_restarted_while_a_reload_loads_is_forked_once_the_load_has_ended(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config_text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    config.write_text(config_text)
    serve, hold = held_workers(tmp_path, SITECUSTOMIZE, config)
    try:
        url = f"http://{serve.ready()['http']}"
        first = serve.children()
        assert len(first) == 2, first
        config.write_text(config_text + "logging: {access: true}\n")
        serve.proc.send_signal(signal.SIGHUP)
        wait_held(serve, hold)  # the supervisor's load has begun, and waits
        os.kill(first[0], signal.SIGKILL)
        serve.wait("exited with -9; restarting it")
        with open(hold, "w") as pipe:  # the load goes on, and ends
            pipe.write("go")
        with serve._cond:  # the worker restarted serves: three workers' `serving` (the supervisor says it too)
            assert serve._cond.wait_for(lambda: _workers_serving(serve) == 3, WAIT_S), "".join(serve.err)
        assert chat(url) == 200
        assert serve.stop() == 0
    finally:
        serve.end()
    err = "".join(serve.err)
    assert "a SIGHUP came while starting" not in err, err  # forked before the load ended: one behind it


def test_a_fork_waits_for_loads_but_not_for_one_waiting_on_a_fifo(tmp_path: Path) -> None:
    from proxy.files import read_bytes, released_while_waiting
    from proxy.workers import ForkGate

    gate = ForkGate()
    with gate:
        assert not gate.fork(0)  # a load runs: a fork waits for it (here, not at all)
        gate.forked()
    assert gate.fork(0)  # none runs
    gate.forked()

    fifo = tmp_path / "secret.pipe"
    os.mkfifo(fifo)
    read: list[bytes] = []

    def load() -> None:
        with gate, released_while_waiting(gate):
            read.append(read_bytes(fifo))

    loading = threading.Thread(target=load)
    loading.start()
    try:
        assert gate.fork(WAIT_S)  # the load lets go of the gate while it waits on the pipe
        gate.forked()
    finally:
        with open(fifo, "wb") as pipe:
            pipe.write(b"key")
        loading.join(WAIT_S)
    assert read == [b"key"] and gate.fork(0)  # the load took it again to read, and let go at its end
    gate.forked()
