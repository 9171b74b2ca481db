"""`serve --workers N`: two SIGHUPs, the first to a valid config, the second to one refused (a bad edit, SIGHUP'd
again). A worker that takes both at once (slow, or stopped meanwhile) reads only the second hand-over: it refused it and
stayed on the config from before the first, while its sibling and the supervisor (and so any worker it restarts) ran
the first. A hand-over now carries the last config the supervisor accepted too: a worker that refuses the newest runs
that one when it does not already, and says so.

The held worker is stopped (SIGSTOP) across both SIGHUPs. Which config a process runs shows in its lines: JSON under the
first SIGHUP's config, text under the one the proxy started with."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.test_workers import Serve
from tests.test_workers_reload_one_config import all_serving, config_for


def test_a_worker_taking_a_valid_then_a_refused_reload_at_once_runs_the_valid_one(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, text = config_for(vllm, tmp_path)
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        held, _other = all_serving(serve)
        reloaded = text.replace("FORMAT", "json").replace("PURPOSE", "support")
        os.kill(held, signal.SIGSTOP)
        try:
            config.write_text(reloaded)
            serve.proc.send_signal(signal.SIGHUP)
            serve.wait(f'"message":"reloaded {config}"', 1)  # the other worker
            config.write_text(reloaded + "bogus_key: 1\n")
            serve.proc.send_signal(signal.SIGHUP)
            serve.wait("reload refused", 1)  # the other worker, on the first config
        finally:
            os.kill(held, signal.SIGCONT)
        refused = serve.wait("reload refused", 2)
        assert all(line.startswith("{") for line in refused), "".join(serve.err)
        assert '"process":"worker-' in refused[-1] and "bogus_key" in refused[-1], "".join(serve.err)
        said = "".join(serve.err)
        assert said.count("running the last config the proxy accepted") == 1, said
        assert said.count(f'"message":"reloaded {config}"') == 2, said  # the held worker reloaded the first too
        # a worker restarted now runs the first config, as both its siblings do
        os.kill(held, signal.SIGKILL)
        restarted = serve.wait("serving http=", 4)[-1]
        assert restarted.startswith("{"), f"the worker restarted runs another config:\n{''.join(serve.err)}"
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
