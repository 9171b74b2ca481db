"""A string under a tensor's framing names (`classification`, `binary_data_size`, `shared_memory_byte_size`,
`sequence_id`, `content_type`, ...) in an input's or a requested output's own `parameters`: MLServer hands the runtime
a tensor's `parameters` whole (`Parameters` keeps every field; a `content_type` naming no codec it has is kept as
sent), so `{"inputs": [{..., "parameters": {"classification": "alice@example.com"}}]}` reached the real MLServer's
model for a purpose the zone of that address forbids. The proxy skipped those names as framing; a string there is now
read (a number or a boolean, as Triton takes them, is still framing; `data_labels` is the proxy's, and a shared-memory
region's name is not read: such a request is opaque)."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import httpx
import orjson
import pytest

from proxy.protocols.oip import TENSOR_TEXT_IF_STRING, read_rest_request
from proxy.protocols.oip_grpc import MODEL_INFER, read_infer_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_oip_grpc import PB, infer_request
from tests.test_oip_request_id_reaches_model import CONFIG, echo_mlserver, seen_over_rest

__all__ = ["echo_mlserver"]  # the real MLServer fixture, used here by name

ADDRESS = "alice@example.com"
NAMES = ["classification", "binary_data_size", "shared_memory_byte_size", "sequence_id", "content_type"]


def rest_body(name: str, where: str) -> dict[str, object]:
    tensor: dict[str, object] = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
    body: dict[str, object] = {"inputs": [tensor]}
    if where == "input":
        tensor["parameters"] = {name: ADDRESS}
    else:
        body["outputs"] = [{"name": "seen", "parameters": {name: ADDRESS}}]
    return body


def grpc_body(name: str, where: str) -> bytes:
    request = infer_request(model_name="echo")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.0)
    given = tensor.parameters if where == "input" else request.outputs.add(name="seen").parameters
    given[name].string_param = ADDRESS
    return bytes(request.SerializeToString())


@pytest.mark.realserver
@pytest.mark.parametrize("where", ["input", "output"])
@pytest.mark.parametrize("name", ["classification", "content_type"])
def test_a_string_under_a_tensors_framing_name_is_refused_before_the_real_mlserver_over_rest(
    name: str, where: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    body = rest_body(name, where)
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=body, timeout=60)
    assert seen_over_rest(direct)[f"{where}s"] == [{name: ADDRESS}], direct.text  # the real MLServer's model gets it
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=body, timeout=60)  # for a purpose the zone allows: labelled, and it arrives
    assert allowed.status_code == 200 and "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.text
    assert seen_over_rest(allowed)[f"{where}s"] == [{name: ADDRESS}]


@pytest.mark.realserver
@pytest.mark.parametrize("where", ["input", "output"])
def test_a_string_under_a_tensors_framing_name_is_refused_before_the_real_mlserver_over_grpc(
    where: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    with grpc.insecure_channel(grpc_address) as channel:
        reply = PB["ModelInferResponse"].FromString(channel.unary_unary(MODEL_INFER)(grpc_body("classification", where),
                                                                                      timeout=60))  # fmt: skip
    seen = json.loads(reply.raw_output_contents[0][4:] if reply.raw_output_contents else
                      reply.outputs[0].contents.bytes_contents[0])  # fmt: skip
    assert seen[f"{where}s"] == [{"classification": ADDRESS}]  # the real MLServer's model gets it
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(MODEL_INFER)(grpc_body("classification", where), metadata=(("x-purpose", "ads"),),
                                         timeout=60)  # fmt: skip
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value


@pytest.mark.parametrize("where", ["input", "output"])
@pytest.mark.parametrize("name", NAMES)
def test_strings_under_a_tensors_framing_names_are_read_and_its_numbers_are_not(name: str, where: str) -> None:
    assert name in TENSOR_TEXT_IF_STRING
    assert read_rest_request("m", None, orjson.dumps(rest_body(name, where)), None).texts == (ADDRESS,)
    assert read_infer_request(grpc_body(name, where)).texts == (ADDRESS,)
    numbers = {"classification": 2, "shared_memory_byte_size": 16, "sequence_id": 7, "binary_data": True}
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0],
                        "parameters": {"classification": 2, "sequence_start": True}}],
            "outputs": [{"name": "y", "parameters": numbers}]}  # fmt: skip
    assert read_rest_request("m", None, orjson.dumps(body), None).texts == ()


def test_a_shared_memory_regions_name_and_the_labels_are_not_text() -> None:
    tensor = {"name": "x", "datatype": "FP32", "shape": [1],
              "parameters": {"shared_memory_region": "region-1", "data_labels": "campaign-7"}}  # fmt: skip
    read = read_rest_request("m", None, orjson.dumps({"inputs": [tensor]}), None)
    assert (read.texts, read.labels, read.opaque) == (("campaign-7",), ("campaign-7",), True)  # (labels as sent too)
