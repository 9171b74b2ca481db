"""Real third-party model servers, started as subprocesses from the venvs `.ci/real-servers` prepares.

When the environment does not name them, tests that need them are skipped locally and fail in CI
(LP_REQUIRE_REAL_SERVERS=1), so a green CI always means they ran.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.harness import dead_port


def need(*names: str) -> list[str]:
    values = [os.environ.get(name, "") for name in names]
    if all(values) and all(Path(v).exists() for v in values):
        return values
    message = f"real server not prepared ({', '.join(names)}): run `bash .ci/real-servers`"
    if os.environ.get("LP_REQUIRE_REAL_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll a readiness URL of a subprocess we do not control (it offers no other ready signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextmanager
def llama_cpp_server(log_path: Path) -> Iterator[str]:
    python, model = need("LP_LLAMA_PYTHON", "LP_LLAMA_MODEL")
    port = dead_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [python, "-m", "llama_cpp.server", "--model", model, "--model_alias", "smollm2", "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--seed", "7"],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/v1/models", proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(30)
