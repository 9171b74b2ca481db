"""A GET's or HEAD's query is its request, while zones are configured: custom model apps run a model on a GET (a Ray
Serve, BentoML or FastAPI app's `@app.get("/predict")` reading its query parameters, an MLServer custom runtime's GET
handler), so its query's names and values are read as such a server reads them (percent-decoded, `+` a space, a key
as often as it is repeated) by the detectors. Before 2026-12-05 a GET was taken to carry no data:
`GET /v1/chat/completions?messages=alice@example.com` reached the upstream for a purpose the address's zone forbids.
Now refused 403 `purpose_denied` with its record; allowed, forwarded as it came, recorded with its labels as a call
carrying data. A GET without a query carries no data, as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.protocols import text_digest
from tests.harness import LoopThread, ProxyHandle, proxy_error
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.ingress.test_unusual_http_held import CONFIG, _calls_recorded, _raw
from tests.ingress.test_unusual_http_held import upstream as upstream  # (the fixture)
from tests.servers.otlp_receiver import OtlpReceiver

DENIED = {"x-purpose": "marketing"}
# the address as a query writes it: plain, percent-escaped, a `+` for a space, a name, a key repeated
QUERIES = [
    "messages=alice@example.com",
    "q=write+to+alice%40example.com",
    "alice%40example.com=1",
    "x=1&x=alice@example.com",
    "prompt=alice%2540example.com",  # escaped twice: a redirect's `next=` holding a URL's query
]


@pytest.fixture
def proxy(make_proxy: Any, upstream: tuple[str, list[bytes]], otlp: OtlpReceiver) -> Iterator[ProxyHandle]:
    spans = f"telemetry: {{exporter: otlp, endpoint: 'http://127.0.0.1:{otlp.port}'}}\n"
    yield make_proxy(CONFIG + spans, wait="started", UPSTREAM=upstream[0])


def _reached(upstream: tuple[str, list[bytes]], path: str) -> list[bytes]:
    return [r.split(b"\r\n", 1)[0] for r in upstream[1] if r.split(b" ", 2)[1].startswith(path.encode())]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_forbidden_address_in_a_query_is_refused_403_with_its_record(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], otlp: OtlpReceiver, method: str, query: str
) -> None:
    refused = httpx.request(method, f"{proxy.url}/v1/chat/completions?{query}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # before: 200, forwarded
    assert refused.headers["x-lineage-decision"] == "deny"
    if method == "GET":
        assert proxy_error(refused)["code"] == "purpose_denied"
    assert _reached(upstream, "/v1/chat/completions") == []
    (span,) = otlp.wait_for(lambda spans: len(spans) == 1)
    assert span.attributes["lineage.decision"] == "deny"
    assert span.attributes["lineage.input.labels"] == ["pii:email"]
    assert _calls_recorded(proxy.url) == 1


def test_any_path_and_a_raw_request_line(proxy: ProxyHandle, upstream: tuple[str, list[bytes]]) -> None:
    """A custom app's path (`/predict`), an OIP model's (`/v2/models/m`, KServe V1's `/v1/models/m`), as a raw
    request line writes them."""
    for path in ("/predict", "/v2/models/m", "/v1/models/m", "/"):
        line = b"GET %s?text=alice@example.com HTTP/1.1\r\nHost: x\r\nx-purpose: marketing\r\n" % path.encode()
        reply = _raw(proxy.url, line + b"Connection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403 "), (path, reply[:300])
    assert not [r for r in upstream[1] if b"alice" in r]


def test_allowed_it_is_forwarded_and_recorded_as_a_call_carrying_data(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], loop_thread: LoopThread, otlp: OtlpReceiver,
    tmp_path: Path,
) -> None:  # fmt: skip
    allowed = httpx.get(f"{proxy.url}/predict?q=write+to+alice%40example.com&n=1", timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-lineage-decision"] == "allow"  # before: none, a call carrying no data
    assert allowed.headers["x-data-labels"] == "pii:email"
    assert _reached(upstream, "/predict") == [b"GET /predict?q=write+to+alice%40example.com&n=1"]  # as it came
    (span,) = otlp.wait_for(lambda spans: len(spans) == 1)
    assert span.attributes["lineage.input.labels"] == ["pii:email"]
    assert span.attributes["lineage.input.digest"] == text_digest(
        # its path, names and values, then the query whole and its names and values joined (what is cut between them)
        ["/predict", "q", "write to alice@example.com", "n", "1", "q=write to alice@example.com&n=1",
         "qwrite to alice@example.comn1"]
    )  # fmt: skip
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")["pii:email"] == ["pii:email"]


def test_a_get_without_a_query_carries_no_data_as_before(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], loop_thread: LoopThread, tmp_path: Path
) -> None:
    for path in ("/predict", "/predict?"):
        answered = httpx.get(f"{proxy.url}{path}", headers=DENIED, timeout=30)
        assert answered.status_code == 200, answered.text
        assert "x-lineage-decision" not in answered.headers
    assert len(_reached(upstream, "/predict")) == 2
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db") == {}  # no lineage edge


NO_ZONES = CONFIG.replace("zones:\n  - name: personal\n    labels: [pii:email]\n    allow_purposes: [assistant]\n", "")


def test_without_zones_a_query_is_not_read(make_proxy: Any, upstream: tuple[str, list[bytes]]) -> None:
    """No zone can refuse it: a GET stays a call that carries no data, forwarded as before."""
    assert NO_ZONES != CONFIG
    proxy = make_proxy(NO_ZONES, wait="started", UPSTREAM=upstream[0])
    answered = httpx.get(f"{proxy.url}/predict?text=alice@example.com", headers=DENIED, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "x-lineage-decision" not in answered.headers


@pytest.mark.parametrize("passthrough", ["forward", "refuse"])
def test_policy_passthrough_changes_nothing(
    make_proxy: Any, upstream: tuple[str, list[bytes]], passthrough: str
) -> None:
    """A query is read, not data the proxy does not read: `forward` does not let a forbidden one through, `refuse`
    does not refuse an allowed one."""
    config = CONFIG.replace("policy:\n", f"policy:\n  passthrough: {passthrough}\n")
    proxy = make_proxy(config, wait="started", UPSTREAM=upstream[0])
    refused = httpx.get(f"{proxy.url}/predict?text=alice@example.com", headers=DENIED, timeout=30)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.get(f"{proxy.url}/predict?text=alice@example.com", timeout=30)
    assert allowed.status_code == 200 and allowed.headers["x-lineage-decision"] == "allow", allowed.text


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_without_zones_any_get_or_head_has_x_trace_id_alone(
    make_proxy: Any, upstream: tuple[str, list[bytes]], method: str
) -> None:
    """README, "Request and response headers": a call carrying no data, any GET or HEAD while no zone is configured
    (a labelled query and path included), has `x-trace-id` alone of the proxy's headers."""
    proxy = make_proxy(NO_ZONES, wait="started", UPSTREAM=upstream[0])
    answered = httpx.request(method, f"{proxy.url}/predict/alice@example.com?text=alice@example.com", timeout=30)
    assert answered.status_code == 200, answered.text
    ours = {name for name in answered.headers if name.startswith(("x-lineage-", "x-data-labels", "x-trace-id"))}
    assert ours == {"x-trace-id"}
