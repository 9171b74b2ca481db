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
from pathlib import Path

from tests.test_workers_fork_after_load import held_workers, wait_held
from tests.test_workers_reload_one_config import all_serving, config_for

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
    config, text = config_for(vllm, tmp_path)
    serve, hold = held_workers(tmp_path, SITECUSTOMIZE, config, TMPDIR=str(tmp_path))
    try:
        first = all_serving(serve)
        reloaded = text.replace("FORMAT", "json").replace("PURPOSE", "support")
        config.write_text(reloaded)
        serve.proc.send_signal(signal.SIGHUP)
        wait_held(serve, hold)  # read; the supervisor's check of it waits
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
