"""Real third-party model servers, started as subprocesses from the venvs `.ci/real-servers` prepares.

When the environment does not name them, tests that need them are skipped locally and fail in CI
(LP_REQUIRE_REAL_SERVERS=1), so a green CI always means they ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import dead_port


def need(*names: str) -> list[str]:
    values = [os.environ.get(name, "") for name in names]
    if all(values) and all(Path(v).exists() for v in values):
        return values
    message = f'real server not prepared ({", ".join(names)}): run `eval "$(bash .ci/real-servers)"` first'
    if os.environ.get("LP_REQUIRE_REAL_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


class Exited(RuntimeError):
    """A server process ended before it was ready."""


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll a readiness URL of a subprocess we do not control (it offers no other ready signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Exited(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextmanager
def served(
    started: Callable[[], tuple[list[str], list[str]]], log_path: Path, *, logs: tuple[Path, ...] = (), **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """A server that takes no port 0, run until each of its readiness URLs answers 200; stopped at the end.

    `started()` picks its ports free just before (`dead_port`) and gives its command and readiness URLs. Another
    process may take such a port before the server binds it (a client's ephemeral port: the ranges overlap), so when
    the server ends before it is ready saying so in `log_path` (or one of `logs`), it is started again on fresh ports.
    """
    for attempt in range(1, 6):
        command, urls = started()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            for url in urls:
                wait_http(url, proc)
        except Exited as exited:
            stop(proc)
            said = "".join(path.read_text(errors="replace") for path in (log_path, *logs) if path.exists())
            if "address already in use" in said.lower() and attempt < 5:
                continue
            raise Exited(f"{exited}; {command[0]} said:\n{said[-3000:]}") from None
        except BaseException:
            stop(proc)
            raise
        break
    try:
        yield proc
    finally:
        stop(proc)


@contextmanager
def llama_cpp_server(log_path: Path, started: list[subprocess.Popen[bytes]] | None = None) -> Iterator[str]:
    """`started`: the server's process is put in it (a test that stops and continues it)."""
    python, model = need("LP_LLAMA_PYTHON", "LP_LLAMA_MODEL")
    port = 0

    def command() -> tuple[list[str], list[str]]:
        nonlocal port
        port = dead_port()
        return [
            python, "-m", "llama_cpp.server", "--model", model, "--model_alias", "smollm2", "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--seed", "7",
        ], [f"http://127.0.0.1:{port}/v1/models"]  # fmt: skip

    with served(command, log_path) as proc:
        if started is not None:
            started.append(proc)
        yield f"http://127.0.0.1:{port}"


IRIS_TRAIN = """
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
x, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(x, y), sys.argv[1])
"""


@contextmanager
def mlserver(workdir: Path) -> Iterator[tuple[str, str]]:
    """MLServer serving a scikit-learn iris classifier the test trains; yields (http url, grpc host:port)."""
    _, python = need("LP_MLSERVER", "LP_MLSERVER_PYTHON")
    model_dir = workdir / "models" / "iris"
    model_dir.mkdir(parents=True)
    subprocess.run([python, "-c", IRIS_TRAIN, str(model_dir / "model.joblib")], check=True)
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel", "versions": ["1"],
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }))  # fmt: skip
    with _mlserver_started(workdir, "iris") as addresses:
        yield addresses


@contextmanager
def mlserver_runtime(workdir: Path, source: str, name: str = "echo") -> Iterator[tuple[str, str]]:
    """MLServer serving one model whose runtime is `source` (a module defining class `Echo`, an MLModel): a test's
    own model, to show what MLServer hands a runtime; yields (http url, grpc host:port)."""
    need("LP_MLSERVER", "LP_MLSERVER_PYTHON")
    model_dir = workdir / "models" / name
    model_dir.mkdir(parents=True)
    (model_dir / "echo.py").write_text(source)
    (model_dir / "model-settings.json").write_text(json.dumps({"name": name, "implementation": "echo.Echo"}))
    with _mlserver_started(workdir, name) as addresses:
        yield addresses


def mlserver_echo(seen: str) -> str:
    """For `mlserver_runtime`: a runtime that answers with `seen` (a Python expression over `payload`, MLServer's
    `InferenceRequest`), JSON in one BYTES output `seen`: what MLServer handed it."""
    return f"""
import json
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        seen = {seen}
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="seen", datatype="BYTES", shape=[1], data=[json.dumps(seen).encode()])])
"""


