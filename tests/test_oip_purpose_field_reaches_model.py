"""MLServer hands its model every header field of an inference request (`parameters.headers`), the caller's
`x-purpose` too, which the proxy forwards as it came (a proxy chained behind it decides on it). The proxy read it as
the purpose only, never as text: without `policy.known_purposes` a purpose is any word of the label grammar, digits
too, so `x-purpose: 4111111111111111` took a card number to the real MLServer's model, for that "purpose", past a zone
that keeps cards to `assistant`. The field is now read with the request's other header fields (`oip.header_text`)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.protocols.oip import header_text
from tests.harness import ProxyHandle, proxy_error
from tests.test_oip_header_fields_reach_model import BODY, echo_mlserver, echoed_headers

__all__ = ["echo_mlserver"]  # the real MLServer fixture (its model answers with the headers it was handed)

CARD = "4111111111111111"
CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow, default_purpose: assistant}
zones:
  - {name: payment, labels: ["pii:credit_card"], allow_purposes: [assistant]}
detectors: [credit_card]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_a_card_number_sent_as_the_purpose_is_refused_before_the_real_mlserver(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=BODY, headers={"x-purpose": CARD}, timeout=60)
    assert echoed_headers(direct)["x-purpose"] == CARD  # the real MLServer's model is handed it
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=BODY, headers={"x-purpose": CARD}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    plain = httpx.post(url, json=BODY, headers={"x-purpose": "assistant"}, timeout=60)
    assert plain.status_code == 200 and echoed_headers(plain)["x-purpose"] == "assistant", plain.text
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as denied:
        client.infer("echo", [features], headers={"x-purpose": CARD})
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED", denied.value
    assert json.loads(client.infer("echo", [features], headers={"x-purpose": "assistant"}).as_numpy("headers")[0])


def test_the_purpose_and_labels_fields_are_read() -> None:
    """(`x-data-labels` so too, since: `test_oip_cookie_and_labels_fields_read`.)"""
    assert header_text([("x-purpose", CARD), ("x-data-labels", "public"), ("Host", "h")]) == (
        f"x-purpose: {CARD}\nx-data-labels: public"
    )
