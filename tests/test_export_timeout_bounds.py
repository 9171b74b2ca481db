"""`telemetry.export_timeout_s` is a located problem at 0 and past an hour (`OTEL_EXPORTER_OTLP_TIMEOUT`, in
milliseconds, past an hour is ignored with a warning, as the OpenTelemetry spec has it, and 0 is the hour). `check` passed both, and the proxy lost every span: at 0 ("no timeout" to some SDKs) each export failed
at once (gRPC DEADLINE_EXCEEDED, an HTTP connect on a non-blocking socket), logged as a collector down; at 1e10 s, past
what a thread can wait, each export never came back and the stop failed with OverflowError. A bound that takes is
still served: a real receiver gets the span."""

from __future__ import annotations

import httpx
import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}", export_timeout_s: TIMEOUT}
lineage: {store: null}
"""


@pytest.mark.parametrize("value", ["0", "0.0", "1e10", "3601"])
def test_an_export_timeout_no_export_could_keep_is_a_located_problem(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f"telemetry: {{exporter: otlp, export_timeout_s: {value}}}\n", env={})
    assert [p for p in caught.value.problems if p.startswith("telemetry.export_timeout_s: must be between")], (
        caught.value.problems
    )


@pytest.mark.parametrize("millis", ["-5", "nan", "10000000000000"])
def test_the_otel_timeout_variable_is_held_to_the_same_bounds(millis: str) -> None:
    """Past them it is ignored with a warning, as the OpenTelemetry spec has it (tests/test_otel_env_numbers.py); 0
    is the spec's "indefinite", the hour. Until 2026-12-07 each was a problem."""
    config = parse(BASE + "telemetry: {exporter: otlp}\n", env={"OTEL_EXPORTER_OTLP_TIMEOUT": millis})
    # named as the user set it: the variable, in milliseconds (not a key of the file, in seconds)
    assert config.telemetry.export_timeout_s == 5.0
    assert [w for w in config.warnings if w.startswith(f"OTEL_EXPORTER_OTLP_TIMEOUT: expected whole milliseconds up "
                                                       f"to 3600000 (0: no timeout, taken as 3600000), got {millis!r}")]  # fmt: skip
    zero = parse(BASE + "telemetry: {exporter: otlp}\n", env={"OTEL_EXPORTER_OTLP_TIMEOUT": "0"})
    assert (zero.telemetry.export_timeout_s, zero.warnings) == (3600.0, ())


@pytest.mark.parametrize("value", ["0.001", "3600"])
def test_the_bounds_are_accepted(value: str) -> None:
    assert parse(BASE + f"telemetry: {{exporter: otlp, export_timeout_s: {value}}}\n", env={})


def test_an_hour_exports_spans(vllm, otlp: OtlpReceiver, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG.replace("TIMEOUT", "3600"), UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200
    (span,) = otlp.wait_for(lambda spans: len(spans) >= 1)
    assert span.attributes["gen_ai.request.model"] == SERVED
