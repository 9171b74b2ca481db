from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.harness import LoopThread, ProxyHandle, serving, start_proxy
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.real import faithful_oip, llama_cpp_server, mlserver
from tests.servers.vllm_like import VllmLike

KEYS = {"glasses": "key-glasses", "ads": "key-ads", "ops": "key-ops"}

# The property tests draw the same examples on every run (a seed from each test's own code), so a run's result is its
# code's, never a draw's: CI passes or fails the same on a clean clone every time. `LINEAGE_PROXY_HYPOTHESIS=explore`
# draws new ones each run, to look for what the fixed examples miss (a find then goes into its test as an @example).
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("LINEAGE_PROXY_HYPOTHESIS", "fixed"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With the per-call modules compiled (setup.py), a test that counts or replaces a function by patching
    it would see nothing: compiled callers call it directly. Such tests (`interpreted`) are left to a run
    with the modules interpreted, `LINEAGE_PROXY_INTERPRETED=1 pytest -m interpreted`, which `.ci/run` makes
    after the compiled one; they are deselected here, never run vacuously."""
    import proxy

    if not proxy.COMPILED:
        return
    kept = [item for item in items if item.get_closest_marker("interpreted") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own temporary directory: what a config leaves at its default (`./lineage.db`, the
    journal) is written there, never in the checkout."""
    monkeypatch.chdir(tmp_path)


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def vllm(loop_thread: LoopThread) -> Iterator[tuple[VllmLike, str]]:
    server = VllmLike()
    with serving(loop_thread, server.app()) as url:
        yield server, url


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def make_proxy(
    loop_thread: LoopThread, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ProxyHandle]]:
    if "otlp" in request.fixturenames:
        # the test's collector is started first so that it stops last: a proxy's stop sends its last spans to a
        # collector that is still there (stopped first, the exporter retried them for its whole stop timeout)
        request.getfixturevalue("otlp")
    started: list[ProxyHandle] = []

    def make(config_text: str, wait: str = "reachable", **env: str) -> ProxyHandle:
        handle = loop_thread.run(
            start_proxy(config_text, wait=wait, env={"STORE": str(tmp_path / "lineage.db"), **env})
        )
        started.append(handle)
        return handle

    yield make
    for handle in started:
        loop_thread.run(handle.process.stop())


def require_real_servers() -> bool:
    """In CI (.ci/run sets LP_REQUIRE_REAL_SERVERS=1) a missing real server is a failure, not a skip."""
    return os.environ.get("LP_REQUIRE_REAL_SERVERS") == "1"


@pytest.fixture
def faithful(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The faithful OIP gRPC server (tests/servers/real.py): its address and its log of what reached it."""
    with faithful_oip(tmp_path) as server:
        yield server


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server (llama-cpp-python) serving SmolLM2-135M: one for the session, started
    when a test first needs it. Its tests ask at temperature 0 (a fixed seed), and a server holds nothing a call
    leaves behind that changes another's reply, so they share it."""
    with llama_cpp_server(tmp_path_factory.mktemp("llama") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def iris_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """MLServer serving the scikit-learn iris classifier (tests/servers/real.py): one for the session, started
    when a test first needs it; its tests only ask it (no repository loads or unloads). (http url, grpc host:port)"""
    with mlserver(tmp_path_factory.mktemp("mlserver")) as urls:
        yield urls


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (root only: skipped elsewhere, but in CI, where .ci/run runs as root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        why = f"cannot mount a tmpfs here: {done.stderr.decode().strip()}"
        if os.environ.get("LP_REQUIRE_REAL_SERVERS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
