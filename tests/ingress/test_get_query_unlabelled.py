"""A GET's or HEAD's query in which the detectors find no label, and for which the caller declares none, is not data
a zone can refuse: the call goes on as a call carrying no data (only the caller's key is checked), as before
2026-12-05. 63f64f3 made any GET with a query a data call while zones are configured, so a monitoring scrape or probe
with a query and no `x-purpose` (Triton's `/v2/health/ready?x=1`, llama.cpp's
`/slots?fail_on_no_slot=1`) was refused 403 `purpose_required`, one naming no model without a `"*"` route 404
`model_not_found` where it reached the first OIP upstream, and the openai SDK's `files.list(purpose=…)`,
`batches.list(after=…, limit=…)` and `responses.retrieve(…, include=[…])` 403 `purpose_required` likewise. A labelled query is still
decided as any call's data (`test_get_query_read`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.harness import EMAIL_ZONE, ProxyHandle, proxy_error
from tests.ingress.test_unusual_http_held import upstream as upstream  # (the fixture: any path answered 200)

# no `"*"` route, no default purpose: a data call naming no model is 404, one with no purpose 403 `purpose_required`
CONFIG = (
    """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: oip
    url: ${UPSTREAM}
    protocol: oip
    checkpoint: base@1
  - name: llm
    url: ${UPSTREAM}
    checkpoint: base@1
routes:
  - model: m
    upstream: oip
  - model: gpt
    upstream: llm
policy:
  anonymous: allow
"""
    + EMAIL_ZONE
)
# an OIP server's, naming no model: the first OIP upstream's without a `"*"` route (`_serving_upstream`), or a model's
OIP_PROBES = [
    "/v2/health/ready?x=1",
    "/v2/health/live?verbose",
    "/v2/models/m/stats?a=1",
    "/v2/models/m/ready?x=1",
    "/v2/models/m?%zz=%ff%fe",
]
# other servers': the `"*"` route's
PROBES = [
    "/slots?fail_on_no_slot=1",
    "/props?x=1;y=2",
    "/health?" + "a=1&" * 1500,
]
STAR = CONFIG.replace("routes:\n", 'routes:\n  - model: "*"\n    upstream: llm\n')


@pytest.fixture
def proxy(make_proxy: Any, upstream: tuple[str, list[bytes]]) -> Iterator[ProxyHandle]:
    yield make_proxy(CONFIG, wait="started", UPSTREAM=upstream[0])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("target", OIP_PROBES + PROBES)
def test_a_probe_or_scrape_with_a_query_and_no_purpose_is_forwarded_as_before(
    make_proxy: Any, upstream: tuple[str, list[bytes]], method: str, target: str
) -> None:
    proxy = make_proxy(CONFIG if target in OIP_PROBES else STAR, wait="started", UPSTREAM=upstream[0])
    answered = httpx.request(method, f"{proxy.url}{target}", timeout=30)
    assert answered.status_code == 200, answered.text  # 63f64f3: 403 purpose_required, or 404 model_not_found
    assert "x-lineage-decision" not in answered.headers  # a call carrying no data
    assert [r for r in upstream[1] if r.startswith(f"{method} {target}\r\n".encode())]


def test_the_openai_sdk_gets_with_queries_reach_the_upstream(
    make_proxy: Any, upstream: tuple[str, list[bytes]]
) -> None:
    """`files.list(purpose=…)`, `batches.list(after=…, limit=…)`, `responses.retrieve(…, include=[…])`, with no
    purpose given: forwarded by the `"*"` route as before 63f64f3 (each 403 `purpose_required` there)."""
    proxy = make_proxy(STAR, wait="started", UPSTREAM=upstream[0])
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    client.files.with_raw_response.list(purpose="fine-tune")
    client.batches.with_raw_response.list(after="batch_1", limit=2)
    client.responses.with_raw_response.retrieve("resp_1", include=["message.input_image.image_url"])
    paths = [r.split(b"\r\n", 1)[0].split(b" ", 1)[1] for r in upstream[1]]
    assert b"/v1/files?purpose=fine-tune" in paths
    assert b"/v1/batches?after=batch_1&limit=2" in paths
    assert any(p.startswith(b"/v1/responses/resp_1?include") for p in paths)


def test_a_labelled_query_is_still_decided_as_data(proxy: ProxyHandle, upstream: tuple[str, list[bytes]]) -> None:
    """Found by the detectors, or declared by the caller (`x-data-labels`): a data call, decided by the policy."""
    found = httpx.get(f"{proxy.url}/v2/models/m?text=alice@example.com", headers={"x-purpose": "ads"}, timeout=30)
    assert found.status_code == 403 and proxy_error(found)["code"] == "purpose_denied", found.text
    declared = httpx.get(
        f"{proxy.url}/v2/models/m?text=a+b", headers={"x-purpose": "ads", "x-data-labels": "pii:email"}, timeout=30
    )
    assert declared.status_code == 403 and proxy_error(declared)["code"] == "purpose_denied", declared.text
    unlabelled = httpx.get(f"{proxy.url}/v2/models/m?text=a+b", headers={"x-purpose": "ads"}, timeout=30)
    assert unlabelled.status_code == 200 and "x-lineage-decision" not in unlabelled.headers, unlabelled.text
    assert not [r for r in upstream[1] if b"alice" in r]
