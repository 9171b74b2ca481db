"""`serve --workers N`: the config a SIGHUP's supervisor read for its workers (`loader.Handover`) never rests on a file
system. It was written whole to a file `reload-config` (0644) in the metrics' temporary directory, which a `kill -9` of
the supervisor left behind: a config given through a FIFO to keep its secrets off disk stayed at rest there. It is now
an anonymous memory file the workers inherit: nothing under $TMPDIR holds the config's bytes, while the proxy runs nor
after its supervisor is killed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.test_workers import WAIT_S, Serve, alive
from tests.test_workers_reload_one_config import CONFIG

SECRET = b"hunter2-not-on-disk"


def _holding_secret(root: Path) -> list[Path]:
    """The files under `root` whose bytes hold SECRET."""
    found = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            try:
                if SECRET in path.read_bytes():
                    found.append(path)
            except OSError:  # (a FIFO, a file removed meanwhile)
                continue
    return found


def test_a_reloaded_config_is_handed_to_the_workers_off_disk_and_left_nowhere_by_a_kill(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    secrets, scratch = tmp_path / "config", tmp_path / "tmp"
    secrets.mkdir()
    scratch.mkdir()
    config = secrets / "proxy.yaml"
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "assistant"))
    serve = Serve.workers(config, 2, env={"TMPDIR": str(scratch)})
    try:
        serve.ready()
        serve.wait("lineage_proxy: serving http=", 3)
        workers = serve.children()
        config.write_text(text.replace("FORMAT", "json").replace("PURPOSE", "support") + f"# {SECRET.decode()}\n")
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait(f'"message":"reloaded {config}"', 2)  # both workers run the config handed over
        assert list(scratch.glob("lineage-proxy-metrics-*")), list(scratch.iterdir())  # (where it was written)
        assert _holding_secret(scratch) == [], "the config handed over is on disk"
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.wait(WAIT_S)
        deadline = time.monotonic() + WAIT_S  # the workers are sent a SIGTERM by the kernel, and stop
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "".join(serve.err)
            time.sleep(0.05)
        assert _holding_secret(scratch) == [], "the config handed over was left on disk by the kill"
    finally:
        serve.end()
