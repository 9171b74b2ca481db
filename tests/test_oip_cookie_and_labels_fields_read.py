"""MLServer hands its model every header field of a request (`parameters.headers`), and KServe's model server every one
of a V1 call (`predict(payload, headers)`). Three fields the proxy forwards as they came were not read: a `Cookie` and an
`x-api-key` (taken for the caller's credentials, which on an OIP or KServe path they never are to the proxy), and the
caller's `x-data-labels` (a label is any word of the label grammar: `4111111111111111` too). So
`Cookie: note=alice@example.com` reached the real MLServer's and KServe's model for a purpose the zone of that address
forbids, and so did a card's number sent as a label. They are read now, as any field is; a cookie whose value is a UUID
(a session id) is an id, not read, as the trace ids are (`oip._cookies`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.harness import ProxyHandle, proxy_error
from tests.servers.real import kserve_model_server
from tests.test_oip_header_fields_reach_model import ADDRESS, BODY, echo_mlserver, echoed_headers

__all__ = ["echo_mlserver"]  # (the fixture, shared)

CARD = "4111111111111111"
CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}
  - {name: kserve, url: "${KSERVE}", protocol: kserve}
routes:
  - {model: echo, upstream: mlserver}
  - {model: kecho, upstream: kserve}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email", "pii:credit_card", "pii:phone"], allow_purposes: [care]}
detectors: [email, credit_card, phone]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
# what each field holds that the zone forbids for `ads`, as a client sends it
FIELDS = {
    "cookie": f"session=0f3a9c; note={ADDRESS}",
    "x-api-key": ADDRESS,
    "x-data-labels": f"public,{CARD}",
}
# a KServe model that answers with every header field KServe's model server handed it
KSERVE_ECHO = """
import sys
import kserve


class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": [dict(headers or {})]}


