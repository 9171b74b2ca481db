"""Whoever kept the retired key, after the rotation: the entries signed with the new key removed and the record
written on with the old key from where it was signed last. README: "someone who kept the old key cannot add
to the record after the rotation"."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from proxy.record import integrity
from proxy.record.store import SqliteStore, flat
from tests.record.test_key_rotation import FLOW, NEW, OLD, keys, verify


def rotated(path: Path, writes: int) -> None:
    """A write signed with OLD, then `writes` signed with NEW by a writer that has OLD retired."""
    old = SqliteStore(path, key=OLD)
    old.upsert([(FLOW, 1.0, 1.0, 2, None)])
    old.close()
    new = SqliteStore(path, key=NEW, retired=(OLD,))
    for n in range(writes):
        new.upsert([(FLOW, 3.0 + n, 3.0 + n, 1, None)])
    new.close()


def verified(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    old_file, new_file = keys(tmp_path)
    return verify(tmp_path / "lineage.db", "--key-file", str(new_file), "--retired-key-file", str(old_file))


def test_the_new_keys_entries_replaced_by_old_key_ones_are_named(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    rotated(path, 1)
    with sqlite3.connect(path) as db:  # the new key's entries and their count taken out
        db.execute("DELETE FROM chain WHERE seq >= 3")
        db.execute("UPDATE edges SET count = 2, last_seen = 1.0")
    forger = SqliteStore(path, key=OLD)  # the newest entry is the old key's again: it signs on
    forger.upsert([(FLOW._replace(caller="mallory"), 4.0, 4.0, 1, None)])
    forger.close()
    found = verified(tmp_path)
    assert found.returncode == 1, found.stdout  # added after the rotation with the old key: not intact
    assert "the newest, is signed with a retired key" in found.stdout, found.stdout


def test_the_new_keys_entries_edited_and_signed_again_with_the_old_key_are_named(tmp_path: Path) -> None:
    """Nothing removed: the newest entry is edited (its count), and every entry from the rotation on signed
    again with the old key."""
    path = tmp_path / "lineage.db"
    rotated(path, 2)
    with sqlite3.connect(path) as db:
        entries = db.execute("SELECT seq, body, prev FROM chain WHERE seq >= 3 ORDER BY seq").fetchall()
        prev = entries[0][2]
        for seq, body, _ in entries:
            if seq == entries[-1][0]:  # the newest: its call counted 1000 times
                body = integrity.body(integrity.EDGES, [flat((FLOW, 4.0, 4.0, 1000, None))])
            signed = integrity.link(prev, body, OLD)
            db.execute("UPDATE chain SET body = ?, prev = ?, hash = ? WHERE seq = ?", (body, prev, signed, seq))
            prev = signed
        db.execute("UPDATE edges SET count = 1003")
    found = verified(tmp_path)
    assert found.returncode == 1, found.stdout  # edited after the rotation, with the old key: not intact
    assert "the newest, is signed with a retired key" in found.stdout, found.stdout
