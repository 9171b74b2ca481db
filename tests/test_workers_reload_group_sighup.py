"""`serve --workers N`: a SIGHUP sent to the whole process group (`kill -HUP -PGID`, as some process managers and a
terminal's hang-up send it) reaches every worker beside the supervisor, before the supervisor has handed the new
config over. Each worker reloaded from the hand-over it already had: a previous one refused was refused again, each
worker logging a spurious `reload refused` line (counted too); a previous one accepted was applied a second time. A
worker now acts only on a hand-over it has not acted on (`Handover.latest`), and does nothing else, quietly (a DEBUG
line): the supervisor's own SIGHUP, which follows its hand-over, reloads it.

The supervisor's read of the config is held by a shim (sitecustomize) on a pipe the test writes to, so the workers
take the group's SIGHUP before any new hand-over; which config a worker runs shows in its lines (JSON once reloaded)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.test_workers_fork_after_load import SITECUSTOMIZE, held_workers, wait_held
from tests.test_workers_reload_one_config import all_serving, config_for

SAID = "lineage_proxy: reload"  # a worker's word on a SIGHUP it did not reload on: refused, or nothing new


def test_a_sighup_to_the_process_group_reloads_each_worker_once_from_the_supervisors_hand_over(  # type: ignore[no-untyped-def]
    vllm, tmp_path: Path
) -> None:
    config, text = config_for(vllm, tmp_path)
    text = text.replace("{format: FORMAT}", "{format: FORMAT, level: debug}")
    config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "assistant"))
    serve, hold = held_workers(tmp_path, SITECUSTOMIZE, config, own_group=True, TMPDIR=str(tmp_path))
    try:
        all_serving(serve)
        config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "assistant") + "bogus_key: 1\n")
        serve.proc.send_signal(signal.SIGHUP)  # a bad edit, to the supervisor alone: handed over, and refused
        wait_held(serve, hold)
        with open(hold, "w") as pipe:
            pipe.write("go")
        serve.wait("reload refused", 2)
        before = sum(SAID in line for line in serve.err)
        config.write_text(text.replace("FORMAT", "json").replace("PURPOSE", "support"))  # corrected
        os.killpg(serve.proc.pid, signal.SIGHUP)  # to every process: the supervisor's read of it is held
        wait_held(serve, hold)
        said = serve.wait(SAID, before + 2)[before:]  # each worker's word on its own SIGHUP
        assert not any("refused" in line for line in said), "".join(serve.err)
        assert all("no new config handed over" in line for line in said), "".join(serve.err)
        with open(hold, "w") as pipe:  # the supervisor hands it over, and tells the workers
            pipe.write("go")
        serve.wait(f'"message":"reloaded {config}"', 2)
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
    err = "".join(serve.err)
    assert err.count("reload refused") == 2, err  # the bad edit's, once a worker
    assert err.count(f'"message":"reloaded {config}"') == 2, err  # the correction's, once a worker
