"""A refusal of a name the caller sent echoed it whole: a `data_labels` parameter or a JSON key repeated of 1 MB made an
error body of 1 MB (a body may be limits.max_body_bytes, 64 MiB), and an `x-data-labels` or `x-purpose` of 30 KB one of
30 KB. The refusal now names its start and its length (`echoed`), whatever carried it."""

from __future__ import annotations

import httpx
import pytest

from tests.harness import dead_port, proxy_error

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: oip, url: "http://127.0.0.1:PORT", protocol: oip, checkpoint: held@1}
  - {name: chat, url: "http://127.0.0.1:PORT"}
routes:
  - {model: gpt, upstream: chat}
  - {model: "*", upstream: oip}
policy: {anonymous: allow}
telemetry: {exporter: none}
lineage: {store: null}
"""
LONG = "X" * 1_000_000
KEY = "k" * 1_000_000
TENSOR = '{"name": "A", "shape": [1], "datatype": "BYTES", "data": ["hi"]}'
INFER = "/v2/models/m/infer"
CASES = {
    "data_labels": (
        INFER,
        {},
        f'{{"inputs": [{TENSOR}], "parameters": {{"data_labels": "{LONG}"}}}}',
        "parameters.data_labels: invalid label 'XXX",
    ),
    "x-data-labels": (
        INFER,
        {"x-data-labels": LONG[:30_000]},
        f'{{"inputs": [{TENSOR}]}}',
        "x-data-labels: invalid label 'XXX",
    ),
    "x-purpose": (INFER, {"x-purpose": LONG[:30_000]}, f'{{"inputs": [{TENSOR}]}}', "x-purpose: invalid purpose 'XXX"),
    "oip key": (INFER, {}, f'{{"inputs": [{TENSOR}], "{KEY}": 1, "{KEY}": 2}}', "inference request: key 'kkk"),
    "openai key": (
        "/v1/chat/completions",
        {},
        f'{{"model": "gpt", "messages": [], "{KEY}": 1, "{KEY}": 2}}',
        "request body: key 'kkk",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refusal_names_a_long_value_by_its_start_and_length(make_proxy, case: str) -> None:  # type: ignore[no-untyped-def]
    path, headers, body, starts = CASES[case]
    proxy = make_proxy(CONFIG.replace("PORT", str(dead_port())), wait="none")
    reply = httpx.post(f"{proxy.url}{path}", content=body, timeout=30,
                       headers={"content-type": "application/json", **headers})  # fmt: skip
    assert reply.status_code == 400, reply.text[:300]
    message = proxy_error(reply)["message"]
    assert message.startswith(starts), message[:300]
    assert len(reply.content) < 1024, len(reply.content)  # was the value's length and more
    size = 30_000 if case.startswith("x-") else 1_000_000
    assert f"... ({size} characters)" in message, message
