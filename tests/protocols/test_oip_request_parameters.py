"""A request's own `parameters` under a tensor's framing names. Triton takes `sequence_*`, `priority`, `timeout` (and,
over REST, `binary_data_output`) for itself and hands every other request parameter to the backend
(`TRITONSERVER_InferenceRequestSetStringParameter`; a Python backend's `request.parameters()`): a string under
`content_type`, `headers`, `classification` or a shared-memory name there is text the model may read, which the
proxy skipped as framing. On a tensor a string there is read too (MLServer hands the runtime a tensor's `parameters`
whole), but a shared-memory region's name: such a request is opaque."""

from __future__ import annotations

import orjson
import pytest

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.protocols.test_oip_grpc import infer_request

TEXT = "mail ana@example.org"
NAMES = ["content_type", "headers", "classification", "binary_data", "binary_data_size", "shared_memory_region",
         "shared_memory_offset"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_a_request_parameter_triton_passes_on_is_scanned_over_rest(name: str) -> None:
    body = orjson.dumps({
        "parameters": {name: TEXT, "data_labels": "campaign-7", "sequence_id": 7, "priority": 1},
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1.0], "parameters": {name: "np"}}],
    })  # fmt: skip
    request = read_rest_request("m", None, body, None)
    # the sequence's number is framing; the tensor's string too, but a shared-memory region's name; the labels are
    # read as sent (MLServer hands them to the runtime)
    assert request.texts == ((TEXT, "campaign-7") if name == "shared_memory_region" else (TEXT, "campaign-7", "np"))
    assert request.labels == ("campaign-7",)


@pytest.mark.parametrize("name", NAMES)
def test_a_request_parameter_triton_passes_on_is_scanned_over_grpc(name: str) -> None:
    request = infer_request(model_name="m")
    request.parameters[name].string_param = TEXT
    request.parameters["data_labels"].string_param = "campaign-7"
    request.parameters["sequence_id"].int64_param = 7
    tensor = request.inputs.add(name="X", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.0)
    tensor.parameters[name].string_param = "np"
    read = read_infer_request(request.SerializeToString())
    # (the labels as sent too; protobuf writes a map's entries by key)
    assert sorted(read.texts) == sorted(
        (TEXT, "campaign-7") if name == "shared_memory_region" else (TEXT, "campaign-7", "np")
    )
    assert read.labels == ("campaign-7",)
