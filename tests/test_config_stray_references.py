"""A `${...}` the config does not expand is a problem at its path, not text taken as the value.

The loader expands `${NAME}` and `${NAME:-default}` only; the forms a shell and Docker Compose also read
(`${NAME-default}`, `${NAME:?message}`, `${NAME:=default}`) matched nothing and were loaded as their own text:
`checkpoint: ${CHECKPOINT-meta-llama/Llama-3.1-8B}` pinned a checkpoint named so, recorded on every call (a false
record), `api_key: ${LLAMA_KEY-sk-1}` was sent as that text, `lineage.store: ${STORE-lineage.db}` wrote the record
to a file of that name, and `check` said ok."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

BASE = 'listen: {http: "127.0.0.1:0"}\nroutes: [{model: "*", upstream: u}]\n'


UPSTREAM = 'upstreams: [{name: u, url: "http://h:1"%s}]\n'


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("upstreams[0].checkpoint", UPSTREAM % ', checkpoint: "${CHECKPOINT-meta-llama/Llama-3.1-8B}"'),
        ("upstreams[0].api_key", UPSTREAM % ', api_key: "${LLAMA_KEY:?set LLAMA_KEY}"'),
        ("upstreams[0].region", UPSTREAM % ', region: "${REGION:=eu}"'),
        ("lineage.store", UPSTREAM % "" + 'lineage: {store: "./${STORE-lineage.db}"}\n'),
    ],
)
def test_a_reference_of_another_form_is_a_located_problem(key: str, text: str) -> None:
    env = {"CHECKPOINT": "org/model@1", "LLAMA_KEY": "sk-1", "REGION": "us", "STORE": "x.db"}
    for environment in (env, {}):
        with pytest.raises(ConfigError) as caught:
            parse(BASE + text, env=environment)
        assert any(problem.startswith(f"{key}: ") for problem in caught.value.problems), caught.value.problems


def test_the_forms_it_expands_and_other_text_are_unchanged() -> None:
    text = BASE + 'upstreams: [{name: u, url: "http://h:1", checkpoint: "${C}@${V:-1}", api_key: "a$b-$${K}"}]\n'
    text += "detectors: [{name: template, pattern: '\\${[a-z_]+}'}]\n"  # a `${` that is no variable's: text
    config = parse(text, env={"C": "org/m", "K": "k"})
    assert (config.upstreams[0].checkpoint, config.upstreams[0].api_key) == ("org/m@1", "a$b-$k")
    assert config.detectors[0].pattern == "\\${[a-z_]+}"
