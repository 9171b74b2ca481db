"""Rotating the chain's HMAC key: the writers sign with the new key (`lineage.integrity_key_file`), the keys
it replaced (`lineage.integrity_retired_key_files`, oldest first) check what was signed before, for `verify
--integrity --retired-key-file`, a purge, a journaled backlog and `edges --copy-to`. Once an entry is signed
with the new key, one signed with an older key after it is named: someone who kept the old key cannot add to
the record after the rotation."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import ConfigError, StartupError
from proxy.record import integrity
from proxy.record.journal import Journal
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey, SqliteStore, flat
from tests.servers.postgres import PostgresServer

OLD, NEW = b"the-old-key-0123456789", b"the-new-key-9876543210"
FLOW = EdgeKey("app", "assistant", "health", "org/model", "health", "allow", "")
OTHER = FLOW._replace(purpose="ads", decision="deny", rule="zone:h")


def keys(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "old.key").write_bytes(OLD)
    (tmp_path / "new.key").write_bytes(NEW)
    return tmp_path / "old.key", tmp_path / "new.key"


def verify(store: object, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(store), "--integrity", *extra],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def rotated(path: Path) -> None:
    """Two writes signed with OLD, then two with NEW by a writer that has OLD retired."""
    old = SqliteStore(path, key=OLD)
    old.upsert([(FLOW, 1.0, 1.0, 2, None)])
    old.upsert([(OTHER, 2.0, 2.0, 1, "no")])
    old.close()
    new = SqliteStore(path, key=NEW, retired=(OLD,))
    new.upsert([(FLOW, 3.0, 3.0, 1, None)])
    new.upsert([(OTHER, 4.0, 4.0, 1, "no")])
    new.close()


def test_a_rotated_chain_verifies_with_the_retired_key_given(tmp_path: Path) -> None:
    old_file, new_file = keys(tmp_path)
    rotated(tmp_path / "lineage.db")
    both = verify(tmp_path / "lineage.db", "--key-file", str(new_file), "--retired-key-file", str(old_file))
    assert both.returncode == 0 and "intact: 6 chain entries" in both.stdout, both.stdout + both.stderr
    new_only = verify(tmp_path / "lineage.db", "--key-file", str(new_file))
    assert new_only.returncode == 1 and "entry 1: its hash does not match" in new_only.stdout, new_only.stdout
    assert "signed with none of the keys given" in new_only.stdout
    old_only = verify(tmp_path / "lineage.db", "--key-file", str(old_file))
    assert old_only.returncode == 1 and "entry 4: its hash does not match" in old_only.stdout, old_only.stdout


def test_an_entry_signed_with_the_old_key_after_the_rotation_is_named(tmp_path: Path) -> None:
    """Someone who kept the old key adds an entry (as a writer would have signed it)."""
    old_file, new_file = keys(tmp_path)
    rotated(tmp_path / "lineage.db")
    with sqlite3.connect(tmp_path / "lineage.db") as db:
        (prev,) = db.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        text = integrity.body(integrity.EDGES, [flat((FLOW, 5.0, 5.0, 7, None))])
        db.execute("INSERT INTO chain (at, body, prev, hash) VALUES (5.0, ?, ?, ?)",
                   (text, prev, integrity.link(prev, text, OLD)))  # fmt: skip
        db.execute("UPDATE edges SET count = count + 7, last_seen = 5.0 WHERE caller = 'app' AND purpose = 'assistant'")
    found = verify(tmp_path / "lineage.db", "--key-file", str(new_file), "--retired-key-file", str(old_file))
    assert found.returncode == 1, found.stdout
    assert "entry 7: it is signed with a retired key, after entries signed with a newer one" in found.stdout


def test_a_writer_still_on_the_old_key_stops_signing_once_the_new_key_has(tmp_path: Path) -> None:
    """A writer started before the rotation (never restarted) would sign after the new key's entries, and the
    chain would never verify again: its writes fail instead (the aggregator keeps their counts), and a writer
    started with a key that signed none of it is refused at start."""
    old_file, new_file = keys(tmp_path)
    stale = SqliteStore(tmp_path / "lineage.db", key=OLD)
    stale.upsert([(FLOW, 1.0, 1.0, 2, None)])
    new = SqliteStore(tmp_path / "lineage.db", key=NEW, retired=(OLD,))
    new.upsert([(FLOW, 2.0, 2.0, 1, None)])
    with pytest.raises(integrity.UnsignedHead, match="signed with a key this writer does not have"):
        stale.upsert([(OTHER, 3.0, 3.0, 1, "no")])
    stale.close()
    new.upsert([(OTHER, 4.0, 4.0, 1, "no")])  # the new key's writer goes on
    new.close()
    with pytest.raises(StartupError, match="signed with a key this writer does not have"):
        SqliteStore(tmp_path / "lineage.db", key=b"another-key-of-the-fleet")
    both = verify(tmp_path / "lineage.db", "--key-file", str(new_file), "--retired-key-file", str(old_file))
    assert both.returncode == 0 and "intact: 5 chain entries" in both.stdout, both.stdout + both.stderr


def test_a_purge_after_the_rotation_checks_the_old_entries_with_the_retired_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without it the purge stops (the record does not verify); with it the purge's snapshot, signed with the
    new key, replaces the old entries, and the new key alone verifies the store from then on."""
    old_file, new_file = keys(tmp_path)
    rotated(tmp_path / "lineage.db")
    now = 4.0 + 86400 * 10  # FLOW last seen at 3.0 and OTHER at 4.0: both expire at a 5-day retention from 5.0 on
    unrotated = SqliteStore(tmp_path / "lineage.db", key=NEW)
    with caplog.at_level(logging.ERROR):
        assert unrotated.purge(5, now=now) == 0
    unrotated.close()
    assert "entry 1: its hash does not match" in caplog.text
    writer = SqliteStore(tmp_path / "lineage.db", key=NEW, retired=(OLD,))
    writer.upsert([(FLOW._replace(caller="kept"), now, now, 1, None)])
    assert writer.purge(5, now=now) == 2
    writer.close()
    after = verify(tmp_path / "lineage.db", "--key-file", str(new_file))
    assert after.returncode == 0 and "intact" in after.stdout, after.stdout + after.stderr