def kserve_echo(seen: str) -> str:
    """For `kserve_model_server`: a KServe model `kecho` (its V2 REST protocol) that answers with `seen` (a Python
    expression over `payload`, KServe's `InferRequest`), JSON in one BYTES output `seen`: what KServe's model server
    handed it."""
    return f"""
import json
import sys
import kserve


class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        seen = {seen}
        output = kserve.InferOutput(name="seen", shape=[1], datatype="BYTES", data=[json.dumps(seen)])
        return kserve.InferResponse(response_id="r", model_name=self.name, infer_outputs=[output])


if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Echo("kecho")])
"""


@contextmanager
def _mlserver_started(workdir: Path, name: str) -> Iterator[tuple[str, str]]:
    with mlserver_serving(workdir / "models", f"/v2/models/{name}/ready") as addresses:
        yield addresses


@contextmanager
def mlserver_serving(root: Path, *ready: str, **settings: Any) -> Iterator[tuple[str, str]]:
    """MLServer started on `root` (its model directories written), on free loopback ports, until each of the `ready`
    paths answers 200 (its log: root's parent's mlserver.log); stopped at the end. Yields (http url, grpc host:port).
    `settings`: more of its settings.json."""
    mlserver_bin, _ = need("LP_MLSERVER", "LP_MLSERVER_PYTHON")
    ports: list[int] = []

    def command() -> tuple[list[str], list[str]]:
        ports[:] = dead_port(), dead_port(), dead_port()
        (root / "settings.json").write_text(json.dumps({
            "http_port": ports[0], "grpc_port": ports[1], "metrics_port": ports[2], "host": "127.0.0.1",
            "parallel_workers": 0, "metrics_endpoint": None, **settings,
        }))  # fmt: skip
        return [mlserver_bin, "start", str(root)], [f"http://127.0.0.1:{ports[0]}{path}" for path in ready]

    with served(command, root.parent / "mlserver.log", env={**os.environ, "MLSERVER_PARALLEL_WORKERS": "0"}):
        yield f"http://127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"


@contextmanager
def kserve_model_server(workdir: Path, source: str, name: str) -> Iterator[str]:
    """KServe's own model server (`kserve.ModelServer`, the `kserve` package, from the venv `.ci/real-servers`
    prepares) running `source`, a script that serves its models on the HTTP port given as its one argument, until
    model `name` is ready (`GET /v1/models/{name}`); yields its url."""
    (python,) = need("LP_KSERVE_PYTHON")
    script = workdir / "kserve_model.py"
    script.write_text(source)
    port = 0

    def command() -> tuple[list[str], list[str]]:
        nonlocal port
        port = dead_port()
        return [python, str(script), str(port)], [f"http://127.0.0.1:{port}/v1/models/{name}"]

    with served(command, workdir / "kserve.log", cwd=workdir):
        yield f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a server process: SIGTERM, then SIGKILL if it has not gone within 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def faithful_oip(workdir: Path, tls: tuple[str, str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """tests/servers/oip_grpc.py in its own process; yields (host:port, request log). `tls`: serve TLS
    with (cert, key, client CA), requiring a client certificate."""
    import sys

    log = workdir / "oip-requests.jsonl"
    log.touch()
    extra = ["--tls", *tls] if tls else []
    root = Path(__file__).resolve().parent.parent.parent  # `tests` is a package of the checkout, not installed
    proc = subprocess.Popen([sys.executable, "-m", "tests.servers.oip_grpc", "--log", str(log), *extra],
                            stdout=subprocess.PIPE, text=True, cwd=root)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", f"faithful OIP server did not start: {line}"
        yield f"127.0.0.1:{line[1]}", log
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def nginx_gateway(workdir: Path, prefix: str, target: str) -> Iterator[str]:
    """nginx as a gateway in front of a server: `{prefix}/...` passed on as `{target}/...` (`proxy_pass`, the client's
    header fields as they came); yields its url. nginx takes no port 0: a free one is picked (`dead_port`)."""
    import shutil

    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx is None:
        message = "nginx not found: apt-get install nginx"
        if os.environ.get("LP_REQUIRE_REAL_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    conf = workdir / "nginx.conf"
    temp = " ".join(
        f"{kind}_temp_path {workdir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    errors = workdir / "nginx-error.log"
    port = 0

    def command() -> tuple[list[str], list[str]]:
        nonlocal port
        port = dead_port()
        conf.write_text(f"""
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {errors} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{port};
        location = /ready {{ return 200; }}
        location {prefix}/ {{ proxy_pass {target}/; proxy_http_version 1.1; proxy_buffering off; }}
    }}
}}
""")
        return [nginx, "-p", str(workdir), "-c", str(conf), "-e", str(errors), "-g", "daemon off;"], [
            f"http://127.0.0.1:{port}/ready"
        ]

    with served(command, workdir / "nginx.log", logs=(errors,)):
        yield f"http://127.0.0.1:{port}{prefix}"
