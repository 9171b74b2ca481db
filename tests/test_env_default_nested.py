"""`${VAR:-default}` whose default holds another `${...}`: only one level is expanded, and the first `}`
ends the default, so `${KEY:-${FALLBACK}}` used to load as `sk-1}` (KEY set) or the text `${FALLBACK}`
(KEY unset), an upstream's key or region silently wrong. It is a problem at its path instead."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: llama, url: "http://127.0.0.1:8000", api_key: "${KEY:-${FALLBACK_KEY}}", region: eu}
routes:
  - {model: "*", upstream: llama}
lineage: {store: null}
"""


@pytest.mark.parametrize("env", [{"KEY": "sk-1", "FALLBACK_KEY": "sk-2"}, {"FALLBACK_KEY": "sk-2"}, {}])
def test_a_default_holding_a_variable_is_a_problem(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(CONFIG, env=env)
    assert caught.value.problems == [
        "upstreams[0].api_key: the default of ${KEY:-...} holds a ${...}: defaults are not expanded "
        "(give the value itself)"
    ]


def test_values_holding_dollars_are_taken_as_written() -> None:
    """An environment value is never expanded again, and a `$` without `{NAME}` stays as it is."""
    text = CONFIG.replace("${KEY:-${FALLBACK_KEY}}", "a$b-${KEY}-$${KEY:-x}")
    config = parse(text, env={"KEY": "${FALLBACK_KEY}", "FALLBACK_KEY": "sk-2"})
    assert config.upstreams[0].api_key == "a$b-${FALLBACK_KEY}-$${FALLBACK_KEY}"
