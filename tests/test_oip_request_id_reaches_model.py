"""An OIP request's `id` reaches the model's runtime: MLServer hands `payload.id` to it (and copies it into the `Ce-Id`
and `Ce-Requestid` headers it hands on too), Triton hands the request id to its backend. The proxy did not read it, so
`{"id": "alice@example.com", ...}` reached the real MLServer's runtime for a purpose the zone of that address forbids
(an echo runtime answered with `payload.id == "alice@example.com"` for `x-purpose: ads`). It is now read, over REST
and gRPC."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_oip_grpc import infer_request
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
# a runtime that answers with what MLServer handed it of the request but the tensors' data: its id, and the request's,
# each input's and each requested output's `parameters` (the request's `headers` aside)
ECHO = """
import json
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


def given(parameters):
    return parameters.model_dump(exclude={"headers"}) if parameters else {}


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        seen = {"id": payload.id, "parameters": given(payload.parameters),
                "inputs": [given(tensor.parameters) for tensor in payload.inputs],
                "outputs": [given(tensor.parameters) for tensor in payload.outputs or []]}
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="seen", datatype="BYTES", shape=[1], data=[json.dumps(seen).encode()])])
"""


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo-request"), ECHO) as addresses:
        yield addresses


def seen_over_rest(reply: httpx.Response) -> dict[str, object]:
    """What the echo runtime was handed, from its REST reply."""
    seen: dict[str, object] = json.loads(reply.json()["outputs"][0]["data"][0])
    return seen


def features() -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("x", [1], "FP32")
    tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    return tensor


@pytest.mark.realserver
def test_the_request_id_is_refused_before_the_real_mlserver_over_rest(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    body = {"id": ADDRESS, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=body, timeout=60)
    assert seen_over_rest(direct)["id"] == ADDRESS  # the real MLServer's model gets it
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=body, timeout=60)  # for a purpose the zone allows: labelled, and it arrives
    assert allowed.status_code == 200 and "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.text
    assert seen_over_rest(allowed)["id"] == ADDRESS
    plain = httpx.post(url, json={**body, "id": "req-1"}, headers={"x-purpose": "ads"}, timeout=60)
    assert plain.status_code == 200, plain.text  # an id holding nothing the zone keeps goes through


@pytest.mark.realserver
def test_the_request_id_is_refused_before_the_real_mlserver_over_grpc(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    direct = grpcclient.InferenceServerClient(grpc_address).infer("echo", [features()], request_id=ADDRESS)
    assert json.loads(direct.as_numpy("seen")[0])["id"] == ADDRESS
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features()], request_id=ADDRESS, headers={"x-purpose": "ads"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    allowed = client.infer("echo", [features()], request_id=ADDRESS)
    assert json.loads(allowed.as_numpy("seen")[0])["id"] == ADDRESS


def test_the_request_id_is_read_over_rest_and_grpc() -> None:
    body = {"id": ADDRESS, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    assert ADDRESS in read_rest_request("m", None, orjson.dumps(body), None).texts
    request = infer_request(model_name="m", id=ADDRESS)
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    assert ADDRESS in read_infer_request(request.SerializeToString()).texts
    # an empty id is none; a number is no id MLServer or Triton takes (refused upstream), and not read here
    assert read_rest_request("m", None, orjson.dumps({**body, "id": ""}), None).texts == ()
