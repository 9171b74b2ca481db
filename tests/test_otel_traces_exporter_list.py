"""`OTEL_TRACES_EXPORTER` is a comma list whose first member the proxy takes, with white space around a member
as the OpenTelemetry SDKs take it (`otlp , console`): its first member was read with the space after it, and the
config refused (`'otlp ' is not supported`)."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


@pytest.mark.parametrize(
    ("value", "exporter"),
    [("otlp", "otlp"), ("otlp,console", "otlp"), ("otlp , console", "otlp"), (" Console\t,otlp", "console"),
     ("none ,otlp", "none")],
)  # fmt: skip
def test_the_first_member_of_the_list_is_the_exporter(value: str, exporter: str) -> None:
    assert parse(BASE, env={"OTEL_TRACES_EXPORTER": value}).telemetry.exporter == exporter


def test_an_unsupported_first_member_is_still_a_problem() -> None:
    with pytest.raises(ConfigError) as error:
        parse(BASE, env={"OTEL_TRACES_EXPORTER": "zipkin , otlp"})
    assert error.value.problems == ["OTEL_TRACES_EXPORTER: 'zipkin' is not supported (otlp, console, none)"]