if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Echo("kecho")])
"""
# a session id that the phone detector reads as a number, read as text (one UUID in about 570 is)
PHONE_LIKE_UUID = "81ee476c-8839-4110-9727-d740fad13805"


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with kserve_model_server(tmp_path_factory.mktemp("kserve-echo-all"), KSERVE_ECHO, "kecho") as url:
        yield url


@pytest.fixture
def proxy(echo_mlserver: tuple[str, str], kserve_echo: str, make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(CONFIG, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1], KSERVE=kserve_echo)


@pytest.mark.realserver
@pytest.mark.parametrize("field", list(FIELDS))
def test_a_field_mlserver_hands_its_model_is_read_over_rest(
    field: str, echo_mlserver: tuple[str, str], proxy: ProxyHandle
) -> None:
    value = FIELDS[field]
    direct = httpx.post(f"{echo_mlserver[0]}/v2/models/echo/infer", json=BODY, headers={field: value}, timeout=60)
    assert echoed_headers(direct)[field] == value  # the real MLServer's model is handed the field as it came
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=BODY, headers={field: value, "x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=BODY, headers={field: value}, timeout=60)  # for the purpose the zone allows
    assert allowed.status_code == 200 and echoed_headers(allowed)[field] == value, allowed.text


@pytest.mark.realserver
@pytest.mark.parametrize("field", list(FIELDS))
def test_metadata_mlserver_hands_its_model_is_read_over_grpc(
    field: str, echo_mlserver: tuple[str, str], proxy: ProxyHandle
) -> None:
    value = FIELDS[field]
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    direct = grpcclient.InferenceServerClient(echo_mlserver[1]).infer("echo", [features], headers={field: value})
    assert json.loads(direct.as_numpy("headers")[0])[field] == value  # the real MLServer's model is handed it
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features], headers={field: value, "x-purpose": "ads"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    allowed = client.infer("echo", [features], headers={field: value})
    assert json.loads(allowed.as_numpy("headers")[0])[field] == value


@pytest.mark.realserver
@pytest.mark.parametrize("field", list(FIELDS))
def test_a_field_kserve_hands_its_model_is_read(field: str, kserve_echo: str, proxy: ProxyHandle) -> None:
    value = FIELDS[field]
    body = json.dumps({"instances": [[1.0]]})
    headers = {"content-type": "application/json", field: value}
    direct = httpx.post(f"{kserve_echo}/v1/models/kecho:predict", content=body, headers=headers, timeout=60)
    assert direct.json()["predictions"][0][field] == value  # the real KServe model server hands its model the field
    url = f"{proxy.url}/v1/models/kecho:predict"
    refused = httpx.post(url, content=body, headers={**headers, "x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, content=body, headers=headers, timeout=60)
    assert allowed.status_code == 200 and allowed.json()["predictions"][0][field] == value, allowed.text


@pytest.mark.realserver
def test_a_session_id_cookie_labels_nothing(echo_mlserver: tuple[str, str], proxy: ProxyHandle) -> None:
    """A UUID session id is an id, not a number: the call goes on for a purpose a zone over phone numbers forbids (the
    same value in any other field is read, `test_cookie_values_read_but_session_ids`)."""
    cookie = f"session={PHONE_LIKE_UUID}; theme=dark"
    reply = httpx.post(f"{proxy.url}/v2/models/echo/infer", json=BODY, timeout=60,
                       headers={"cookie": cookie, "x-purpose": "ads", "x-data-labels": "public"})  # fmt: skip
    assert reply.status_code == 200 and echoed_headers(reply)["cookie"] == cookie, reply.text


def test_cookie_values_read_but_session_ids() -> None:
    from proxy.config.model import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.protocols.oip import header_labels, header_text

    detectors = Detectors([DetectorSpec("email"), DetectorSpec("phone"), DetectorSpec("credit_card")])
    text = header_text([("Cookie", f"sid={PHONE_LIKE_UUID}; note={ADDRESS}"), ("X-Note", "hello")])
    assert text == f"cookie: sid={PHONE_LIKE_UUID}; note={ADDRESS}\nx-note: hello"
    assert header_labels(detectors, text) == {"pii:email"}
    assert header_labels(detectors, f'cookie: sid="{PHONE_LIKE_UUID}"') == frozenset()  # (quoted, as RFC 6265 allows)
    assert header_labels(detectors, f"cookie: card={CARD}") == {"pii:credit_card"}
    # elsewhere, and with no name (no cookie value), read as it is: since 2026-12-04 a UUID's digits are no phone
    # anywhere (the detector's own rule), so neither is labelled; a phone there is
    assert header_labels(detectors, f"x-note: {PHONE_LIKE_UUID}") == frozenset()
    assert header_labels(detectors, f"cookie: {PHONE_LIKE_UUID}") == frozenset()
    assert header_labels(detectors, "cookie: 212-555-0100") == {"pii:phone"}
    # Segment's anonymous id, its quotes %-escaped; a millisecond and a second Unix time, as analytics tools write
    assert header_labels(detectors, f"cookie: ajs_anonymous_id=%22{PHONE_LIKE_UUID}%22") == frozenset()
    assert header_labels(detectors, "cookie: ts=1701234567890; seen=1701234567") == frozenset()
    assert header_labels(detectors, "cookie: first=1400000000; ts=1000000000000") == frozenset()  # 2014-05, 2001-09
    assert header_labels(detectors, "cookie: phone=%2B1%20212%20555%200100") == {"pii:phone"}  # escaped, still read
    assert header_labels(detectors, "cookie: note=alice%40example.com") == {"pii:email"}
    assert header_text([("x-data-labels", CARD), ("x-api-key", "k")]) == f"x-data-labels: {CARD}\nx-api-key: k"


@pytest.mark.parametrize("number", ["1132345678", "1012345678", "1212345678", "1399999999"])
def test_a_cookie_with_a_national_number_beginning_with_1_is_read(number: str) -> None:
    """10 digits beginning with 1 are a Unix time in seconds (2001-2033), and were not read in a cookie; they are also
    a national number in Argentina and Brazil (Buenos Aires' and Sao Paulo's 11), Egypt (mobiles, 10 to 12, 15), and
    the UK's without its 0 (`121...`: Birmingham). Those beginning 10 to 13, times before 2014-05 that no cookie a
    browser keeps holds, are read (those beginning 14 to 19 are still taken for times: README)."""
    from proxy.config.model import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.protocols.oip import header_labels

    phone = Detectors([DetectorSpec("phone")])
    assert header_labels(phone, f"cookie: tel={number}") == {"pii:phone"}


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
# a tracestate as Datadog writes one on every call, its trace id's upper half all digits (one in about 450 is)
DATADOG = "dd=s:1;p:00f067aa0ba902b7;t.dm:-4;t.tid:4111111111111111"


@pytest.mark.realserver
def test_a_tracestate_forwarded_with_the_trace_is_read(echo_mlserver: tuple[str, str], proxy: ProxyHandle) -> None:
    """W3C's list-member values take any printable character but `,` and `=`: `rojo=alice@example.com` is one, forwarded
    with the trace, which the real MLServer hands its model (over REST and gRPC). A tracer's ids in it are not read."""
    trace = {"traceparent": TRACEPARENT, "tracestate": f"rojo={ADDRESS}"}
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=BODY, headers={**trace, "x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=BODY, headers=trace, timeout=60)
    assert allowed.status_code == 200 and echoed_headers(allowed)["tracestate"] == f"rojo={ADDRESS}", allowed.text
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as denied:
        client.infer("echo", [features], headers={**trace, "x-purpose": "ads"})
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED", denied.value
    ids = {"traceparent": TRACEPARENT, "tracestate": DATADOG, "x-purpose": "ads", "x-data-labels": "public"}
    datadog = httpx.post(url, json=BODY, headers=ids, timeout=60)
    assert datadog.status_code == 200 and echoed_headers(datadog)["tracestate"] == DATADOG, datadog.text
    assert json.loads(client.infer("echo", [features], headers=ids).as_numpy("headers")[0])["tracestate"] == DATADOG


def test_a_tracestate_is_read_but_its_ids() -> None:
    from proxy.protocols.oip import tracestate_text

    assert tracestate_text(None, DATADOG) == "tracestate: dd=s:1;p: ;t.dm:-4;t.tid: "
    assert tracestate_text("x-note: a", f"rojo={ADDRESS},ot=rv:7a7d1e8c3f2b9a") == (
        f"x-note: a\ntracestate: rojo={ADDRESS},ot=rv: "
    )
    assert tracestate_text(None, "v=5551234567") == "tracestate: v=5551234567"  # 10 digits: no id of those forms


# New Relic's list-member: account, app, span and transaction ids, sampled, priority, a millisecond time
NEW_RELIC = "33@nr=0-0-123456789-987654321-27ddd2d8890283b4-5569065a5b1313bd-1-0.5-1701234567890"


def test_what_tracers_write_in_a_tracestate_is_no_label() -> None:
    """A New Relic tracestate was labelled `pii:credit_card` or `pii:phone` on about one call in five (374 of 2,000
    random ones): its decimal ids and its millisecond time, and the ids cut out joining their neighbours into one
    long number. Its member, and Dynatrace's, are not read; an address in another member still is."""
    from proxy.config.model import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.protocols.oip import header_labels, tracestate_text

    detectors = Detectors([DetectorSpec("email"), DetectorSpec("phone"), DetectorSpec("credit_card")])
    assert header_labels(detectors, tracestate_text(None, NEW_RELIC)) == frozenset()
    assert header_labels(detectors, tracestate_text(None, f"{NEW_RELIC},7e1b@dt=fw4;0;1a2b;3c;0;0;0;0")) == frozenset()
    assert header_labels(detectors, tracestate_text(None, f"{NEW_RELIC},rojo={ADDRESS}")) == {"pii:email"}
    # the member's key alone does not make it an id: a value of another form is read
    assert header_labels(detectors, tracestate_text(None, f"33@nr={ADDRESS}")) == {"pii:email"}
    # what stood either side of an id cut out is not read as one number
    assert header_labels(detectors, tracestate_text(None, "v=4111111127ddd2d8890283b41111111")) == frozenset()


KEYED = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip, UPSTREAM_KEY}
routes:
  - {model: echo, upstream: mlserver}
