"""MLServer takes none of the request parameters Triton takes for itself (`sequence_id`, `sequence_start`,
`sequence_end`, `priority`, `timeout`, `binary_data_output`): it hands its runtime each one, whatever its value. The
proxy skipped them as framing, so `"parameters": {"sequence_id": "alice@example.com"}` (or the address under
`priority`) reached the real MLServer's model for a purpose the zone of that address forbids. A string under those
names is now read (a number or a boolean, as Triton takes them, is still framing; `data_labels` is the proxy's own)."""

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
NAMES = ["sequence_id", "priority", "timeout", "sequence_start", "sequence_end", "binary_data_output"]
# a runtime that answers with the request's parameters MLServer handed it (its `headers` aside): what reached the model
ECHO = """
import json
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        given = payload.parameters.dict(exclude={"headers"}) if payload.parameters else {}
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="parameters", datatype="BYTES", shape=[1], data=[json.dumps(given)])])
"""
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo-parameters"), ECHO) as addresses:
        yield addresses


def body(name: str) -> dict[str, object]:
    return {"parameters": {name: ADDRESS}, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


@pytest.mark.realserver
@pytest.mark.parametrize("name", ["sequence_id", "priority"])
def test_a_string_under_a_tritons_parameter_name_is_read_over_rest(
    name: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=body(name), timeout=60)
    assert json.loads(direct.json()["outputs"][0]["data"][0])[name] == ADDRESS  # the real MLServer's model gets it
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=body(name), headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=body(name), timeout=60)  # for a purpose the zone allows
    assert allowed.status_code == 200 and "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.text


@pytest.mark.realserver
def test_a_string_under_a_tritons_parameter_name_is_read_over_grpc(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    direct = grpcclient.InferenceServerClient(grpc_address).infer("echo", [features], sequence_id=ADDRESS)
    assert json.loads(direct.as_numpy("parameters")[0])["sequence_id"] == ADDRESS  # (tritonclient's string id)
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features], sequence_id=ADDRESS, headers={"x-purpose": "ads"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value


@pytest.mark.parametrize("name", NAMES)
def test_strings_under_tritons_parameter_names_are_read_and_its_numbers_are_not(name: str) -> None:
    given = {name: ADDRESS, "data_labels": "campaign-7"}
    tensor = {"name": "X", "datatype": "FP32", "shape": [1], "data": [1.0]}
    assert read_rest_request("m", None, orjson.dumps({"parameters": given, "inputs": [tensor]}), None).texts == (
        ADDRESS,
        "campaign-7",  # (the labels as sent: MLServer hands them to the runtime)
    )
    numbers = {"sequence_id": 7, "priority": 1, "timeout": 100, "sequence_start": True, "binary_data_output": True}
    assert read_rest_request("m", None, orjson.dumps({"parameters": numbers, "inputs": [tensor]}), None).texts == ()
    request = infer_request(model_name="m")
    request.parameters[name].string_param = ADDRESS
    request.parameters["priority" if name != "priority" else "timeout"].int64_param = 1
    request.inputs.add(name="X", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    read = read_infer_request(request.SerializeToString())
    assert read.texts == (ADDRESS,)