def test_the_retired_keys_are_checked_as_keys_and_named_once(tmp_path: Path) -> None:
    old_file, new_file = keys(tmp_path)
    (tmp_path / "empty.key").write_bytes(b" \n")
    (tmp_path / "short.key").write_bytes(b"short")
    base = "listen: {http: 127.0.0.1:0}\nupstreams: [{name: u, url: 'http://127.0.0.1:1'}]\nroutes: [{model: '*', upstream: u}]\nlineage:\n"
    good = parse(base + f"  integrity_key_file: {new_file}\n  integrity_retired_key_files: [{old_file}]\n")
    assert good.lineage.integrity_retired_key_files == (str(old_file),)
    cases = {
        f"  integrity_retired_key_files: [{old_file}]\n": "retired keys need lineage.integrity_key_file",
        f"  integrity_key_file: {new_file}\n  integrity_retired_key_files: [{tmp_path / 'empty.key'}]\n":
            "lineage.integrity_retired_key_files[0]: cannot read a key from",
        f"  integrity_key_file: {new_file}\n  integrity_retired_key_files: [{tmp_path / 'gone.key'}]\n":
            "cannot read a key from",
        f"  integrity_key_file: {new_file}\n  integrity_retired_key_files: [{old_file}, {new_file}]\n":
            "lineage.integrity_retired_key_files[1]: " + repr(str(new_file)) + " is named twice",
    }  # fmt: skip
    for text, message in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse(base + text)
        assert message in str(caught.value), str(caught.value)
        assert "head -c 32" not in str(caught.value)  # an old key is the chain's: never "make one"
    # a retired key signs nothing: one shorter than a signing key (an earlier release's) is taken
    short = parse(
        base + f"  integrity_key_file: {new_file}\n  integrity_retired_key_files: [{tmp_path / 'short.key'}]\n"
    )
    assert short.lineage.integrity_retired_key_files == (str(tmp_path / "short.key"),)


