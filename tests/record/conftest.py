"""A real PostgreSQL for the fleet store's tests: Debian's `postgresql` binaries, a throwaway cluster in
a temp dir on a free loopback port, started once per session and stopped at its end. A test gets its own
database (`postgres.database()`), so tests share the server but never each other's rows."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_real_servers
from tests.servers.postgres import PostgresServer, bin_dir


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    binaries = bin_dir()
    if binaries is None:
        message = "PostgreSQL is not installed (apt-get install postgresql): the fleet store is tested against it"
        if require_real_servers():
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="lp-pg-"))
    root.chmod(0o755)
    server = PostgresServer(binaries, root)
    server.start()
    yield server
    try:
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
