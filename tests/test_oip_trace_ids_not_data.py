"""The trace context other tracers write on an OIP call (Datadog's decimal ids, Google's load balancer's
`X-Cloud-Trace-Context`, Envoy's and nginx's `X-Request-Id`, B3, Jaeger, AWS's `X-Amzn-Trace-Id`) is random numbers,
on every call. Since the call's header fields are read as its text, such an id was read as data: one Datadog id in ten,
and one Google trace context in ten, passes the card check, and one UUID in about 550 reads as a phone number, so a zone
over those labels refused such calls at random. A value of its field's own form is an id, not read; any other value
(an address written there) is read as before."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness import ProxyHandle, proxy_error
from tests.test_oip_header_fields_reach_model import BODY, echo_mlserver

__all__ = ["echo_mlserver"]  # (the fixture, shared)

CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow, default_purpose: analytics}
zones:
  - {name: payment, labels: ["pii:credit_card", "pii:phone", "pii:email"], allow_purposes: [billing]}
detectors: [credit_card, phone, email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
# ids as their tracers write them, each one the detectors read as a card number or a phone number
TRACE_IDS = {
    "x-datadog-trace-id": "5082513832886728665",
    "x-datadog-parent-id": "5082513832886728665",
    "x-request-id": "973f7986-26b1-4ffc-870d-710920859634",
    "x-cloud-trace-context": "a7e6529bce76e9f477216e9ee7a46309/5640768390859304441;o=1",
}


@pytest.mark.realserver
@pytest.mark.parametrize("field", sorted(TRACE_IDS))
def test_a_trace_id_is_not_read_as_data(
    field: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(CONFIG, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    url = f"{proxy.url}/v2/models/echo/infer"
    reply = httpx.post(url, content=json.dumps(BODY), headers={field: TRACE_IDS[field]}, timeout=60)
    assert reply.status_code == 200, proxy_error(reply)
    # another value in the same field is read, as any field MLServer hands its model is
    refused = httpx.post(url, content=json.dumps(BODY), headers={field: "alice@example.com"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    card = httpx.post(url, content=json.dumps(BODY), headers={field: "card 4111 1111 1111 1111"}, timeout=60)
    assert card.status_code == 403, card.text


def _ids() -> st.SearchStrategy[tuple[str, str]]:
    decimal = st.integers(0, 2**64 - 1).map(str)
    hex16 = st.integers(0, 2**64 - 1).map(lambda n: f"{n:016x}")
    hex32 = st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}")
    uuids = st.integers(0, 2**128 - 1).map(lambda n: str(uuid.UUID(int=n, version=4)))
    return st.one_of(
        st.tuples(st.sampled_from(["x-datadog-trace-id", "x-datadog-parent-id"]), decimal),
        st.tuples(st.just("x-request-id"), st.one_of(uuids, hex32)),
        st.tuples(st.just("x-cloud-trace-context"), st.builds(lambda t, s: f"{t}/{s};o=1", hex32, decimal)),
        st.tuples(st.just("x-cloud-trace-context"), st.builds(lambda t, s: f"{t}/{s}", hex32, decimal)),
        st.tuples(st.sampled_from(["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid"]), hex16),
        st.tuples(st.just("b3"), st.builds(lambda t, s: f"{t}-{s}-1", hex32, hex16)),
        st.tuples(st.just("uber-trace-id"), st.builds(lambda t, s: f"{t}:{s}:0:1", hex32, hex16)),
        st.tuples(st.just("sentry-trace"), st.builds(lambda t, s: f"{t}-{s}-1", hex32, hex16)),
        st.tuples(
            st.just("x-amzn-trace-id"),
            st.builds(
                lambda e, t, p: f"Root=1-{e:08x}-{t[:24]};Parent={p};Sampled=1", st.integers(0, 2**32 - 1), hex32, hex16
            ),
        ),
    )


@settings(max_examples=300, deadline=None)
@given(_ids())
def test_a_trace_id_of_its_fields_form_is_not_read(field_value: tuple[str, str]) -> None:
    from proxy.ingress.http import _oip_header_text
    from proxy.protocols.oip import header_text

    field, value = field_value
    assert header_text([(field, value)]) is None
    assert _oip_header_text([(field.encode(), value.encode())]) is None


def test_a_value_not_of_the_form_is_read() -> None:
    from proxy.ingress.http import _oip_header_text
    from proxy.protocols.oip import header_text

    for field in ("x-datadog-trace-id", "x-request-id", "x-cloud-trace-context", "b3", "x-amzn-trace-id"):
        for value in ("alice@example.com", "4111 1111 1111 1111", "+1 415 555 2671", f"{random.getrandbits(60)} x"):
            assert header_text([(field, value)]) == f"{field}: {value}"
            assert _oip_header_text([(field.encode(), value.encode())]) == f"{field}: {value}"


@pytest.mark.realserver
def test_a_trace_id_in_grpc_metadata_is_not_read(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    proxy = make_proxy(CONFIG, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    client = grpcclient.InferenceServerClient(proxy.grpc)
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    reply = client.infer("echo", [features], headers={"x-datadog-trace-id": TRACE_IDS["x-datadog-trace-id"]})
    assert json.loads(reply.as_numpy("headers")[0])["x-datadog-trace-id"] == TRACE_IDS["x-datadog-trace-id"]
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features], headers={"x-datadog-trace-id": "alice@example.com"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
