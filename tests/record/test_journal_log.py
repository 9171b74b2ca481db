"""The journal's outage message is one log line: libpq's multi-line error text (its hints on lines of their
own) is joined with "; ", so the text log shows no escaped `\\n` in it."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from proxy.logs import TextFormatter
from proxy.record.postgres import one_line
from proxy.record.stores import open_store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_outage_is_logged_on_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="lineage_proxy.edges")
    store = open_store(f"postgresql://lp@127.0.0.1:{free_port()}/lp", journal=str(tmp_path / "journal.db"))
    store.close()
    (failing,) = [record for record in caplog.records if "writes are failing" in record.getMessage()]
    message = failing.getMessage()
    assert "\n" not in message and "Connection refused; Is the server running" in message, message
    assert "\\n" not in TextFormatter().format(failing)


def test_one_line_joins_lines_and_drops_blank_ones() -> None:
    assert one_line("connection failed: refused\n\tIs the server running?\n\n") == (
        "connection failed: refused; Is the server running?"
    )
    assert one_line(ValueError("one")) == "one"


@pytest.mark.parametrize("password", ["12?34zq", "s3#crzq", "a?b#czq"])
def test_the_outage_line_never_shows_a_password_holding_a_question_mark_or_hash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, password: str
) -> None:
    """libpq reads a userinfo up to its `@` before any `/` (`postgresql://lp:12?34@host/lp`: password `12?34`), where
    `urlsplit` ends it at the `?` or `#`: the URL was logged as written (the log line quotes the store's URL)."""
    caplog.set_level(logging.ERROR, logger="lineage_proxy.edges")
    store = open_store(f"postgresql://lp:{password}@127.0.0.1:{free_port()}/lp", journal=str(tmp_path / "journal.db"))
    store.close()
    (failing,) = [record for record in caplog.records if "writes are failing" in record.getMessage()]
    message = failing.getMessage()
    assert "postgresql://lp:***@127.0.0.1:" in message and "zq" not in message, message
