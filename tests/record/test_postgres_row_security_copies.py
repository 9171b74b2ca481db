"""`edges --copy-to` between PostgreSQL stores, attacked by a store's owner (no superuser, no key) who changes a table
once the copy's check of the store has passed: row security turned on with a policy hiding what guards a copy (the
copies a store holds, `applied`'s `copy:` tokens; its origin, `meta`'s), or `applied` truncated (TRUNCATE is not
MVCC-safe: the rows put back after read as none to a snapshot taken before). Each let a history be copied twice, its
calls counted twice in a record that then verified: B holding a copy of A copied back into A; A copied into B again.
A reader now locks the tables it reads before its snapshot (ACCESS SHARE), so neither change is made while it reads;
and every connection reads with `row_security` off, so a read a policy would filter fails: the store copied into,
whose writer locks nothing to read, refuses the copy; a reader without `--integrity` refuses to read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proxy import cli as proxy_cli
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.record.test_copy_cycles import cli, counts, store_with
from tests.servers.postgres import PostgresServer

_roles = iter(range(1, 1_000_000))
SERVED = EdgeKey("app", "assistant", "a", "ck", "", "allow")
DENIED = EdgeKey("app", "ads", "health", "", "", "deny", "zone:h")


def owned(postgres: PostgresServer) -> str:
    """A new database owned by a role of its own that gives a password (no superuser); that role's URL."""
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    role = f"lp_copy_owner_{name}_{next(_roles)}"
    postgres.require_password(role, "owner-secret", owns=name)
    return url.replace("postgres@", f"{role}:owner-secret@")


def policy(url: str, table: str, hides: str, *, wait: bool = True) -> bool:
    """Row security on `table`, on its owner too, with a policy letting reads see only what `hides` does not say,
    and writes through; False when the table's lock was not granted within a second (`wait` False: a reader holds
    it)."""
    with psycopg.connect(url, autocommit=True) as owner:
        if not wait:
            owner.execute("SET lock_timeout = '1s'")
            try:
                owner.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            except psycopg.errors.LockNotAvailable:
                return False
        owner.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        owner.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        owner.execute(f"CREATE POLICY seen ON {table} FOR SELECT USING (NOT ({hides}))")
        owner.execute(f"CREATE POLICY written ON {table} FOR INSERT WITH CHECK (true)")
        owner.execute(f"CREATE POLICY changed ON {table} FOR UPDATE USING (true)")
    return True


