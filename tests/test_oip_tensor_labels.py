"""An OIP input tensor's own `data_labels` parameter labels the call, as the request's does: an input labelled
`health` is health data whichever of the two parameters says so, never forwarded unlabelled."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.errors import InvalidRequest
from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.protocols.test_oip_grpc import infer_request
from tests.test_oip_sequences import CONFIG


def _labelled(value: str, labels: str) -> list[triton.InferInput]:
    tensor = triton.InferInput("TEXT", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
    tensor._get_tensor().parameters["data_labels"].string_param = labels  # the input's own parameter
    return [tensor]


def test_an_input_labelled_health_is_refused_for_another_purpose(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    proxy = make_proxy(CONFIG, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    client = triton.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("echo", _labelled("insulin dose 12u", "health"), headers={"x-purpose": "ads"})
    assert caught.value.status() == "StatusCode.PERMISSION_DENIED"
    assert "health" in (caught.value.message() or "")
    assert log.read_text() == ""  # nothing reached the model
    allowed = client.infer("echo", _labelled("insulin dose 12u", "health"), headers={"x-purpose": "care"})
    assert allowed.as_numpy("TEXT") is not None
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == ["echo"]


def test_a_rest_input_s_labels_are_read() -> None:
    body = {
        "parameters": {"data_labels": "campaign-7"},
        "inputs": [
            {"name": "A", "shape": [1], "datatype": "BYTES", "data": ["x"], "parameters": {"data_labels": "health"}},
            {"name": "B", "shape": [1], "datatype": "BYTES", "data": ["y"], "parameters": {"data_labels": ["a", "b"]}},
        ],
    }
    read = read_rest_request("echo", None, orjson.dumps(body), None)
    assert sorted(read.labels) == ["a", "b", "campaign-7", "health"]
    # the labels as sent are text too: MLServer hands them to the runtime, and a label is any word of the grammar
    assert read.texts == ("x", "y", "campaign-7", "health", "a", "b")
    body["inputs"][0]["parameters"] = {"data_labels": 7}
    with pytest.raises(InvalidRequest):
        read_rest_request("echo", None, orjson.dumps(body), None)


def test_a_grpc_input_s_labels_are_read() -> None:
    request = infer_request(model_name="echo")
    request.parameters["data_labels"].string_param = "campaign-7"
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(b"x")
    tensor.parameters["data_labels"].string_param = "health"
    assert sorted(read_infer_request(request.SerializeToString()).labels) == ["campaign-7", "health"]
    tensor.parameters["data_labels"].int64_param = 7
    with pytest.raises(InvalidRequest):
        read_infer_request(request.SerializeToString())
