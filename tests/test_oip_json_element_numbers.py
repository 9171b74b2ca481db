"""An OIP text element that holds JSON is parsed by a runtime that reads it so (MLServer's `pd_json` codec
`json.loads` each element; a model parsing its input does too), and its numbers are printed again as parsed: the
element `{"card": 4.111111111111111e15}` reaches the model as `{'card': 4111111111111111.0}`, a card no detector found
in the element as sent, so the call went through for a purpose the card's zone forbids (the same number in a tool
call's `arguments` was refused). Such an element's numbers are now read as printed, beside the texts (`decoded`, as
the tool call's are: the input's digest stays that of what was sent), over REST and gRPC. Through the proxy to the real
MLServer: refused before it, and labelled when allowed."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_oip_grpc import infer_request

DETECTORS = Detectors([DetectorSpec("credit_card")])
ELEMENT = '{"card": 4.111111111111111e15, "memo": "pay"}'
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${UPSTREAM}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: payments, labels: ["pii:credit_card"], allow_purposes: [care]}
detectors: [credit_card]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


def found(request: Any) -> frozenset[str]:
    return DETECTORS.scan_all(request.texts) | DETECTORS.scan_all(request.decoded)


def rest(*elements: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "note", "datatype": "BYTES", "shape": [len(elements)], "data": list(elements)}
    if parameters:
        tensor["parameters"] = parameters
    iris = {"name": "predict", "datatype": "FP64", "shape": [1, 4], "data": [[5.1, 3.5, 1.4, 0.2]]}
    return {"inputs": [iris, tensor]}


def test_a_card_written_with_an_exponent_in_a_json_element_is_found_over_rest() -> None:
    assert json.loads(ELEMENT) == {"card": 4111111111111111.0, "memo": "pay"}  # as a runtime has it
    request = read_rest_request("m", None, orjson.dumps(rest(ELEMENT)), None)
    assert request.decoded == ("4111111111111111.0",) and "4111111111111111.0" not in request.texts
    assert "pii:credit_card" in found(request)
    encoded = base64.b64encode(ELEMENT.encode()).decode()  # declared base64: what the runtime decodes is JSON
    assert "pii:credit_card" in found(read_rest_request("m", None, orjson.dumps(rest(encoded)), None))


def test_a_card_written_with_an_exponent_in_a_json_element_is_found_over_grpc() -> None:
    request = infer_request(model_name="m")
    tensor = request.inputs.add(name="note", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(ELEMENT.encode())
    read = read_infer_request(request.SerializeToString())
    assert read.decoded == ("4111111111111111.0",) and "pii:credit_card" in found(read)


@pytest.mark.parametrize(
    "element",
    ['{"amount": 1.5e3, "n": 4111111111111111e-9}', "pay 4.111111111111111e15 now", '"4.111111111111111e15"', "[1, 2]"],
)
def test_other_elements_and_numbers_stay_as_they_are(element: str) -> None:
    """Numbers that print as no card, text that is no JSON (a model reads it as it is), a JSON string: nothing
    found, and the texts are the elements as sent."""
    request = read_rest_request("m", None, orjson.dumps(rest(element)), None)
    assert not found(request) and request.texts == (element,)


@pytest.mark.realserver
def test_such_an_element_is_refused_before_the_real_mlserver(
    iris_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=iris_mlserver[0])
    url = f"{proxy.url}/v2/models/iris/infer"
    body = rest(ELEMENT, parameters={"content_type": "pd_json"})
    refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    assert "pii:credit_card" in proxy_error(refused)["message"]
    # forwarded (MLServer answers that the iris model takes one input, having read both): labelled
    allowed = httpx.post(url, json=body, timeout=60)
    assert "pii:credit_card" in allowed.headers["x-data-labels"].split(","), (allowed.status_code, allowed.text)