callers: CALLERS
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
ALICE_KEY = hashlib.sha256(ADDRESS.encode()).hexdigest()  # a caller whose key is an address


@pytest.mark.realserver
def test_a_key_passed_on_is_read(echo_mlserver: tuple[str, str], proxy: ProxyHandle) -> None:
    """Where no caller has a key, a caller's `Authorization` is passed on as it came (the upstream's own auth), and
    the real MLServer hands it to its model (over REST and gRPC): it is read, but for a credential that is a UUID."""
    key = {"authorization": f"Bearer {ADDRESS}"}
    direct = httpx.post(f"{echo_mlserver[0]}/v2/models/echo/infer", json=BODY, headers=key, timeout=60)
    assert echoed_headers(direct)["authorization"] == f"Bearer {ADDRESS}"
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=BODY, headers={**key, "x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=BODY, headers=key, timeout=60)
    assert allowed.status_code == 200 and echoed_headers(allowed)["authorization"] == f"Bearer {ADDRESS}", allowed.text
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as denied:
        client.infer("echo", [features], headers={**key, "x-purpose": "ads"})
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED", denied.value
    token = {"authorization": f"Bearer {PHONE_LIKE_UUID}", "x-purpose": "ads", "x-data-labels": "public"}
    assert httpx.post(url, json=BODY, headers=token, timeout=60).status_code == 200


@pytest.mark.realserver
@pytest.mark.parametrize("kept", ["callers have keys", "the upstream has its own"])
def test_a_key_not_passed_on_is_not_read(
    kept: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    callers = f'[{{name: alice, api_key_sha256: "{ALICE_KEY}"}}]' if kept == "callers have keys" else "[]"
    upstream_key = "api_key: upstream-key" if kept == "the upstream has its own" else "region: eu"
    config = KEYED.replace("CALLERS", callers).replace("UPSTREAM_KEY", upstream_key)
    proxy = make_proxy(config, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    reply = httpx.post(f"{proxy.url}/v2/models/echo/infer", json=BODY, timeout=60,
                       headers={"authorization": f"Bearer {ADDRESS}", "x-purpose": "ads"})  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert ADDRESS not in echoed_headers(reply).get("authorization", ""), reply.text  # (the model never got it)


def test_a_key_is_read_but_a_uuid() -> None:
    from proxy.protocols.oip import passed_key_text

    assert passed_key_text(None, f"Bearer {ADDRESS}") == f"authorization: Bearer {ADDRESS}"
    assert passed_key_text("x-note: a", f"Bearer {PHONE_LIKE_UUID}") == "x-note: a"
    assert passed_key_text(None, f"Basic {PHONE_LIKE_UUID}x") == f"authorization: Basic {PHONE_LIKE_UUID}x"
