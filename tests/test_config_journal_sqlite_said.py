"""`lineage.journal` and `journal_max_rows` are a PostgreSQL store's: with a SQLite store (or none) they are never
read, and were accepted without a word (found by helper huntuser, fixed reviewing it, helper revuser). Now a warning
names each, as `check` and `serve` say warnings (exit 0); `password_file`, which only PostgreSQL reads too, is a problem
already. config/example.yaml set both beside its SQLite store; it leaves them commented out now, as it does
`password_file`, so the shipped example says no warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import load, parse

ROOT = Path(__file__).resolve().parents[1]
BASE = ("listen: {http: '127.0.0.1:0'}\nupstreams: [{name: m, url: 'http://127.0.0.1:9'}]\n"
        "routes: [{model: '*', upstream: m}]\npolicy: {anonymous: allow}\n")  # fmt: skip


@pytest.mark.parametrize(
    ("lineage", "keys"),
    [
        ("{store: ./lineage.db, journal: ./j.db}", ["journal"]),
        ("{store: ./lineage.db, journal: ./j.db, journal_max_rows: 10}", ["journal", "journal_max_rows"]),
        ("{store: null, journal_max_rows: 10}", ["journal_max_rows"]),
    ],
)
def test_a_journal_beside_a_store_that_has_none_is_said(lineage: str, keys: list[str]) -> None:
    warnings = [w for w in parse(BASE + f"lineage: {lineage}\n", env={}).warnings if "has a journal" in w]
    assert [w.partition(":")[0] for w in warnings] == [f"lineage.{key}" for key in keys], warnings
    assert all("only a PostgreSQL lineage.store" in w for w in warnings), warnings


def test_a_postgresql_store_s_journal_is_no_warning() -> None:
    pytest.importorskip("psycopg")
    config = parse(BASE + "lineage: {store: 'postgresql://lineage@db/lineage', journal: ./j.db}\n", env={})
    assert not [w for w in config.warnings if "journal" in w], config.warnings


def test_the_shipped_example_says_no_warning() -> None:
    assert load(ROOT / "config" / "example.yaml", env={}).warnings == ()
