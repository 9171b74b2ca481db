"""A value of the wrong kind is said with the kind it is, as a wrong number is with the value (`expected a number,
got 'ten'`). Found by a first user's afternoon (helper huntuser): `region: [eu]` (a zone's `regions` is a list, an
upstream's `region` one name) was `upstreams[0].region: expected a non-empty string`, which reads as if the key were
empty; `listen: 127.0.0.1:8080` was `listen: expected a mapping`. The kind alone, never the text: a problem is logged
at a reload, and a URL with its password written where a mapping goes must not be."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

UPSTREAM = "upstreams: [{name: u, url: 'http://h:1'REGION}]\n"
ROUTES = "routes: [{model: '*', upstream: u}]\n"
LISTEN = "listen: {http: '127.0.0.1:0'}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("region", "said"),
    [
        ("[eu]", "a list"),
        ("{eu: 1}", "a mapping"),
        ("true", "true"),
        ("''", "''"),
    ],
)
def test_a_string_of_the_wrong_kind(region: str, said: str) -> None:
    text = LISTEN + UPSTREAM.replace("REGION", f", region: {region}") + ROUTES
    assert problems(text) == [f"upstreams[0].region: expected a non-empty string, got {said}"]


def test_a_mapping_or_a_list_of_the_wrong_kind_never_echoes_the_text() -> None:
    text = "listen: postgresql://lineage:s3cret@db/lineage\n" + UPSTREAM.replace("REGION", "") + ROUTES
    assert problems(text) == ["listen: expected a mapping, got a string"]
    text = LISTEN + UPSTREAM.replace("REGION", "") + ROUTES + "callers: 12\n"
    assert problems(text) == ["callers: expected a list, got a number"]
