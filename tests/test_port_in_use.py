"""A second `lineage-proxy serve` on a port another one listens on refuses to start, as on any port in use.

The listeners set SO_REUSEPORT so that the workers of one `serve --workers N` share their ports, and Linux
lets any process of the same user with SO_REUSEPORT join such a port: without a check, a second proxy
started on the same address would silently take half of the first one's connections.
"""

from __future__ import annotations

import contextlib
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.config import Config, parse
from proxy.workers import release
from tests.harness import ServeProcess, dead_port


def config_file(path: Path, http: str = "127.0.0.1:0", grpc: str | None = None, admin: str | None = None) -> str:
    listen = f"  http: {http}\n" + (f"  grpc: {grpc}\n" if grpc else "") + (f"  admin: {admin}\n" if admin else "")
    path.write_text(f"listen:\n{listen}upstreams: [{{name: m, url: 'http://127.0.0.1:{dead_port()}'}}]\n"
                    "routes: [{model: '*', upstream: m}]\nlineage: {store: null}\n")  # fmt: skip
    return str(path)


@pytest.fixture(params=["1", "2"], ids=["first-single", "first-workers-2"])
def first(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServeProcess]:
    """A proxy serving http, grpc and admin on ports picked for it (port 0)."""
    serve = ServeProcess(config_file(tmp_path / "first.yaml", grpc="127.0.0.1:0", admin="127.0.0.1:0"),
                         "--workers", request.param)  # fmt: skip
    yield serve
    assert serve.stop() == 0


def second_serve(config: str, workers: str) -> tuple[int, str]:
    """Run another `serve`; its exit code and stderr. One that starts anyway is stopped and fails the test."""
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", config, "--workers", workers],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the ready line, or "" when it exits first
    if line.startswith("lineage-proxy ready"):
        proc.terminate()
        proc.communicate(timeout=30)
        pytest.fail(f"a second proxy started on a port in use: {line.strip()}")
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


@pytest.mark.parametrize("listener", ["http", "grpc", "admin"])
@pytest.mark.parametrize("workers", ["1", "2"], ids=["second-single", "second-workers-2"])
def test_a_second_proxy_on_a_port_in_use_refuses_to_start(first: ServeProcess, tmp_path: Path, listener: str,
                                                           workers: str) -> None:  # fmt: skip
    taken = first.addresses[listener]
    ports = {"http": "127.0.0.1:0", listener: taken}
    code, stderr = second_serve(config_file(tmp_path / "second.yaml", **ports), workers)
    assert code == 1 and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("lineage-proxy serve: ")]
    assert errors == [
        f"lineage-proxy serve: cannot listen on {taken}: address already in use "
        f"(stop what listens there, or set listen.{listener} to a free port)"
    ], stderr
    # the first one is untouched and still answers
    admin = httpx.get(f"http://{first.addresses['admin']}/healthz", timeout=10)
    assert admin.status_code == 200


def test_workers_share_the_ports_they_were_given(tmp_path: Path) -> None:
    """`--workers 2` on a fixed port: both workers serve it (the check refuses other proxies, not them)."""
    port = dead_port()
    serve = ServeProcess(config_file(tmp_path / "proxy.yaml", http=f"127.0.0.1:{port}"), "--workers", "2")
    try:
        assert serve.addresses["http"] == f"127.0.0.1:{port}"
        for role in ("worker-1", "worker-2"):
            serve.wait_log(f"{role}[")
        with httpx.Client(base_url=serve.url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
    finally:
        assert serve.stop() == 0
    again = ServeProcess(config_file(tmp_path / "proxy.yaml", http=f"127.0.0.1:{port}"), "--workers", "2")
    try:  # a restart on the same port, right after the first stopped
        assert httpx.get(f"{again.url}/healthz", timeout=10).status_code == 200
    finally:
        assert again.stop() == 0


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="claims are taken on Linux only")


def _config(port: int) -> Config:
    return parse(f"listen: {{http: '127.0.0.1:{port}'}}\nupstreams: [{{name: m, url: 'http://127.0.0.1:1'}}]\n"
                 "routes: [{model: '*', upstream: m}]\n", source="test.yaml")  # fmt: skip


