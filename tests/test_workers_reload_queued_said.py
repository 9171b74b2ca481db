"""`serve --workers N`: a SIGHUP that comes while the supervisor still loads the config of the one before it waits for
that load to end (each hand-over carries the last config the supervisor accepted). A load that does not end (a file
the config names on a hung mount) held every later SIGHUP without a word: the config fixed and SIGHUP'd again, nothing
was said and nothing reloaded. Now a SIGHUP that has waited FORK_WAIT_S (10 s) says so, in a WARNING line, and is
handed over once that load ends.

The supervisor's load of the first SIGHUP's config is held by the shim of test_workers_reload_own_hand_over (on a pipe
the test writes to once the warning is said)."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.test_workers_fork_after_load import held_workers, wait_held
from tests.test_workers_reload_one_config import all_serving, config_for
from tests.test_workers_reload_own_hand_over import SITECUSTOMIZE


def test_a_sighup_waiting_for_a_load_that_does_not_end_is_said(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, text = config_for(vllm, tmp_path)
    serve, hold = held_workers(tmp_path, SITECUSTOMIZE, config, TMPDIR=str(tmp_path))
    try:
        all_serving(serve)
        config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "support"))
        serve.proc.send_signal(signal.SIGHUP)
        wait_held(serve, hold)  # handed over; the supervisor's load of it waits
        serve.wait(f"reloaded {config}", 2)  # both workers took the first
        reloaded = text.replace("FORMAT", "json").replace("PURPOSE", "analytics")
        config.write_text(reloaded)  # fixed, and SIGHUP'd again
        serve.proc.send_signal(signal.SIGHUP)
        said = serve.wait("a SIGHUP waits", 1)[0]  # (after FORK_WAIT_S)
        assert "WARNING" in said and "has not ended" in said, "".join(serve.err)
        assert sum(f"reloaded {config}" in line for line in serve.err) == 2, "".join(serve.err)  # not handed over yet
        with open(hold, "w") as pipe:  # the first SIGHUP's load ends
            pipe.write("go")
        serve.wait(f'"message":"reloaded {config}"', 2)  # then the second is handed over, and both workers run it
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
