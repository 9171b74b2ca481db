"""`demo --keep` stopped with SIGTERM (a service manager, `kill`, a container's stop) cleans up as Ctrl-C does:
it exits 0 and its temporary lineage store's directory is gone. It used to die at once (exit 143) and leave
/tmp/lineage-demo-* behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from proxy.demo import GLASSES_KEY
from proxy.demo_model import MODEL
from tests.harness import demo_lines


def test_keep_stopped_by_sigterm_deletes_its_temporary_store() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "demo", "--keep", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        seen, _ = demo_lines(proc)
        out = "".join(seen)
        store = Path(re.search(r"^lineage store (\S+) \(temporary", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
        assert store.parent.name.startswith("lineage-demo-") and store.parent.is_dir()
        assert "(Ctrl-C or SIGTERM to stop)" in seen[-1]
        base = re.search(r"still serving on (http://127\.0\.0\.1:\d+) ", seen[-1]).group(1)  # type: ignore[union-attr]
        reply = httpx.post(f"{base}/v1/chat/completions", timeout=10,
                           headers={"Authorization": f"Bearer {GLASSES_KEY}", "x-purpose": "assistant"},
                           json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
        assert not store.parent.exists(), f"{store.parent} left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
