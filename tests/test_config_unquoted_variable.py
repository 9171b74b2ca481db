"""An unquoted `${VAR}` inside a YAML flow mapping or list (`{url: ${UPSTREAM}}`, as the tests' own configs are written,
but quoted) is read by YAML before the proxy expands it: its `{` starts a nested mapping, and YAML's error ("expected
',' or '}', but got '{'") left a first user to guess. The problem now says to quote it; other YAML errors are as
they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import parse
from proxy.errors import ConfigError

UNQUOTED = (
    'listen: {http: 127.0.0.1:0}\nupstreams: [{name: u, url: ${UPSTREAM}}]\nroutes: [{model: "*", upstream: u}]\n'
)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(text, source="proxy.yaml", env={"UPSTREAM": "http://127.0.0.1:8000"})
    return raised.value.problems


def test_an_unquoted_variable_in_a_flow_mapping_is_told_to_be_quoted() -> None:
    assert problems(UNQUOTED) == [
        "proxy.yaml:2:29: not valid YAML: expected ',' or '}', but got '{' (a ${VAR} inside {...} or [...] is read by "
        'YAML before it is expanded: quote it, "${VAR}")'
    ]


def test_an_unquoted_variable_in_a_flow_list_is_told_so_too() -> None:
    text = UNQUOTED.replace("${UPSTREAM}", '"${UPSTREAM}"').replace("routes: [", "routes: [${ROUTE}, ")
    assert problems(text)[0].startswith("proxy.yaml:3:11: not valid YAML: expected ',' or ']', but got '{' (a ${VAR}")


def test_quoted_it_loads_and_other_yaml_errors_get_no_such_hint() -> None:
    quoted = UNQUOTED.replace("${UPSTREAM}", '"${UPSTREAM}"')
    assert parse(quoted, env={"UPSTREAM": "http://127.0.0.1:8000"}).upstreams[0].url == "http://127.0.0.1:8000"
    (other,) = problems(UNQUOTED.replace("${UPSTREAM}", "{x"))
    assert "not valid YAML" in other and "${VAR}" not in other


def test_check_prints_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(UNQUOTED)
    assert main(["check", "--config", str(config)]) == 1
    assert 'quote it, "${VAR}")' in capsys.readouterr().err


def test_the_readme_quotes_the_problem_as_check_prints_it() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"`{problems(UNQUOTED)[0]}`" in readme.replace("\n  ", " ")
