"""The listen claims' lock files (`proxy.workers.claim`) do not pile up: the proxy that holds one removes
it as it lets go, while still holding its lock; a worker closing the claim it inherited leaves it to the
supervisor; a proxy that opened a claim just before its holder removed it claims the file named now,
never holding a lock on a removed file beside another proxy that holds the new one; and each claim sweeps
away the files nobody holds (a killed proxy's), never one a live process holds."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.workers import ListenError, claim, release
from tests.harness import ServeProcess, dead_port
from tests.test_port_in_use import _config, config_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="claims are taken on Linux only")


def claims_in(runtime_dir: Path) -> list[str]:
    directory = runtime_dir / "lineage-proxy"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_released_claims_leave_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    port = dead_port()
    for each in [port, port, *(dead_port() for _ in range(4))]:
        held = claim(_config(each))
        assert len(claims_in(tmp_path)) == 1
        release(held)
        release(held)  # a stop's release, then the one on the way out: the second does nothing
    assert claims_in(tmp_path) == []


def test_a_served_proxy_s_claim_is_held_while_it_serves_and_gone_once_it_stops(tmp_path: Path) -> None:
    """`serve --workers 2`: each worker closes the claim it inherited by fork without removing it (the
    supervisor holds it); the supervisor removes it as it stops. Three starts and stops leave nothing."""
    port = dead_port()
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    for args in (("--workers", "2"), ("--workers", "2"), ()):
        serve = ServeProcess(config_file(tmp_path / "proxy.yaml", http=f"127.0.0.1:{port}"), *args, env=env)
        try:
            for role in ("worker-1", "worker-2") if args else ():
                serve.wait_log(f"{role}[")  # each worker has released its inherited copy by now
            assert httpx.get(f"{serve.url}/healthz", timeout=10).status_code == 200
            (name,) = claims_in(tmp_path)
            assert name.endswith(f"-127.0.0.1:{port}.lock")
            # still locked: held by the proxy
            with open(tmp_path / "lineage-proxy" / name, "ab") as other, pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            assert serve.stop() == 0
        assert claims_in(tmp_path) == []


def race(monkeypatch: pytest.MonkeyPatch, meanwhile: Any) -> None:
    """Run `meanwhile()` once, in the next claim's window between opening its file and locking it."""
    flock = fcntl.flock
    pending = [meanwhile]

    def late_flock(file: Any, operation: int) -> None:
        if pending:
            pending.pop()()
        flock(file, operation)

    monkeypatch.setattr(fcntl, "flock", late_flock)


def test_a_claim_opened_as_its_holder_lets_go_claims_the_file_named_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    config = _config(dead_port())
    first = claim(config)
    race(monkeypatch, lambda: release(first))  # the first lets go (and removes the file) after the second opened it
    (second,) = claim(config)
    (name,) = claims_in(tmp_path)
    assert os.stat(tmp_path / "lineage-proxy" / name).st_ino == os.fstat(second.file.fileno()).st_ino
    with pytest.raises(ListenError, match="address already in use"):
        claim(config)  # the second's lock is on the file a third opens
    release([second])
    assert claims_in(tmp_path) == []


def test_a_claim_whose_file_was_removed_and_claimed_anew_meanwhile_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race without the check: the second locks the removed file while a third holds the new one, and
    both start."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    config = _config(dead_port())
    first = claim(config)
    third: list[Any] = []

    def let_go_and_claim_anew() -> None:
        release(first)
        third.extend(claim(config))

    race(monkeypatch, let_go_and_claim_anew)
    with pytest.raises(ListenError, match="address already in use"):
        claim(config)
    (held,) = third
    (name,) = claims_in(tmp_path)
    assert os.stat(tmp_path / "lineage-proxy" / name).st_ino == os.fstat(held.file.fileno()).st_ino
    release(third)
    assert claims_in(tmp_path) == []


def test_a_worker_closing_its_inherited_claim_leaves_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    config = _config(dead_port())
    held = claim(config)
    pid = os.fork()
    if pid == 0:  # the worker: closes its copy, as `_worker_main` does
        release(held)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(claims_in(tmp_path)) == 1
    with pytest.raises(ListenError, match="address already in use"):
        claim(config)
    release(held)
    assert claims_in(tmp_path) == []


def aged(path: Path) -> None:
    """As if written an hour ago, past the sweep's minimum age (`SWEEP_AGE_S`: a younger file may be a
    claimer's before its lock)."""
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_a_killed_proxy_s_claim_is_swept_by_the_next_claim_and_a_live_one_s_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `serve` killed with SIGKILL leaves its claim file (nothing ran to remove it), on an address no proxy
    uses again: the next claim, of another address, removes it; the claim of a `serve` still running is
    kept and still refuses its address, and so is a file nobody holds that is younger than the sweep's age."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # the proxies' and this process's claims
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    directory = tmp_path / "lineage-proxy"
    killed_port, live_port = dead_port(), dead_port()
    killed = ServeProcess(config_file(tmp_path / "killed.yaml", http=f"127.0.0.1:{killed_port}"), env=env)
    killed.signal(signal.SIGKILL)
    assert killed.proc.wait(30) == -signal.SIGKILL
    (left,) = claims_in(tmp_path)
    assert left.endswith(f"-127.0.0.1:{killed_port}.lock")
    aged(directory / left)
    before_release = directory / "listen-of-a-release-before-claims-were-removed.lock"  # nobody holds it either
    before_release.touch()
    aged(before_release)
    young = directory / "listen-just-opened.lock"
    young.touch()
    live = ServeProcess(config_file(tmp_path / "live.yaml", http=f"127.0.0.1:{live_port}"), env=env)
    try:
        (live_name,) = set(claims_in(tmp_path)) - {left, before_release.name, young.name}
        aged(directory / live_name)
        held = claim(_config(dead_port()))
        (own,) = {Path(each.path).name for each in held}
        assert claims_in(tmp_path) == sorted({live_name, young.name, own})  # the two nobody held: removed
        with pytest.raises(ListenError, match="address already in use"):
            claim(_config(live_port))  # the live one's claim still holds
        release(held)
        assert httpx.get(f"{live.url}/healthz", timeout=10).status_code == 200
    finally:
        assert live.stop() == 0
    assert claims_in(tmp_path) == [young.name]


def test_a_claim_that_meets_a_sweep_s_lock_claims_the_file_named_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another proxy's sweep holds the lock of a stale file this claim opened, and removes it: the claim
    takes the file named now rather than calling the address in use by a proxy that is starting."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    config = _config(dead_port())
    (first,) = claim(config)
    path = first.path
    release([first])
    Path(path).touch()  # the stale file: left by a proxy killed on this address
    sweeper: list[int] = []

    def sweep_holding_the_lock() -> None:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)  # removed, the lock still held as this claim tries it
        sweeper.append(fd)

    race(monkeypatch, sweep_holding_the_lock)
    try:
        (held,) = claim(config)
    finally:
        for fd in sweeper:
            os.close(fd)
    assert os.stat(path).st_ino == os.fstat(held.file.fileno()).st_ino
    release([held])
    assert claims_in(tmp_path) == []
