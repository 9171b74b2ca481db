"""`report --integrity` on a PostgreSQL store, as on a SQLite file: a record edited by hand is not drawn (exit 1, the
first broken link printed, no report written, one there before left as it was); one that verifies is drawn from the
very rows its verdict compared, in its own snapshot, never from a table written or a policy turned on after the
verdict; and what `verify --integrity` warns of beside an intact record (a writer role whose search path finds another
schema first) is said too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from proxy import cli as proxy_cli
from proxy.record import postgres as database
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.record.test_postgres_writer_schema import fleet, plant
from tests.servers.postgres import PostgresServer

SERVED = EdgeKey("app", "assistant", "a", "ck", "", "allow")
DENIED = EdgeKey("app", "ads", "health", "", "", "deny", "zone:h")
LATE = EdgeKey("latecomer", "assistant", "a", "ck", "", "allow")


def report(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "report", "--store", url, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def signed_store(postgres: PostgresServer, tmp_path: Path) -> tuple[str, Path]:
    """A keyed store of a served flow and a refused one; its URL and key file."""
    key_file = tmp_path / "chain.key"
    key_file.write_text("kept-out-of-the-store's-reach\n")
    url = postgres.database()
    store = PostgresStore(url, key=b"kept-out-of-the-store's-reach")
    store.upsert([(SERVED, 100.0, 100.0, 2, None)])
    store.upsert([(DENIED, 101.0, 101.0, 1, "not for ads")])
    store.close()
    return url, key_file


def test_rows_deleted_by_hand_write_no_report(postgres: PostgresServer, tmp_path: Path) -> None:
    url, key_file = signed_store(postgres, tmp_path)
    out = tmp_path / "report.html"
    drawn = report(url, out, "--integrity", "--key-file", str(key_file))
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    before = out.read_bytes()
    assert b"Record verified: hash chain intact" in before and b"zone:h" in before
    with psycopg.connect(url, autocommit=True) as conn:  # the refused flow, edited out of the record
        conn.execute("DELETE FROM edges WHERE decision = 'deny'")
    edited = report(url, out, "--integrity", "--key-file", str(key_file))
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert "NOT intact" in edited.stdout and "a row was deleted" in edited.stdout, edited.stdout
    assert "no report written: the record of" in edited.stderr and "does not verify" in edited.stderr, edited.stderr
    assert out.read_bytes() == before  # the report drawn before is left as it was
    plain = report(url, out)  # without the option the table as it stands, the refused flow gone
    assert plain.returncode == 0 and b"zone:h" not in out.read_bytes(), plain.stdout + plain.stderr
    assert b"Record not verified" in out.read_bytes()


def test_a_flow_written_after_the_verdict_is_not_drawn(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A write committed between the verdict and the read of the rows (here, as the rows are about to be read) is
    not in the report: its rows are those of the snapshot the chain was verified in."""
    url, key_file = signed_store(postgres, tmp_path)
    sidecar = database._sidecar

    def written_meanwhile(cur: psycopg.Cursor[object]) -> str:
        writer = PostgresStore(url, key=b"kept-out-of-the-store's-reach")
        writer.upsert([(LATE, 102.0, 102.0, 1, None)])
        writer.close()
        return sidecar(cur)

    monkeypatch.setattr(database, "_sidecar", written_meanwhile)
    out = tmp_path / "report.html"
    argv = ["report", "--store", url, "--out", str(out), "--integrity", "--key-file", str(key_file)]
    assert proxy_cli.main(argv) == 0
    assert "2 flows, 3 calls; the record verified" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert "zone:h" in text and "latecomer" not in text  # drawn: the record verified; not: the flow written after
    monkeypatch.setattr(database, "_sidecar", sidecar)
    with psycopg.connect(url, autocommit=True) as conn:  # it was written
        assert conn.execute("SELECT count(*) FROM edges WHERE caller = 'latecomer'").fetchone() == (1,)


