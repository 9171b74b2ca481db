"""A tensor's own `parameters.headers` (an input's, a requested output's) was skipped as framing, but MLServer's
`Parameters.headers` is a declared field it hands the runtime with the tensor, as it does the request's own `headers`
(which was read): `{"inputs": [{..., "parameters": {"headers": {"x-note": "alice@example.com"}}}]}` reached the real
MLServer for a purpose the zone of that address forbids. gRPC's tensor parameters agree (a `headers` string there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_oip_grpc import infer_request

ADDRESS = "alice@example.com"
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${UPSTREAM}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


def body(where: str) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "predict", "datatype": "FP64", "shape": [1, 4], "data": [[5.1, 3.5, 1.4, 0.2]]}
    headers = {"headers": {"x-note": ADDRESS}}
    data: dict[str, Any] = {"inputs": [tensor]}
    if where == "input":
        tensor["parameters"] = headers
    else:
        data["outputs"] = [{"name": "predict", "parameters": headers}]
    return data


@pytest.mark.parametrize("where", ["input", "output"])
def test_a_tensors_headers_are_read_over_rest(where: str) -> None:
    assert ADDRESS in read_rest_request("iris", None, orjson.dumps(body(where)), None).texts


def test_a_tensors_headers_are_read_over_grpc() -> None:
    request = infer_request(model_name="iris")
    tensor = request.inputs.add(name="predict", datatype="FP64", shape=[1])
    tensor.contents.fp64_contents.append(1.0)
    tensor.parameters["headers"].string_param = ADDRESS
    request.outputs.add(name="predict").parameters["headers"].string_param = "bob@example.com"
    assert read_infer_request(request.SerializeToString()).texts == (ADDRESS, "bob@example.com")


def test_a_tensors_other_framing_parameters_are_read_as_strings_only() -> None:
    data = body("input")  # MLServer hands the runtime a tensor's `parameters` whole: a string there reaches it
    data["inputs"][0]["parameters"] = {"content_type": "np", "classification": "x@example.com", "binary_data_size": 0}
    assert read_rest_request("iris", None, orjson.dumps(data), None).texts == ("np", "x@example.com")


@pytest.mark.realserver
def test_an_address_in_a_tensors_headers_is_refused_before_the_real_mlserver(
    iris_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=iris_mlserver[0])
    url = f"{proxy.url}/v2/models/iris/infer"
    refused = httpx.post(url, json=body("input"), headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=body("input"), timeout=60)  # MLServer takes such a tensor: it runs the model
    assert allowed.status_code == 200, allowed.text
    assert "pii:email" in allowed.headers["x-data-labels"].split(",")
