"""A request's requested outputs' `parameters` (REST `outputs[].parameters`, gRPC `InferRequestedOutputTensor.parameters`)
are scanned as the request's and its inputs' parameters are: MLServer hands them to the model's `predict` with the
request (`payload.outputs[i].parameters`, any field kept), so text there reaches the model. They were not read: an
address there passed a zone that refuses it. The protocol's own (`binary_data`, `classification`, a shared-memory
region's) are not read; a number is, as its decimal text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import MODEL_INFER, read_infer_request
from tests.harness import proxy_error
from tests.protocols.test_oip_grpc import PB, infer_request
from tests.servers.real import mlserver_serving

E = "alice@example.com"
# answers with what its requested outputs' parameters gave it, and notes each call it was given in a file beside it
LISTEN = """
import os

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

CALLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log")


class Listen(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        seen = [repr(output.parameters.model_dump() if output.parameters else None) for output in payload.outputs or []]
        with open(CALLS, "a") as calls:
            calls.write(repr(seen) + "\\n")
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="seen", shape=[1], datatype="BYTES", data=[(" ".join(seen) or "none").encode()])])
"""
CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams:
  - name: mls
    url: ${MLS}
    grpc: ${MLS_GRPC}
    protocol: oip
routes:
  - model: "*"
    upstream: mls
zones:
  - name: pii
    labels: ["pii:email"]
    allow_purposes: [support]
policy:
  anonymous: allow
  default_purpose: marketing
detectors: [email]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


@pytest.fixture(scope="module")
def listen_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """MLServer serving `listen` (the model above) over REST and gRPC; and the file of the calls it was given."""
    root = tmp_path_factory.mktemp("mlserver") / "models"
    (root / "listen").mkdir(parents=True)
    (root / "listen" / "listen.py").write_text(LISTEN)
    (root / "listen" / "model-settings.json").write_text(
        json.dumps({"name": "listen", "implementation": "listen.Listen"})
    )
    with mlserver_serving(root, "/v2/models/listen/ready") as (http, grpc_address):
        yield http, grpc_address, root / "listen" / "calls.log"


REST_BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}],
             "outputs": [{"name": "seen", "parameters": {"note": f"write to {E}"}}]}  # fmt: skip


def grpc_body() -> bytes:
    request = infer_request(model_name="listen")
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    request.outputs.add(name="seen").parameters["note"].string_param = f"write to {E}"
    return bytes(request.SerializeToString())


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.realserver
@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_an_address_in_a_requested_outputs_parameters_is_refused_by_its_zone(  # type: ignore[no-untyped-def]
    listen_mlserver, make_proxy, tmp_path: Path, transport: str
) -> None:
    http, grpc_address, log = listen_mlserver
    proxy = make_proxy(CONFIG, MLS=http, MLS_GRPC=grpc_address, STORE=str(tmp_path / "lineage.db"))
    if transport == "rest":
        direct = httpx.post(f"{http}/v2/models/listen/infer", json=REST_BODY, timeout=30)  # the model reads it
        assert direct.status_code == 200 and E in direct.json()["outputs"][0]["data"][0], direct.text
        before = len(_calls(log))
        via = httpx.post(f"{proxy.url}/v2/models/listen/infer", json=REST_BODY, timeout=30)
        assert via.status_code == 403, via.text
        assert proxy_error(via)["code"] == "purpose_denied" and "pii" in via.text
    else:
        with grpc.insecure_channel(grpc_address) as channel:
            reply = channel.unary_unary(MODEL_INFER)(grpc_body(), timeout=30)
        assert E in str(PB["ModelInferResponse"].FromString(reply))  # the model reads it
        before = len(_calls(log))
        with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(MODEL_INFER)(grpc_body(), timeout=30)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(_calls(log)) == before  # nothing reached the model


def test_a_requested_outputs_parameters_are_read_but_the_protocols_own() -> None:
    outputs = [{"name": "a", "parameters": {"note": "mail ana@example.org", "binary_data": True,
                                            "classification": 2, "account": 123456789012}},
               {"name": "b", "parameters": {"shared_memory_region": "region-1 ana@example.org"}}]  # fmt: skip
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}], "outputs": outputs[:1]}
    assert read_rest_request("m", None, orjson.dumps(body), None).texts == ("mail ana@example.org", "123456789012")
    request = infer_request(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    output = request.outputs.add(name="a")
    output.parameters["note"].string_param = "mail ana@example.org"
    output.parameters["binary_data"].bool_param = True
    output.parameters["classification"].int64_param = 2
    output.parameters["account"].int64_param = 123456789012
    # (a map's entries in no set order on the wire)
    assert sorted(read_infer_request(request.SerializeToString()).texts) == ["123456789012", "mail ana@example.org"]
    shared = request.outputs.add(name="b")
    shared.parameters["shared_memory_region"].string_param = "region-1 ana@example.org"
    read = read_infer_request(request.SerializeToString())
    assert read.opaque and "region-1 ana@example.org" not in read.texts
