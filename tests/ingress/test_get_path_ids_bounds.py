"""Where a GET's path is read with ids (helper revgetquery, 2026-12-05): a segment of letters and digits joined by `-`
with a run of nine digits or more is read with `_` for its dashes (no phone), but only under `/v1/`, where segments are
an API's resources' ids (`/v1/models/m-1733390000`). Elsewhere a segment is what a custom app hands its model
(`@app.get("/predict/{text}")`): `/predict/tel-4155551234` was read as an id and forwarded for a purpose the phone's
zone forbids; now refused, as the same text in a body is. And a labelled call's input digest is that of the path as
sent (`m-1733390000`), not as scanned (`m_1733390000`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy.protocols import passthrough, text_digest
from tests.harness import ProxyHandle, proxy_error
from tests.ingress.test_get_path_read import PHONE
from tests.ingress.test_unusual_http_held import upstream as upstream  # (the fixture: any path answered 200)
from tests.servers.otlp_receiver import OtlpReceiver

DENIED = {"x-purpose": "marketing"}


@pytest.fixture
def phones(make_proxy: Any, upstream: tuple[str, list[bytes]], otlp: OtlpReceiver) -> Iterator[ProxyHandle]:
    spans = f"telemetry: {{exporter: otlp, endpoint: 'http://127.0.0.1:{otlp.port}'}}\n"
    yield make_proxy(PHONE + spans, wait="started", UPSTREAM=upstream[0])


# a phone glued by `-` to a word in a custom app's route: what the app hands its model. Before: 200, forwarded
GLUED = [
    "/predict/tel-4155551234",
    "/predict/call-4155551234",
    "/predict/call%2D4155551234",  # (the app reads the path percent-decoded: the same dash)
    "/predict/call-me-4155551234",
    "/predict/tel-14155551234",
    "/users/bob-4155551234",
    "/api/predict/tel-4155551234",  # (a custom app's route under `/api/`, as README's `/api/predict/{text}`)
    "/api/m-1733390000/x",
    "/slots/1733390000-x",
]
# (hold before and after) a phone not glued by an ASCII dash alone: a `+`, Unicode dashes, a phone written as one
APART = ["/users/bob-555-123-4567", "/v1/x/+1-4155551234", "/predict/call\u20104155551234", "/v1/x/tel\u20134155551234"]


@pytest.mark.parametrize("path", GLUED + APART)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_phone_glued_to_a_word_in_a_custom_route_is_refused(
    phones: ProxyHandle, upstream: tuple[str, list[bytes]], method: str, path: str
) -> None:
    refused = httpx.request(method, f"{phones.url}{path}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # GLUED before: 200, read as an id and forwarded
    assert refused.headers["x-lineage-decision"] == "deny"
    if method == "GET":
        assert proxy_error(refused)["code"] == "purpose_denied"
    assert not [r for r in upstream[1] if b"4155551234" in r or b"1733390000" in r]


# (hold before and after) an API's resource's id under `/v1/`: no phone
@pytest.mark.parametrize("path", ["/v1/models/m-1733390000", "/v1/files/file-4155551234/content"])
def test_an_id_under_v1_is_still_no_phone(phones: ProxyHandle, path: str) -> None:
    answered = httpx.get(f"{phones.url}{path}", headers=DENIED, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "x-lineage-decision" not in answered.headers


@pytest.mark.parametrize("path", ["/v1/models/m-1733390000", "/v1/models/m%2D1733390000"])
def test_a_labelled_calls_digest_is_of_the_path_as_sent(phones: ProxyHandle, otlp: OtlpReceiver, path: str) -> None:
    target = f"{path}?q=alice@example.com"
    allowed = httpx.get(f"{phones.url}{target}", timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-data-labels"] == "pii:email"
    (span,) = otlp.wait_for(lambda spans: len(spans) == 1)
    sent = text_digest(["/v1/models/m-1733390000", *passthrough.query_texts(target)])
    # before: the digest of `/v1/models/m_1733390000`, the path as scanned
    assert span.attributes["lineage.input.digest"] == sent
