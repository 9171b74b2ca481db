"""`demo --keep` stops on SIGINT as `serve` does, also when it starts with SIGINT ignored: a non-interactive
shell's background job (`bash -c 'lineage-proxy demo --keep & ...; kill -INT $!'`) has it so, and Python then
raises no KeyboardInterrupt. It used to stay up until SIGTERM or SIGKILL; now it exits 0 and its temporary
store's directory is gone, as after SIGTERM or a terminal's Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import proxy
from tests.harness import demo_lines


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what bash does for a background job without job control


@pytest.mark.parametrize("ignored", [True, False], ids=["sigint-ignored-at-start", "sigint-default"])
def test_keep_stopped_by_sigint_exits_0_and_cleans_up(ignored: bool) -> None:
    root = str(Path(proxy.__file__).resolve().parent.parent)  # this checkout's code, not the installed one
    env = {**os.environ, "PYTHONPATH": root}
    code = (
        "import sys, proxy; print('imports', proxy.__file__, flush=True); from proxy.cli import main; sys.exit(main())"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "demo", "--keep", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint if ignored else None)  # fmt: skip
    try:
        seen, _ = demo_lines(proc)
        out = "".join(seen)
        assert f"imports {proxy.__file__}" in out
        store = Path(re.search(r"^lineage store (\S+) \(temporary", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
        assert store.parent.is_dir()
        proc.send_signal(signal.SIGINT)
        try:
            status = proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("demo --keep did not stop on SIGINT")
        assert status == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
        assert not store.parent.exists(), f"{store.parent} left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