@pytest.mark.parametrize("retired", [True, False])
def test_a_served_proxy_purges_with_its_retired_keys(make_proxy, tmp_path: Path, retired: bool) -> None:  # type: ignore[no-untyped-def]
    """`serve` with the new key and the old one retired: its purge at start checks the old entries with it, and
    signs its snapshot with the new key, which alone verifies the store from then on. Without the old key, the
    purge leaves the record as it is."""
    old_file, new_file = keys(tmp_path)
    rotated(tmp_path / "lineage.db")  # every edge last seen in 1970: all expired
    config = (
        "listen: {http: 127.0.0.1:0}\nupstreams: [{name: u, url: 'http://127.0.0.1:1'}]\n"
        "routes: [{model: '*', upstream: u}]\n"
        f"lineage:\n  store: ${{STORE}}\n  retention_days: 1\n  integrity_key_file: {new_file}\n"
        + (f"  integrity_retired_key_files: [{old_file}]\n" if retired else "")
    )
    proxy = make_proxy(config, wait="listening")  # no upstream: nothing is served
    edges = proxy.process.runtime.sinks.get("edges")
    edges._reading.result(30)  # the start's purge: its replay, off the writer thread, then the purge on it
    # a purge of the served store on its writer thread: the start's if it is still to come, else nothing expired
    edges._submit(edges._store.purge, 1).result(30)
    after = verify(tmp_path / "lineage.db", "--key-file", str(new_file))
    if retired:
        assert after.returncode == 0 and "intact: 1 chain entries" in after.stdout, after.stdout + after.stderr
    else:
        assert after.returncode == 1 and "entry 1: its hash does not match" in after.stdout, after.stdout


def test_a_fleet_store_and_its_journal_take_the_rotation(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    old = PostgresStore(url, key=OLD)
    old.upsert([(FLOW, 1.0, 1.0, 2, None)])
    old.close()
    journal = Journal(tmp_path / "journal.db", key=OLD)  # a backlog journaled during an outage, before the rotation
    journal.append("t-1", [flat((FLOW, 2.0, 2.0, 3, None))])
    journal.close()
    stale = PostgresStore(url, key=OLD)  # a writer of the fleet not restarted yet
    new = PostgresStore(url, key=NEW, retired=(OLD,))
    new.upsert([(FLOW, 3.0, 3.0, 1, None)])
    with pytest.raises(integrity.UnsignedHead, match="signed with a key this writer does not have"):
        stale.upsert([(FLOW, 3.5, 3.5, 1, None)])  # (journaled, in front of a served store)
    stale.close()
    assert new.integrity(NEW, retired=(OLD,)).intact
    assert not new.integrity(NEW).intact
    now = 3.0 + 86400 * 10
    new.upsert([(OTHER, now, now, 1, "no")])
    assert new.purge(5, now=now) == 1  # the replay under the write lock checks the old entries with OLD
    assert new.integrity(NEW).intact  # the old entries are cut: the new key alone verifies
    new.close()
    batches = Journal(tmp_path / "journal.db", key=NEW, retired=(OLD,)).oldest()
    assert [(token, type(rows)) for _, token, rows, _ in batches] == [("t-1", list)]  # replayed, not set aside
    again = Journal(tmp_path / "journal.db", key=NEW).oldest()  # signed again with NEW as it was opened with it
    assert [(token, type(rows)) for _, token, rows, _ in again] == [("t-1", list)]


def test_a_retired_key_file_that_is_no_key_is_a_usage_error(tmp_path: Path) -> None:
    """`verify` and `edges --copy-to` read retired keys as the writers do: missing or empty, said so (exit 2
    and 1), nothing verified or copied."""
    old_file, new_file = keys(tmp_path)
    rotated(tmp_path / "lineage.db")
    (tmp_path / "empty.key").write_bytes(b" \n")
    for bad, message in (
        (tmp_path / "gone.key", "cannot read a key from"),
        (tmp_path / "empty.key", "the file is empty"),
    ):
        found = verify(tmp_path / "lineage.db", "--key-file", str(new_file), "--retired-key-file", str(bad))
        assert found.returncode == 2 and message in found.stderr and "intact" not in found.stdout, found.stderr
        copied = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(tmp_path / "lineage.db"),
                                 "--copy-to", "postgresql://u@127.0.0.1:1/none", "--key-file", str(new_file),
                                 "--retired-key-file", str(bad)], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert copied.returncode == 1 and message in copied.stderr, copied.stderr
