"""YAML aliases in the config and the baseline: a few hundred bytes of nested aliases, or an alias inside
the node it names, are refused at the alias with its location, not walked for minutes or into a
RecursionError; merge keys, what aliases are for in a config, still load."""

from __future__ import annotations

import pytest

from proxy.baseline import BaselineError, parse_baseline
from proxy.config import parse
from proxy.errors import ConfigError

BASE = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: llama, url: "http://127.0.0.1:8000"}
routes:
  - {model: "*", upstream: llama}
"""


def laughs(levels: int) -> str:
    """A flow sequence of `levels` nested anchors, each level ten uses of the one below: 10**levels scalars."""
    value = "&a0 [x, x, x, x, x, x, x, x, x, x]"
    for level in range(1, levels):
        value = f"&a{level} [{value}, " + ", ".join([f"*a{level - 1}"] * 9) + "]"
    return value


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    return caught.value.problems


def test_nested_aliases_are_refused_at_the_alias() -> None:
    # 10**7 scalars from 560 bytes: read as written, the problem quoting the value alone is 50 MB
    found = problems(BASE + f"limits:\n  max_body_bytes: {laughs(7)}\n")
    assert len(found) == 1 and found[0].startswith("<memory>:8:"), found[0][:300]
    assert "aliases expand to more than" in found[0]


def test_alias_inside_its_own_node_is_refused() -> None:
    text = BASE + 'lineage:\n  store: null\n  openlineage:\n    transport: &t {type: http, url: "http://x", auth: *t}\n'
    found = problems(text)
    assert found == ["<memory>:10:55: not valid YAML: alias *t is inside the node it names: that value would never end"]


def test_baseline_alias_inside_its_own_node_is_refused() -> None:
    with pytest.raises(BaselineError) as caught:
        parse_baseline("flows: &f\n  - *f\n")
    assert caught.value.problems == [
        "<memory>:2:5: not valid YAML: alias *f is inside the node it names: that value would never end"
    ]


def test_merge_keys_and_repeated_aliases_still_load() -> None:
    first = f"  - &first {{name: first, api_key_sha256: '{'a' * 64}', purposes: &p [assistant, support], labels: [ui]}}"
    more = [f"  - {{<<: *first, name: app{index}, api_key_sha256: '{index:064x}'}}" for index in range(500)]
    zones = "zones:\n  - {name: eu, labels: [ui], allow_purposes: *p}"
    config = parse("\n".join([BASE, "callers:", first, *more, zones]), env={})
    assert len(config.callers) == 501 and config.callers[-1].purposes == frozenset({"assistant", "support"})
    assert config.zones[0].allow_purposes == frozenset({"assistant", "support"})
