"""An OIP request's `data_labels` parameter reaches the model's runtime as it was sent: MLServer hands its runtime every
parameter (`payload.parameters.data_labels`, an input's and a requested output's too), Triton its backend the request's.
A label is any word of the grammar, so `"data_labels": "4111111111111111"` is a label the proxy took, and a card
number the runtime got; a requested output's `data_labels` is no label of the call's at all, unchecked. The proxy did
not read either: a card (or, on a requested output, an address) there reached the real MLServer's runtime for a purpose
the zone of cards and addresses forbids. The value is now read as text too, wherever it stands, over REST and gRPC, as
`x-data-labels` is; the labels it declares are the call's as before."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_oip_grpc import infer_request
from tests.servers.real import mlserver_runtime
from tests.test_oip_request_id_reaches_model import CONFIG as ADDRESSES_CONFIG
from tests.test_oip_request_id_reaches_model import ECHO, features, seen_over_rest

CARD = "4111111111111111"
ADDRESS = "alice@example.com"
CONFIG = ADDRESSES_CONFIG.replace('labels: ["pii:email"]', 'labels: ["pii:email", "pii:credit_card"]').replace(
    "detectors: [email]", "detectors: [email, credit_card]"
)
X = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
# where a `data_labels` parameter stands -> the body, and where the echo runtime's answer shows it
FORMS: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], Any], str]] = {
    "request": ({"inputs": [X], "parameters": {"data_labels": CARD}}, lambda s: s["parameters"]["data_labels"], CARD),
    "request list": (
        {"inputs": [X], "parameters": {"data_labels": ["campaign-7", CARD]}},
        lambda s: s["parameters"]["data_labels"][1],
        CARD,
    ),
    "input": ({"inputs": [{**X, "parameters": {"data_labels": CARD}}]}, lambda s: s["inputs"][0]["data_labels"], CARD),
    "requested output": (
        {"inputs": [X], "outputs": [{"name": "seen", "parameters": {"data_labels": CARD}}]},
        lambda s: s["outputs"][0]["data_labels"],
        CARD,
    ),
    "requested output, no label": (  # (not checked as a label: no label of the call's)
        {"inputs": [X], "outputs": [{"name": "seen", "parameters": {"data_labels": ADDRESS}}]},
        lambda s: s["outputs"][0]["data_labels"],
        ADDRESS,
    ),
}


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo-labels"), ECHO) as addresses:
        yield addresses


@pytest.mark.realserver
@pytest.mark.parametrize("form", list(FORMS))
def test_a_value_in_data_labels_is_refused_before_the_real_mlserver_over_rest(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle], form: str
) -> None:
    body, shown, value = FORMS[form]
    rest, grpc_address = echo_mlserver
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=body, timeout=60)
    assert shown(seen_over_rest(direct)) == value  # the real MLServer's runtime gets it
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=body, timeout=60)  # for a purpose the zone allows: labelled, and it arrives
    assert allowed.status_code == 200 and shown(seen_over_rest(allowed)) == value, allowed.text
    assert {"pii:credit_card", "pii:email"} & set(allowed.headers["x-data-labels"].split(",")), allowed.headers
    plain = httpx.post(url, json={"inputs": [X], "parameters": {"data_labels": "campaign-7"}}, headers={
        "x-purpose": "ads"}, timeout=60)  # fmt: skip
    assert plain.status_code == 200 and plain.headers["x-data-labels"] == "campaign-7", plain.text


@pytest.mark.realserver
def test_a_card_in_data_labels_is_refused_before_the_real_mlserver_over_grpc(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    labelled = {"data_labels": CARD}
    direct = grpcclient.InferenceServerClient(grpc_address).infer("echo", [features()], parameters=labelled)
    assert json.loads(direct.as_numpy("seen")[0])["parameters"]["data_labels"] == CARD
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features()], parameters=labelled, headers={"x-purpose": "ads"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    allowed = client.infer("echo", [features()], parameters=labelled)
    assert json.loads(allowed.as_numpy("seen")[0])["parameters"]["data_labels"] == CARD


@pytest.mark.parametrize("form", list(FORMS))
def test_data_labels_are_read_wherever_they_stand_over_rest(form: str) -> None:
    body, _, value = FORMS[form]
    request = read_rest_request("m", None, orjson.dumps(body), None)
    assert value in request.texts
    # still the call's labels, as declared (a requested output's are none)
    assert (CARD in request.labels) is (form in ("request", "request list", "input"))


@pytest.mark.parametrize("where", ["request", "input", "requested output"])
def test_data_labels_are_read_wherever_they_stand_over_grpc(where: str) -> None:
    request = infer_request(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.0)
    given = {"request": request, "input": tensor, "requested output": request.outputs.add(name="seen")}[where]
    given.parameters["data_labels"].string_param = CARD
    read = read_infer_request(request.SerializeToString())
    assert CARD in read.texts
    assert (CARD in read.labels) is (where != "requested output")
