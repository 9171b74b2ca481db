"""A PostgreSQL store URL that cannot be read: the commands say so in a line, without the password. psycopg's
parse error quotes the URL whole (`... in URI: "postgresql://u:secret@[::1"`), so `check`, `edges --copy-to` and
the readers printed the password; `urlsplit` raised on the same URL where the readers show it (a traceback). A
port that is no port passed `check`: the proxy started, and its writes failed at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import parse
from proxy.errors import ConfigError
from proxy.record.store import EdgeKey, SqliteStore

UNCLOSED = "postgresql://u:hunter2@[::1"
BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


@pytest.mark.parametrize("command", [["edges"], ["verify", "--integrity"], ["report", "--out", "r.html"]])
def test_a_reader_given_a_url_it_cannot_parse_says_so_without_the_password(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--out" in command:
        command = [*command[:-1], str(tmp_path / "r.html")]
    assert main([*command, "--store", UNCLOSED]) in (1, 2)
    err = capsys.readouterr().err
    assert "cannot open it as a lineage store" in err and "IPv6" in err
    assert "hunter2" not in err and "Traceback" not in err


def test_a_copy_into_a_url_it_cannot_parse_says_so_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(tmp_path / "lineage.db")
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 0.0, 1.0, 2, None)])
    store.close()
    assert main(["edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", UNCLOSED]) == 1
    err = capsys.readouterr().err
    assert "cannot copy into it" in err and "hunter2" not in err


def test_check_shows_a_url_it_cannot_parse_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f'lineage: {{store: "{UNCLOSED}"}}\n', env={})
    (problem,) = caught.value.problems
    assert problem.startswith("lineage.store: not a valid PostgreSQL URL") and "hunter2" not in problem


@pytest.mark.parametrize("url", ["postgresql://u@h:abc/db", "postgresql://u@h1:5432,h2:99999/db",
                                 "postgresql://u@h/db?port=0"])  # fmt: skip
def test_a_port_that_is_no_port_is_a_located_problem(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f'lineage: {{store: "{url}"}}\n', env={})
    assert any("is not a port" in problem for problem in caught.value.problems)


def test_ports_libpq_reads_pass() -> None:
    for url in ("postgresql://u@h1:5432,h2:5433/db", "postgresql://u@h1,h2:5433/db", "postgresql://u@h/db"):
        assert parse(BASE + f'lineage: {{store: "{url}"}}\n', env={}).lineage.store == url
