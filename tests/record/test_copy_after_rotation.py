"""`edges --copy-to` into a fleet database whose chain was signed with the key the copy's --key-file replaced
(the fleet rotated, none of its writers has signed with the new key yet): the copy signs on top with the new
key, as the fleet's restarted writers do, its --retired-key-file telling it the old one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey, SqliteStore
from tests.servers.postgres import PostgresServer

OLD, NEW = b"the-old-key-0123456789", b"the-new-key-9876543210"
FLOW = EdgeKey("app", "assistant", "health", "org/model", "health", "allow", "")


def test_a_copy_into_a_database_signed_before_the_rotation(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    (tmp_path / "old.key").write_bytes(OLD)
    (tmp_path / "new.key").write_bytes(NEW)
    fleet = PostgresStore(url, key=OLD)  # the fleet's record up to the rotation
    fleet.upsert([(FLOW, 1.0, 1.0, 2, None)])
    fleet.close()
    source = SqliteStore(tmp_path / "lineage.db", key=NEW)  # a history signed with the new key
    source.upsert([(FLOW._replace(caller="moved"), 2.0, 2.0, 3, None)])
    source.close()
    done = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(tmp_path / "lineage.db"),
                           "--copy-to", url, "--key-file", str(tmp_path / "new.key"),
                           "--retired-key-file", str(tmp_path / "old.key")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "copied 1 edges (3 calls)" in done.stdout
    assert PostgresStore(url, readonly=True).integrity(NEW, retired=(OLD,)).intact
