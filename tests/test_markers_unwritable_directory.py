"""The running marker (`proxy.markers`, `<store>.running/`) where its directory takes no writes.

- A clean stop whose marker cannot be removed (its directory read-only by the stop: a volume remounted `ro`) left it,
  said at DEBUG only, and the next start said that clean stop was a run killed or crashed whose calls were lost, and
  counted it in `lineage_proxy_unclean_stops_total`. It now writes the marker `stopped` through the descriptor it holds
  since its start, and the next start removes it without a word; one it cannot write either is said at the stop.
- A start whose marker cannot be made after its directory was (a file system out of inodes or space) left the empty
  `lineage.db.running/` beside the store for good; it is removed.

Read-only directories and a file system without inodes are mounted in a mount namespace of the test's own (`unshare`):
root writes wherever permissions say it may not."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import markers
from tests.conftest import require_real_servers
from tests.test_check_store_location import no_dac
from tests.test_markers import config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "STORE"}
"""
# in a mount namespace: serve; once ready, its marker's directory bind-mounted read-only on itself; then its clean stop
STOPPED_READ_ONLY = """
"$@" > "$OUT" 2> "$ERR" &
serving=$!
while ! grep -q '^lineage-proxy ready' "$OUT"; do
  kill -0 $serving 2>/dev/null || exit 3
  sleep 0.05
done
mount --bind "$MARKERS" "$MARKERS" && mount -o remount,bind,ro "$MARKERS" || { kill $serving; exit 4; }
kill -TERM $serving
wait $serving
"""


def unshare() -> str:
    """util-linux's `unshare`, able to make a mount namespace here; a skip where it cannot, but in CI (.ci/run runs as
    root, where `tiny_disk` mounts a tmpfs): a failure there, as a missing real server is (`require_real_servers`)."""
    found = shutil.which("unshare")
    done = subprocess.run([found, "-rm", "true"], capture_output=True, text=True) if found is not None else None
    if found is None or done is None or done.returncode != 0:
        why = "no mount namespace to mount a read-only directory in (unshare -rm: user namespaces)"
        if require_real_servers():
            pytest.fail(f"{why}: {done.stderr.strip() if done is not None else 'no unshare on PATH (util-linux)'}")
        pytest.skip(why)
    return found


def test_a_clean_stop_whose_marker_cannot_be_removed_is_not_said_as_a_crash_by_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On main: the stop left the marker as it was, and `check` said `an earlier run on this record ended without a
    stop: ... killed ... or crashed. Lost with it: ...`, counting it."""
    command = unshare()
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("STORE", str(data / "lineage.db")))
    where = data / "lineage.db.running"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUT": str(tmp_path / "out"), "ERR": str(tmp_path / "err"),
           "MARKERS": str(where)}  # fmt: skip
    done = subprocess.run([command, "-rm", "sh", "-c", STOPPED_READ_ONLY, "sh", sys.executable, "-m", "proxy", "serve",
                           "--config", str(path)], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    err = (tmp_path / "err").read_text()
    assert done.returncode == 0, (done, err)  # its clean stop
    (left,) = where.iterdir()  # (the read-only mount was the namespace's: here it is writable again)
    written = left.read_text()
    before = markers.unclean_stops()
    with caplog.at_level(logging.DEBUG, "lineage_proxy"):
        assert markers.check(str(where)) == [], caplog.text
    assert markers.unclean_stops() == before
    assert "ended without a stop" not in caplog.text, caplog.text
    assert not left.exists()  # removed by the start that could
    assert "stopped" in json.loads(written), written
    assert "could not be removed" in err and "marked stopped" in err, err


def test_a_marker_neither_removed_nor_written_at_the_stop_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stop cannot remove its file (its path through a file, as a directory gone read-only refuses it) nor write it
    (its descriptor read-only, as a file system remounted `ro` refuses writes): on main, a DEBUG line alone."""
    marker = markers._hold(str(tmp_path / "lineage.db.running"), "r1", "serve", config(str(tmp_path / "lineage.db")))
    assert marker is not None
    os.close(marker.fd)
    marker.fd = os.open(marker.path, os.O_RDONLY)
    (tmp_path / "file").write_text("")
    marker.path = str(tmp_path / "file" / "r1.running")  # unlink: ENOTDIR
    with caplog.at_level(logging.WARNING, "lineage_proxy"):
        marker.close()
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith(f"running marker {marker.path} could not be removed ("), line
    assert "nor marked stopped" in line and "the next start on this record will say this clean stop was a run" in line
    assert marker.fd == -1


