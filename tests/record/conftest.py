"""A real PostgreSQL for the fleet store's tests: Debian's `postgresql` binaries, a throwaway cluster in
a temp dir on a free loopback port, started once per session and stopped at its end. A test gets its own
database (`postgres.database()`), so tests share the server but never each other's rows."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def forge_unsigned_chain(db: Any, mark: str) -> None:
    """What someone who can write a store but not read its key can do: replace the chain with one unsigned
    snapshot of the edge table as it now stands (`db`: a SQLite or psycopg connection; `mark`: its
    parameter placeholder, `?` or `%s`)."""
    from proxy.record import integrity

    db.execute("DELETE FROM chain")
    db.execute("DELETE FROM meta WHERE key = 'anchor'")
    rows = db.execute("SELECT caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen, "
                      "last_seen, count, rule, reason FROM edges ORDER BY caller, purpose, input_labels").fetchall()  # fmt: skip
    body = integrity.body(integrity.SNAPSHOT, rows)
    db.execute(f"INSERT INTO chain (at, body, prev, hash) VALUES (0, {mark}, '', {mark})",
               (body, integrity.link(integrity.GENESIS, body, None)))  # fmt: skip