def test_a_warning_beside_an_intact_record_is_said(postgres: PostgresServer, tmp_path: Path) -> None:
    owner, _, role = fleet(postgres)
    out = tmp_path / "report.html"
    quiet = report(owner, out, "--integrity")
    assert quiet.returncode == 0 and "warning:" not in quiet.stdout + quiet.stderr, quiet.stdout + quiet.stderr
    plant(owner, role, tables=False)
    warned = report(owner, out, "--integrity")
    assert warned.returncode == 0, warned.stdout + warned.stderr  # the record itself verifies, and is drawn
    assert f"warning: role {role} may write this store" in warned.stdout, warned.stdout + warned.stderr
    assert "Record verified" in out.read_text(encoding="utf-8")


def test_row_security_turned_on_after_the_check_for_it_hides_no_flow(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database's owner (no superuser, no key) turns on row security once the verdict has checked for it (here
    as the check returns; by hand, by holding `meta` locked till the reader waits on it): a policy that hides the
    denial from a query that orders the rows, as a reader lists them. A reader locks the tables it reads before its
    snapshot, so the policy waits for the read: what is drawn and judged is what the verdict compared, the denial in
    it. Turned on before, the verdict names it; and any read it would filter fails (`row_security` off)."""
    key_file = tmp_path / "chain.key"
    key_file.write_text("kept-out-of-the-store's-reach\n")
    name = postgres.database().rsplit("/", 1)[1].split("?")[0]
    postgres.require_password("lp_policy_owner", "owner-secret", owns=name)
    url = postgres.url(name).replace("postgres@", "lp_policy_owner:owner-secret@")
    store = PostgresStore(url, key=b"kept-out-of-the-store's-reach")
    store.upsert([(SERVED, 100.0, 100.0, 2, None), (DENIED, 101.0, 101.0, 1, "not for ads")])
    store.close()
    oddities = PostgresStore._oddities
    turned: list[bool] = []  # whether the policy was turned on, at each read's check

    def turn_on() -> None:
        with psycopg.connect(url, autocommit=True) as owner:
            owner.execute("ALTER TABLE edges ENABLE ROW LEVEL SECURITY")
            owner.execute("ALTER TABLE edges FORCE ROW LEVEL SECURITY")  # on its owner too
            owner.execute("CREATE POLICY hide ON edges USING (decision <> 'deny' OR "
                          "pg_catalog.strpos(pg_catalog.current_query(), 'ORDER BY') = 0)")  # fmt: skip

    def then_row_security(cur: psycopg.Cursor[object]) -> str:
        found = oddities(cur)
        with psycopg.connect(url, autocommit=True) as owner:
            owner.execute("SET lock_timeout = '1s'")
            try:
                with owner.transaction():
                    owner.execute("LOCK TABLE edges IN ACCESS EXCLUSIVE MODE")  # what ALTER TABLE takes
            except psycopg.errors.LockNotAvailable:
                turned.append(False)
                return found
        turned.append(True)
        turn_on()
        return found

    monkeypatch.setattr(PostgresStore, "_oddities", staticmethod(then_row_security))
    out = tmp_path / "report.html"
    drawn = proxy_cli.main(["report", "--store", url, "--out", str(out), "--integrity", "--key-file", str(key_file)])
    said = capsys.readouterr()
    assert drawn == 0 and turned == [False], said.out + said.err
    assert "Record verified" in out.read_text(encoding="utf-8") and "zone:h" in out.read_text(encoding="utf-8")
    baseline = tmp_path / "baseline.yaml"  # approves the served flow, not the refused one
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a]\n")
    gate = ["verify", "--store", url, "--baseline", str(baseline), "--integrity", "--key-file", str(key_file)]
    assert proxy_cli.main(gate) == 1 and turned == [False, False]  # the refused flow is judged: unapproved
    assert "UNAPPROVED new-purpose" in capsys.readouterr().out
    monkeypatch.setattr(PostgresStore, "_oddities", staticmethod(oddities))
    turn_on()  # on before the read: the verdict names it, and a plain read fails rather than hide the denial
    assert proxy_cli.main(gate) == 1
    assert "NOT intact: the store has edges: row security" in capsys.readouterr().out
    assert proxy_cli.main(["edges", "--store", url]) == 1
    assert "the store has edges: row security" in capsys.readouterr().err
