"""MLServer hands its model every header field of a REST inference request, and every metadata entry of a gRPC one, as
the request's `parameters.headers` (`insert_headers`; Triton those its `--http-header-forward-pattern` names). The
proxy forwarded them unread, so `X-Note: alice@example.com` (or a `User-Agent` holding it) reached the real MLServer's
model for a purpose the zone of that address forbids. Such fields are now read with the request (`oip.header_text`);
HTTP's, gRPC's and the proxy's own (`traceparent`, ...) are framing (`x-purpose` is read too, since:
`test_oip_purpose_field_reaches_model`; `x-data-labels` and a `Cookie` too: `test_oip_cookie_and_labels_fields_read`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.harness import ProxyHandle, proxy_error
from tests.servers.real import mlserver_runtime

ADDRESS = "alice@example.com"
CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
# a runtime that answers with the headers MLServer handed it: what reached the model beside its tensors
ECHO = """
import json
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        headers = payload.parameters.headers if payload.parameters else None
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="headers", datatype="BYTES", shape=[1], data=[json.dumps(headers)])])
"""
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo"), ECHO) as addresses:
        yield addresses


def echoed_headers(reply: httpx.Response) -> dict[str, str]:
    return json.loads(reply.json()["outputs"][0]["data"][0])


@pytest.mark.realserver
@pytest.mark.parametrize("field", ["x-note", "user-agent"])
def test_a_header_field_mlserver_hands_its_model_is_read_over_rest(
    field: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, _ = echo_mlserver
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=BODY, headers={field: ADDRESS}, timeout=60)
    assert echoed_headers(direct)[field] == ADDRESS  # the real MLServer's model is handed the field
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=echo_mlserver[1])
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=BODY, headers={field: ADDRESS, "x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=BODY, headers={field: ADDRESS}, timeout=60)  # for a purpose the zone allows
    assert allowed.status_code == 200 and echoed_headers(allowed)[field] == ADDRESS, allowed.text
    # without the address, the same call goes on for that purpose: the proxy's own fields are framing
    plain = httpx.post(url, json=BODY, headers={"x-purpose": "ads", "x-data-labels": "public"}, timeout=60)
    assert plain.status_code == 200, plain.text


@pytest.mark.realserver
def test_metadata_mlserver_hands_its_model_is_read_over_grpc(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    direct = grpcclient.InferenceServerClient(grpc_address).infer("echo", [features], headers={"x-note": ADDRESS})
    assert json.loads(direct.as_numpy("headers")[0])["x-note"] == ADDRESS  # the real MLServer's model is handed it
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features], headers={"x-note": ADDRESS, "x-purpose": "ads"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    allowed = client.infer("echo", [features], headers={"x-note": ADDRESS})
    assert json.loads(allowed.as_numpy("headers")[0])["x-note"] == ADDRESS
    assert client.infer("echo", [features], headers={"x-purpose": "ads"}).as_numpy("headers") is not None


def test_header_text_reads_all_but_framing() -> None:
    from proxy.protocols.oip import header_text  # (here: the tests above ran against code without it)

    assert header_text([("Host", "h"), ("Content-Length", "2"), ("traceparent", "00-1-2-01"),
                        ("Authorization", "Bearer k")]) is None  # fmt: skip
    assert header_text([("X-Note", ADDRESS), ("accept", "*/*"), ("x-blob-bin", b"bob@example.org")]) == (
        f"x-note: {ADDRESS}\naccept: */*\nx-blob-bin: bob@example.org"
    )


@pytest.mark.realserver
@pytest.mark.parametrize("field", ["accept", "content-type"])  # (an X-Forwarded-For is sent to no such model)
def test_fields_the_client_writes_as_it_likes_are_read_over_rest(
    field: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(CONFIG, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    value = f"application/json; note={ADDRESS}" if field == "content-type" else ADDRESS
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, content=json.dumps(BODY), headers={field: value, "x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, content=json.dumps(BODY), headers={field: value}, timeout=60)
    assert allowed.status_code == 200 and ADDRESS in echoed_headers(allowed)[field], allowed.text