@pytest.fixture
def after_the_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Policies (url, table, what they hide) turned on as the first check for row security returns, the source's,
    each tried for a second; whether each was turned on is appended after them."""
    planned: list[Any] = []
    oddities = PostgresStore._oddities

    def then_row_security(cur: psycopg.Cursor[Any]) -> str:
        found = oddities(cur)
        while planned and isinstance(planned[0], tuple):
            planned.append(policy(*planned.pop(0), wait=False))
        return found

    monkeypatch.setattr(PostgresStore, "_oddities", staticmethod(then_row_security))
    yield planned


def copy(source: str, target: str) -> int:
    return proxy_cli.main(["edges", "--store", source, "--copy-to", target])


def test_a_store_whose_copies_are_hidden_is_not_copied_back(
    postgres: PostgresServer, after_the_check: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = postgres.database(), owned(postgres)
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    assert copy(a, b) == 0
    after_the_check.append((b, "applied", "token LIKE 'copy:%'"))  # B's copy of A, hidden from B's read
    assert copy(b, a) == 1, capsys.readouterr()
    said = capsys.readouterr().err
    assert "holds a copy of this store" in said, said
    assert after_the_check == [False]  # the read held the table: no policy was turned on while it read
    assert counts(a) == {"a": 5}  # not A's calls twice


def test_a_store_whose_origin_is_hidden_is_not_copied_twice(
    postgres: PostgresServer, after_the_check: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = owned(postgres), postgres.database()
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    assert copy(a, b) == 0
    after_the_check.append((a, "meta", "key = 'origin'"))  # A known by its chain instead, which B never recorded
    assert copy(a, b) == 0
    said = capsys.readouterr().out
    assert "was copied into" in said and "before" in said and "nothing added" in said, said
    assert after_the_check == [False]
    assert counts(b) == {"a": 5, "b": 3}


def test_a_store_copied_into_whose_copies_are_hidden_takes_no_copy_twice(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """B's owner turns row security on once the copy's writer has opened B (its start checks for it)."""
    a, b = postgres.database(), owned(postgres)
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    assert copy(a, b) == 0
    prepare = PostgresStore._prepare

    def then_row_security(store: PostgresStore, *args: Any, **kwargs: Any) -> None:
        prepare(store, *args, **kwargs)
        policy(b, "applied", "token LIKE 'copy:%'")

    monkeypatch.setattr(PostgresStore, "_prepare", then_row_security)
    assert copy(a, b) == 1, capsys.readouterr()
    said = capsys.readouterr().err
    assert "cannot copy into it" in said and "row-level security" in said, said
    monkeypatch.setattr(PostgresStore, "_prepare", prepare)
    with psycopg.connect(b, autocommit=True) as owner:
        owner.execute("ALTER TABLE applied NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY")
    assert counts(b) == {"a": 5, "b": 3}


def test_a_policy_hiding_denials_hides_none_from_a_reader(postgres: PostgresServer, tmp_path: Path) -> None:
    """Row security turned on by the owner before the read: `edges`, `verify --baseline` and `report` without
    `--integrity` read the table as it stands, and listed it, judged it (the gate passed) and drew it without the
    denial the policy hid. They refuse it now, naming it; `verify --integrity` names it as before."""
    url = owned(postgres)
    store = PostgresStore(url)
    store.upsert([(SERVED, 100.0, 100.0, 2, None), (DENIED, 101.0, 101.0, 1, "not for ads")])
    store.close()
    policy(url, "edges", "decision = 'deny'")
    listed = cli("edges", "--store", url)
    assert listed.returncode == 1 and "the store has edges: row security" in listed.stderr, (
        listed.stdout + listed.stderr
    )
    baseline = tmp_path / "baseline.yaml"  # approves the served flow, not the refused one
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a]\n")
    gate = cli("verify", "--store", url, "--baseline", str(baseline))
    assert gate.returncode == 2 and "the store has edges: row security" in gate.stderr, gate.stdout + gate.stderr
    out = tmp_path / "report.html"
    drawn = cli("report", "--store", url, "--out", str(out))
    assert drawn.returncode == 1 and not out.exists(), drawn.stdout + drawn.stderr
    assert "the store has edges: row security" in drawn.stderr, drawn.stderr
    proven = cli("verify", "--store", url, "--integrity")
    assert proven.returncode == 1 and "NOT intact: the store has edges: row security" in proven.stdout, proven.stdout


def test_a_store_whose_copies_are_truncated_meanwhile_is_not_copied_back(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """TRUNCATE is not MVCC-safe: a table truncated (and filled again) after a reader's snapshot reads empty to it. B's
    owner truncates `applied` once the copy's read has its snapshot, and puts the rows back after: B's copy of A read
    as none, and B was copied back into A, leaving no trace. A reader locks the lineage tables before its snapshot
    (ACCESS SHARE), so the TRUNCATE waits for its read."""
    a, b = postgres.database(), owned(postgres)
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    assert copy(a, b) == 0
    oddities = PostgresStore._oddities
    done: list[bool] = []

    def then_truncated(cur: psycopg.Cursor[Any]) -> str:
        found = oddities(cur)
        if not done:
            done.append(True)
            with psycopg.connect(b, autocommit=True) as owner:
                owner.execute("SET lock_timeout = '2s'")
                try:
                    owner.execute("TRUNCATE applied")
                except psycopg.errors.LockNotAvailable:
                    done.append(False)  # the reader holds its lock: the TRUNCATE waits for it
        return found

    monkeypatch.setattr(PostgresStore, "_oddities", staticmethod(then_truncated))
    assert copy(b, a) == 1, capsys.readouterr()
    assert "holds a copy of this store" in capsys.readouterr().err
    assert done == [True, False]
    assert counts(a) == {"a": 5}  # not A's calls twice
