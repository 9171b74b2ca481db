"""A real PostgreSQL, from Debian's `postgresql` binaries: a throwaway cluster in a temp dir on a free
loopback port. The fleet store's tests (tests/record/conftest.py) and the benchmark's PostgreSQL row
(benchmarks/run.py) start it."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def _release(initdb: str) -> tuple[int, ...]:
    """A release's number as a version (`9.6` -> (9, 6)) from its initdb's path, `/usr/lib/postgresql/9.6/bin/initdb`:
    compared as text, 9.6 came after 15. A name that is no number is the oldest."""
    name = Path(initdb).parent.parent.name
    return tuple(int(part) for part in name.split(".")) if re.fullmatch(r"[0-9]+(\.[0-9]+)*", name) else ()


def bin_dir(root: str = "/usr/lib/postgresql") -> Path | None:
    """The binaries of the newest PostgreSQL release installed under `root` (Debian's layout, one directory a
    release), by its number (sorted as text, 9.6 was taken over 15)."""
    found = glob.glob(os.path.join(glob.escape(root), "*", "bin", "initdb"))
    return Path(max(found, key=_release)).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One cluster; `stop()` and `start()` let a test take the database away and bring it back."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as the package's postgres user
            pwd.getpwnam("postgres")
            shutil.chown(root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as, str(self.bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{tool} failed: {done.stdout}\n{done.stderr}"

    def start(self) -> None:
        # prepared transactions allowed: a test holds a lock in one (no session holds it then)
        options = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += " -c max_prepared_transactions=4"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options)

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def database(self, encoding: str | None = None) -> str:
        """A new, empty database (in `encoding`, from template0, when given); its URL."""
        name = f"lineage_{next(self._names)}"
        made = ["-E", encoding, "--locale=C", "-T", "template0"] if encoding else []
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", *made, name)
        return self.url(name)

    def require_password(self, role: str, password: str, *, owns: str) -> None:
        """A login role that must give its password (the cluster trusts every other), owning the database
        `owns` (so it may make the lineage tables there)."""
        hba = self.data / "pg_hba.conf"
        line = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
        if line not in hba.read_text():
            hba.write_text(line + hba.read_text())  # the first line that matches decides
            self._run("pg_ctl", "reload", "-D", str(self.data))
        import psycopg

        with psycopg.connect(self.url(owns), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            conn.execute(f"ALTER DATABASE {owns} OWNER TO {role}")

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """The server stops answering, its connections open (SIGSTOP on every process: a host that hangs,
        or a network partition, as a client sees it: the kernel still acknowledges, nothing answers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)  # first: it starts no backend while the others are found
        stopped = [postmaster]
        try:
            for stat in glob.glob("/proc/[0-9]*/stat"):
                try:
                    parent = int(Path(stat).read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue  # gone meanwhile
                if parent == postmaster:
                    with suppress(ProcessLookupError):  # a backend that was ending
                        os.kill(int(stat.split("/")[2]), signal.SIGSTOP)
                        stopped.append(int(stat.split("/")[2]))
            yield
        finally:
            for pid in stopped:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}?connect_timeout=2"
