"""Each `--workers` process writes log lines (stderr) and console spans (stdout) under two record locks, one each
(`logs._ForkLock`). A record lock is its process's, not its thread's: a worker whose exporter holds stdout's lock (its
write waiting for room: nothing reads stdout) while its log writer waits for stderr's, and another worker whose log
writer holds stderr's (waiting for room too) while its exporter asks for stdout's, is a cycle to the kernel, which
refused the last request with EDEADLK: that worker's batch of spans failed (98 of 200 spans lost in one run of
`serve --workers 2`, both pipes unread for a while), or its log lines were lost unsaid. No thread holds one lock while
it waits for the other, so the cycle is never real: the lock is asked again until it is free.

Made here with two forked processes and two pipes of 4096 bytes, in the order that closes the cycle, each step waited
for in the pipes and in /proc/locks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import fcntl, os, sys, termios, threading, time
    from proxy import logs

    def held(fd):  # the bytes a pipe holds, unread
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\\0\\0\\0\\0"), sys.byteorder)

    def until(ready, what):
        deadline = time.monotonic() + 30
        while not ready():
            assert time.monotonic() < deadline, what
            time.sleep(0.005)

    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    for end in (out_w, err_w):
        fcntl.fcntl(end, fcntl.F_SETPIPE_SZ, 4096)

    def worker(holds, full, asks, other, mark):
        go_r, go_w = os.pipe()
        pid = os.fork()  # (the first fork makes the two locks' files)
        if pid:
            os.close(go_r)
            return pid, go_w
        os.close(go_w)
        writing = threading.Thread(target=holds.write, args=(full, mark * 8192))  # waits for room, the lock held
        writing.start()
        os.read(go_r, 1)
        try:
            asks.write(other, mark.upper() + b"\\n")
        except OSError as exc:
            print(f"{mark.decode()}: {exc}", flush=True)
            os._exit(3)
        writing.join()
        os._exit(0)

    a, go_a = worker(logs._stdout_lock, out_w, logs._fork_lock, err_w, b"a")
    until(lambda: held(out_r) == 4096, "a holds stdout's lock")
    b, go_b = worker(logs._fork_lock, err_w, logs._stdout_lock, out_w, b"b")
    until(lambda: held(err_r) == 4096, "b holds stderr's lock")
    os.close(out_w), os.close(err_w)
    os.write(go_a, b"!")  # a asks for stderr's lock, which b holds
    until(lambda: any(" -> " in line and f" {a} " in line for line in open("/proc/locks")), "a waits")
    os.write(go_b, b"!")  # b asks for stdout's lock, which a holds: the cycle
    got = {}
    readers = [threading.Thread(target=lambda fd=fd: got.__setitem__(fd, os.fdopen(fd, "rb").read()))
               for fd in (out_r, err_r)]
    for reader in readers:
        reader.start()
    codes = [os.waitpid(pid, 0)[1] >> 8 for pid in (a, b)]
    for reader in readers:
        reader.join()
    print("exits", codes, "stdout", got[out_r] == b"a" * 8192 + b"B\\n", "stderr", got[err_r] == b"b" * 8192 + b"A\\n")
    """
)


def test_two_workers_each_holding_one_lock_and_asking_for_the_other_both_write() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "exits [0, 0] stdout True stderr True", run.stdout + run.stderr
