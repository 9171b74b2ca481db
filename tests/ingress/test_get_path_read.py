"""A GET's or HEAD's path is data too, while zones are configured: a FastAPI app's `@app.get("/predict/{text}")` runs
its model on a path segment. Before 2026-12-05 `GET /predict/alice@example.com` for a purpose the address's zone
forbids reached the upstream (200). Now its percent-decoded path is scanned as its query is (`test_get_query_read`),
for paths that are not an API's known GET paths (`/v1/…`, `/v2/…`, `/api/…`, probes, listings): a label found makes
it a call carrying data, decided by the policy; none, a call carrying no data as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import ProxyHandle, proxy_error
from tests.ingress.test_unusual_http_held import CONFIG, _raw
from tests.ingress.test_unusual_http_held import upstream as upstream  # (the fixture: any path answered 200)

DENIED = {"x-purpose": "marketing"}


@pytest.fixture
def proxy(make_proxy: Any, upstream: tuple[str, list[bytes]]) -> Iterator[ProxyHandle]:
    yield make_proxy(CONFIG, wait="started", UPSTREAM=upstream[0])


@pytest.mark.parametrize("path", ["/predict/alice@example.com", "/predict/alice%40example.com", "/alice@example.com"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_forbidden_address_in_a_get_path_is_refused(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], method: str, path: str
) -> None:
    refused = httpx.request(method, f"{proxy.url}{path}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # before: 200, forwarded
    assert refused.headers["x-lineage-decision"] == "deny"
    if method == "GET":
        assert proxy_error(refused)["code"] == "purpose_denied"
    assert not [r for r in upstream[1] if b"alice" in r]


def test_a_raw_request_line_and_an_allowed_one(proxy: ProxyHandle, upstream: tuple[str, list[bytes]]) -> None:
    line = b"GET /predict/alice@example.com HTTP/1.1\r\nHost: x\r\nx-purpose: marketing\r\nConnection: close\r\n\r\n"
    assert _raw(proxy.url, line).startswith(b"HTTP/1.1 403 ")
    assert not [r for r in upstream[1] if b"alice" in r]
    allowed = httpx.get(f"{proxy.url}/predict/alice@example.com", timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-lineage-decision"] == "allow"
    assert allowed.headers["x-data-labels"] == "pii:email"


@pytest.mark.parametrize("path", ["/predict/hello", "/health", "/slots/0", "/v1/files/file-abc", "/v1/models"])
def test_a_path_without_a_label_carries_no_data_as_before(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], path: str
) -> None:
    answered = httpx.get(f"{proxy.url}{path}", headers=DENIED, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "x-lineage-decision" not in answered.headers


# an address cut between a name and its value, or between two parameters: an app joining them (or reading the raw
# query) hands the model the address; the query's names and values are scanned each apart, and together
SPLIT = ["alice=@example.com", "q=alice&x=@example.com", "q=alice&x=%40example.com"]


@pytest.mark.parametrize("query", SPLIT)
def test_an_address_split_across_a_query_is_refused(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], query: str
) -> None:
    refused = httpx.get(f"{proxy.url}/predict?{query}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # before: 200, forwarded
    assert proxy_error(refused)["code"] == "purpose_denied"
    line = f"GET /predict?{query} HTTP/1.1\r\nHost: x\r\nx-purpose: marketing\r\nConnection: close\r\n\r\n"
    assert _raw(proxy.url, line.encode()).startswith(b"HTTP/1.1 403 ")
    assert not [r for r in upstream[1] if b"example" in r]


# under an API's prefix but OIP's: a custom app's own GET routes (`@app.get("/api/predict/{text}")`, `/v1/predict/{text}`) and an
# API's known path with a trailing segment that is data (`/v1/models/{id}`): the address reached the upstream (200),
# every path under `/v1/`, `/v2/`, `/api/` and `/slots/` left unscanned; now only an API's exact known GET paths and
# OIP's `/v2/…` (a model's name and version) are
UNDER_A_PREFIX = [
    "/api/predict/alice@example.com",
    "/v1/predict/alice%40example.com",
    "/v1/models/alice@example.com",
    "/slots/alice@example.com",
]


@pytest.mark.parametrize("path", UNDER_A_PREFIX)
def test_a_forbidden_address_in_a_path_under_an_api_prefix_is_refused(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], path: str
) -> None:
    refused = httpx.get(f"{proxy.url}{path}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # before: 200, forwarded
    assert proxy_error(refused)["code"] == "purpose_denied"
    assert not [r for r in upstream[1] if b"alice" in r]


# an API's own ids under its prefixes hold no label: scanned, they still carry no data
KNOWN_IDS = [
    "/v2/models/resnet50/versions/1/ready",
    "/v2/models/m/versions/20240101/stats",
    "/v1/responses/resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b/input_items",
    "/v1/files/file-XjGxS3KTG0uNmNOK362iJua3/content",
    "/v1/models/ft:gpt-4o-mini-2024-07-18:org:custom:9abc123",
    "/api/tags",
]


@pytest.mark.parametrize("path", KNOWN_IDS)
def test_an_api_path_with_its_ids_carries_no_data(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], path: str
) -> None:
    answered = httpx.get(f"{proxy.url}{path}", headers=DENIED, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "x-lineage-decision" not in answered.headers


# (holds before and after: a label its caller declares, an SDK's `default_headers`, is not of an API's own path,
# scanned and found holding none)
@pytest.mark.parametrize(
    "path", ["/v1/models/gpt-4o", "/v2/models/m/versions/1/ready", "/health?", "/v1/files/f-1", "/openai/v1/models/m"]
)
def test_a_declared_label_is_not_of_an_api_path(proxy: ProxyHandle, path: str) -> None:
    answered = httpx.get(f"{proxy.url}{path}", headers={**DENIED, "x-data-labels": "pii:email"}, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "x-lineage-decision" not in answered.headers


# a server's own metadata GET outside those prefixes (llama.cpp's `/models`, the openai SDK's `models.list()` with a
# base_url without `/v1`, and `/lora-adapters`; vLLM's `/server_info`; SGLang's `/get_model_info`) with a label its
# caller declares: after f7b9d53 a call carrying data (403 for this purpose; 404 model_not_found without a `"*"`
# route), though it carries none, as before
@pytest.mark.parametrize("path", ["/models", "/lora-adapters", "/server_info", "/get_model_info"])
def test_a_declared_label_is_not_of_a_server_metadata_path(proxy: ProxyHandle, path: str) -> None:
    answered = httpx.get(f"{proxy.url}{path}", headers={**DENIED, "x-data-labels": "pii:email"}, timeout=30)
    assert answered.status_code == 200, answered.text  # before: 403 purpose_denied
    assert "x-lineage-decision" not in answered.headers


# OIP's paths are a model's name and version, often a timestamp (a TensorFlow export's directory, `1733390000`), which
# the phone detector labels: scanned, a model's readiness was a call carrying data (403 for this purpose)
PHONE = CONFIG.replace("labels: [pii:email]", "labels: [pii:email, pii:phone]").replace(
    "detectors: [email]", "detectors: [email, phone]"
)


@pytest.mark.parametrize("path", ["/v2/models/m/versions/1733390000/ready", "/v2/models/m/versions/1733390000"])
def test_an_oip_version_that_looks_like_a_phone_number_carries_no_data(
    make_proxy: Any, upstream: tuple[str, list[bytes]], path: str
) -> None:
    proxy = make_proxy(PHONE, wait="started", UPSTREAM=upstream[0])
    answered = httpx.get(f"{proxy.url}{path}", headers=DENIED, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "x-lineage-decision" not in answered.headers
    refused = httpx.get(f"{proxy.url}/predict/4155551234", headers=DENIED, timeout=30)  # (the detector reads it so)
    assert refused.status_code == 403, refused.text
