"""The listen claims' lock files (`proxy.workers.claim`) do not pile up: the proxy that holds one removes
it as it lets go, while still holding its lock; a worker closing the claim it inherited leaves it to the
supervisor; a proxy that opened a claim just before its holder removed it claims the file named now,
never holding a lock on a removed file beside another proxy that holds the new one, nor calling a free address in
use because a sweep holds the lock of the file it is about to remove; and each claim sweeps
away this machine's files nobody holds (a killed proxy's), never one a live process holds nor another host's."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy import workers
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
    kept and still refuses its address, and so is a file nobody holds that is younger than the sweep's age,
    or one not named for this machine's boot (an older release's, or another host's)."""
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
    before_release = directory / "listen-of-a-release-before-claims-named-the-machine.lock"  # nobody holds it either
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
        kept = {live_name, young.name, before_release.name}
        assert claims_in(tmp_path) == sorted({*kept, own})  # the killed one's: removed
        with pytest.raises(ListenError, match="address already in use"):
            claim(_config(live_port))  # the live one's claim still holds
        release(held)
        assert httpx.get(f"{live.url}/healthz", timeout=10).status_code == 200
    finally:
        assert live.stop() == 0
    assert claims_in(tmp_path) == sorted([before_release.name, young.name])


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


SWEEPER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.readline()
os.unlink(sys.argv[1])
os.close(fd)
print("removed", flush=True)
"""


def test_a_claim_that_meets_a_sweep_holding_the_stale_file_s_lock_claims_the_address_once_it_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another proxy's sweep (another process) holds the lock of the stale file this claim opened, and has
    not removed it yet as the claim tries the lock: the claim tries again (a sweep holds a lock for
    microseconds, a starting proxy for its whole start) and, once the sweep removed the file and let go,
    claims the file named now, rather than calling a free address in use by a proxy that is starting."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    config = _config(dead_port())
    (first,) = claim(config)
    path = first.path
    release([first])
    Path(path).touch()  # the stale file: left by a proxy killed on this address
    sweeper = subprocess.Popen(
        [sys.executable, "-c", SWEEPER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sweeper.stdin is not None and sweeper.stdout is not None
    flock = fcntl.flock
    tried: list[str] = []

    def sweeping_flock(file: Any, operation: int) -> None:
        if len(tried) == 1:  # the claim's second try: the sweep has removed the file and let go meanwhile
            sweeper.stdin.write("remove\n")
            sweeper.stdin.flush()
            assert sweeper.stdout.readline() == "removed\n"
        try:
            flock(file, operation)
        except BlockingIOError:
            tried.append("busy")
            raise
        tried.append("locked")

    try:
        assert sweeper.stdout.readline() == "locked\n"  # the sweep holds the stale file's lock
        with monkeypatch.context() as patched:
            patched.setattr(fcntl, "flock", sweeping_flock)
            (held,) = claim(config)
        assert sweeper.wait(30) == 0
    finally:
        if sweeper.poll() is None:
            sweeper.kill()
            sweeper.wait()
    assert tried[0] == "busy"  # the claim met the sweep's lock on a file still named
    assert os.stat(path).st_ino == os.fstat(held.file.fileno()).st_ino
    with pytest.raises(ListenError, match="address already in use"):
        claim(config)  # a starting proxy's lock still refuses, after the tries
    release([held])
    assert claims_in(tmp_path) == []


def test_a_sweep_keeps_other_machines_files_and_looks_at_64_of_this_machine_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home directory shared over NFS by hosts whose flock each sees only its own: another host's claim
    looks free from here, and is never removed; its files do not count in the 64 files a sweep looks at, so
    this machine's stale one is removed whatever the directory's order."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (first,) = claim(_config(dead_port()))
    directory, own = Path(first.path).parent, Path(first.path).name
    release([first])
    prefix = f"listen-{workers._machine()}-"
    assert own.startswith(prefix)
    stale = directory / own
    stale.touch()  # left by this machine's proxy, killed
    aged(stale)
    other = str(uuid.uuid4())
    assert other != workers._machine()
    others = [directory / own.replace(prefix, f"listen-{other}-{index}-") for index in range(2 * workers.SWEEP_MAX)]
    for each in others:
        each.touch()  # another host's, live there
        aged(each)
    held = claim(_config(dead_port()))
    (name,) = {Path(each.path).name for each in held}
    assert claims_in(tmp_path) == sorted([name, *(each.name for each in others)])  # this machine's stale one: gone
    release(held)
    assert claims_in(tmp_path) == sorted(each.name for each in others)