def test_a_start_that_cannot_make_its_marker_leaves_no_directory(tmp_path: Path) -> None:
    """A file system with room for the directory and no file in it (2 inodes: its root, the directory): on main,
    `lineage.db.running/` stayed; now nothing is left, and the start said why it holds no marker."""
    command = unshare()
    mounted = tmp_path / "full"
    mounted.mkdir()
    script = 'mount -t tmpfs -o nr_inodes=2 tmpfs "$1" || exit 3; shift; "$@" || exit 4; echo "left: $(ls -A "$D")"'
    begin = ("from proxy import markers; from tests.test_markers import config; "
             "print(markers.begin(config(sys.argv[1]), 'serve'))")  # fmt: skip
    done = subprocess.run([command, "-rm", "sh", "-c", script, "sh", str(mounted), sys.executable, "-c",
                           f"import sys; {begin}", str(mounted / "lineage.db")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), "D": str(mounted)})  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == ["None", "left: "], done.stdout
    assert f"no running marker in {mounted / 'lineage.db.running'} ([Errno 28] No space left on device" in done.stderr


def test_a_marker_removed_before_the_stop_is_not_said_marked_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its file removed meanwhile (the directory emptied by hand while the proxy ran): the stop has nothing to remove
    and nothing a next start could say. Review revrec13: it wrote `stopped` into the file no name led to any more and
    said at INFO `could not be removed ... marked stopped, removed by the next start that can`, and left the directory
    it would have removed as the last one out."""
    where = tmp_path / "lineage.db.running"
    marker = markers._hold(str(where), "r1", "serve", config(str(tmp_path / "lineage.db")))
    assert marker is not None
    os.unlink(marker.path)
    with caplog.at_level(logging.DEBUG, "lineage_proxy"):
        marker.close()
    assert "could not be removed" not in caplog.text and "marked stopped" not in caplog.text, caplog.text
    assert not where.exists() and marker.fd == -1


def _refusal(store: Path, where: str) -> str:
    return (f"cannot open the lineage store {store}: {where}, where SQLite makes the file and its -wal and -shm files "
            "(give it write access there, or correct the path)")  # fmt: skip


@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["serve", "serve --workers 2"])
def test_a_start_its_store_directory_refuses_says_the_refusal_alone(tmp_path: Path, workers: tuple[str, ...]) -> None:
    """Its store in a directory it may not write in: its marker (`lineage.db.running/`, beside the store) cannot be made
    there either, and the start is refused. Review revrec16: on h-rec16 (and main) a WARNING came first, `no running
    marker in .../lineage.db.running ([Errno 13] Permission denied ...): if this proxy is killed, the next start cannot
    say so`, of a marker a start that never serves would never need (2 of 2, the supervisor's too); now the refusal is
    all it says."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o555)
    store = closed / "lineage.db"
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("STORE", str(store)))
    done = subprocess.run([*run_by, sys.executable, "-m", "proxy", "serve", *workers, "--config", str(path)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 1, done
    refused = _refusal(store, f"this user (uid {os.getuid()}) may not write in the directory {closed}")
    worker = "worker-1: " if workers else ""
    assert done.stderr == f"lineage-proxy serve: {worker}{refused}\n", done.stderr
    assert not done.stdout and not list(closed.iterdir())


def test_a_start_its_store_directory_refuses_as_read_only_says_the_refusal_alone(tmp_path: Path) -> None:
    """The store's directory on a read-only file system (a tmpfs mounted `ro` in a mount namespace of its own): the
    marker's `mkdir` fails (EROFS) and the start is refused, said alone (review revrec16: on h-rec16 a WARNING `no
    running marker ... ([Errno 30] Read-only file system ...)` came first, 1 of 1)."""
    command = unshare()
    mounted = tmp_path / "ro"
    mounted.mkdir()
    store = mounted / "lineage.db"
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("STORE", str(store)))
    script = 'mount -t tmpfs -o ro tmpfs "$1" || exit 3; shift; exec "$@"'
    done = subprocess.run([command, "-rm", "sh", "-c", script, "sh", str(mounted), sys.executable, "-m", "proxy",
                           "serve", "--config", str(path)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 1, done
    assert done.stderr == (f"lineage-proxy serve: cannot open the lineage store {store}: the directory {mounted} is on a "
                           "read-only file system, where SQLite cannot make the file and its -wal and -shm files "
                           "(mount it read-write, or point the path at a writable volume)\n"), done.stderr  # fmt: skip


def test_a_marker_refused_beside_a_store_that_opens_is_still_said(tmp_path: Path) -> None:
    """A pin beside the fix above: the store named by a link in a directory the proxy may not write in, to a file in one
    it may (SQLite makes its files beside the target, so the store opens and the proxy serves), has its marker refused
    beside the link: that warning stays, as this proxy runs with no marker."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir()
    target = tmp_path / "open" / "lineage.db"
    target.parent.mkdir()
    link = closed / "lineage.db"
    link.symlink_to(target)
    closed.chmod(0o555)
    begin = ("from proxy import markers; from tests.test_markers import config; "
             "print(markers.begin(config(sys.argv[1]), 'serve'))")  # fmt: skip
    try:
        done = subprocess.run([*run_by, sys.executable, "-c", f"import sys; {begin}", str(link)], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    finally:
        closed.chmod(0o755)
    assert done.returncode == 0, done
    assert done.stdout == "None\n", done
    assert f"no running marker in {link}.running ([Errno 13] Permission denied" in done.stderr, done.stderr
