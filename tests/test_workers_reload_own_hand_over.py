"""`serve --workers N`: SIGHUPs are handed over one at a time, in the order they came, each once the supervisor has
checked the one before it (`follow_reload`). The supervisor's share of a SIGHUP read the hand-over file again after
letting the next SIGHUP's hand-over go on: a reload to a valid config followed at once by one to a config refused (a
bad edit, SIGHUP'd again) could have the first's load read the second's bytes, refuse them, and leave `running` on the
config before both, while every worker ran the first: a worker restarted later ran the old config beside them (and the
supervisor logged as it).

The supervisor's check of the first SIGHUP's config is held by a shim (sitecustomize) on a pipe the test writes to once
the second SIGHUP was sent; then both are handed over, in order, the second with the first as the last config accepted:
every worker runs the first (whether it took the two SIGHUPs apart or at once), and so does a worker restarted after.
Which config a process runs shows in its lines: JSON under the reloaded config, text under the one the proxy started
with."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import proxy
from tests.test_reload_load_waits import _holding
from tests.test_workers import WAIT_S, Serve
from tests.test_workers_reload_one_config import CONFIG

# the supervisor's first load of a reloaded config waits for a writer on $LP_TEST_HOLD_LOAD, then loads
SITECUSTOMIZE = """
import os, select
import proxy.workers

_SUPERVISOR = os.getpid()
_load_handed = proxy.workers.load_handed
_held = []

def load_handed(*args, **kwargs):
    if os.getpid() == _SUPERVISOR and not _held:
        _held.append(True)
        fd = os.open(os.environ["LP_TEST_HOLD_LOAD"], os.O_RDONLY | os.O_NONBLOCK)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not poller.poll(100):
                pass
        finally:
            os.close(fd)
    return _load_handed(*args, **kwargs)

proxy.workers.load_handed = load_handed
"""


def test_a_reload_followed_at_once_by_a_refused_one_leaves_the_supervisor_on_the_first(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    hold = tmp_path / "hold.pipe"
    os.mkfifo(hold)
    config = tmp_path / "proxy.yaml"
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "assistant"))
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    env = {"PYTHONPATH": os.pathsep.join([str(shim), root]), "LP_TEST_HOLD_LOAD": str(hold), "TMPDIR": str(tmp_path)}
    serve = Serve.workers(config, 2, env)
    try:
        serve.ready()
        serve.wait("lineage_proxy: serving http=", 3)
        first = serve.children()
        reloaded = text.replace("FORMAT", "json").replace("PURPOSE", "support")
        config.write_text(reloaded)
        serve.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT_S  # read; the supervisor's check of it waits
        while not _holding(serve.proc.pid, hold):
            assert serve.proc.poll() is None and time.monotonic() < deadline, "".join(serve.err)
            time.sleep(0.005)
        config.write_text(reloaded + "bogus_key: 1\n")  # a bad edit, SIGHUP'd at once
        serve.proc.send_signal(signal.SIGHUP)
        with open(hold, "w") as pipe:  # the first SIGHUP's check goes on, and ends
            pipe.write("go")
        serve.wait(f'"message":"reloaded {config}"', 2)  # every worker runs the first
        refused = serve.wait("reload refused", 2)  # and refuses the second, on the first
        assert all(line.startswith("{") for line in refused), "".join(serve.err)
        # a worker restarted now runs `running`: the first's config
        os.kill(first[0], signal.SIGKILL)
        restarted = serve.wait("serving http=", 4)[-1]
        assert restarted.startswith("{"), f"the worker restarted runs another config:\n{''.join(serve.err)}"
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