@LINUX_ONLY
def test_a_claim_is_exclusive_before_anything_listens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two proxies starting at once: the second is refused even before the first listens on its port."""
    from proxy.workers import ListenError, claim, release

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    port = dead_port()
    held = claim(_config(port))
    try:
        with pytest.raises(ListenError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: address already in use "):
            claim(_config(port))
    finally:
        release(held)
    release(claim(_config(port)))  # released: the address can be claimed again
    assert stat.S_IMODE((tmp_path / "lineage-proxy").stat().st_mode) == 0o700


@LINUX_ONLY
def test_a_process_that_is_not_a_proxy_of_this_user_cannot_block_a_free_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim was an abstract Unix name, which any local process may bind: one that bound it and let its
    queue fill kept every proxy from a free port. Claims are now locks in a directory only this user opens;
    a claims directory others may write is not used (the probe alone decides)."""
    import socket

    from proxy.workers import claim, release

    port = dead_port()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as holder:
        holder.bind(f"\0lineage-proxy/listen/127.0.0.1:{port}")  # the old claim's name, squatted
        holder.listen(0)
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(f"\0lineage-proxy/listen/127.0.0.1:{port}")  # its queue is full from here on
        try:
            release(claim(_config(port)))
        finally:
            filler.close()
    shared = tmp_path / "shared"
    (shared / "lineage-proxy").mkdir(parents=True)
    (shared / "lineage-proxy").chmod(0o777)  # made by someone else, or open to them: their locks would count
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    held = claim(_config(port))
    try:
        assert len(held) == 1 and held[0].name.startswith(str(tmp_path / "home" / ".cache" / "lineage-proxy"))
    finally:
        release(held)
    assert not list((shared / "lineage-proxy").iterdir())


@LINUX_ONLY
def test_a_claim_that_cannot_be_written_leaves_the_probe_to_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claims directory on a read-only file system (a container's image) made `serve` fail with a traceback."""
    import os

    from proxy import workers

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    port = dead_port()
    release(workers.claim(_config(port)))  # makes the directory (the claim's file is removed as it is released)
    netns = os.stat("/proc/self/ns/net").st_ino
    lock = tmp_path / "lineage-proxy" / f"listen-{workers._machine()}-{netns}-127.0.0.1:{port}.lock"
    lock.mkdir()  # a claim that cannot be opened for writing
    assert workers.claim(_config(port)) == []


@LINUX_ONLY
def test_claims_in_a_home_directory_shared_by_machines_do_not_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home directory on NFS is shared by hosts whose default network namespaces have the same inode: a
    proxy on one host kept another host's proxy off its own port for as long as it ran."""
    from proxy import workers

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    port = dead_port()
    here = workers.claim(_config(port))
    try:
        monkeypatch.setattr(workers, "_machine", lambda: "another-host")
        release(workers.claim(_config(port)))
    finally:
        release(here)


@LINUX_ONLY
@pytest.mark.parametrize("workers", ["1", "2"], ids=["single", "workers-2"])
def test_a_port_claimed_by_a_proxy_starting_says_to_stop_that_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """A port another `serve` claimed and listens on not yet (it is starting): nothing listens there for `ss -ltn`
    to show, so the cure names the proxy starting, not `what listens there`, in one parenthesis, not two."""
    from proxy.workers import claim

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # (the second `serve` inherits it: the same claims)
    port = dead_port()
    held = claim(_config(port))  # (this process is the proxy starting)
    try:
        code, stderr = second_serve(config_file(tmp_path / "second.yaml", http=f"127.0.0.1:{port}"), workers)
    finally:
        release(held)
    assert code == 1 and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("lineage-proxy serve: ")]
    assert errors == [
        f"lineage-proxy serve: cannot listen on 127.0.0.1:{port}: address already in use by a lineage-proxy that is "
        "starting (stop the lineage-proxy starting there, or set listen.http to a free port)"
    ], stderr
