"""A PostgreSQL store URL whose password holds a `%` not written `%25` (`pa%zz1`, as a generated password may):
psycopg's parse error quotes that token alone (`invalid percent-encoded token: "pa%zz1"`), not the URL, so `check`,
`edges --copy-to` and the readers printed the password, though each shows the URL without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import parse
from proxy.errors import ConfigError
from proxy.record.store import EdgeKey, SqliteStore

SECRET = "Hunter2%zzQ"
URLS = [f"postgresql://u:{SECRET}@h/db", f"postgresql://u@h/db?password={SECRET}",
        f"postgresql://u:x@h/db?sslpassword={SECRET}&sslmode=require"]  # fmt: skip
BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


@pytest.mark.parametrize("url", URLS)
def test_check_does_not_show_the_password_its_parse_error_quotes(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f'lineage: {{store: "{url}"}}\n', env={})
    (problem,) = caught.value.problems
    assert problem.startswith("lineage.store: not a valid PostgreSQL URL: invalid percent-encoded token")
    assert "Hunter2" not in problem and "zzQ" not in problem


@pytest.mark.parametrize("url", URLS)
def test_a_reader_does_not_show_the_password_its_parse_error_quotes(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edges", "--store", url]) in (1, 2)
    err = capsys.readouterr().err
    assert "percent-encoded" in err and "Hunter2" not in err and "zzQ" not in err


def test_a_copy_does_not_show_the_password_its_parse_error_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(tmp_path / "lineage.db")
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 0.0, 1.0, 2, None)])
    store.close()
    assert main(["edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", URLS[0]]) == 1
    err = capsys.readouterr().err
    assert "cannot copy into it" in err and "Hunter2" not in err and "zzQ" not in err
