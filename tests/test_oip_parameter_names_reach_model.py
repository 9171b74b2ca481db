"""A parameter's name reaches the model as its value does: MLServer and KServe's model server hand the runtime an OIP
request's `parameters` whole (the request's, each input's, each requested output's: `payload.parameters` is a model
that takes any field), and KServe's model server hands a V1 model the whole body, every key of it. The proxy read the
values and the keys of objects nested in them, never a parameter's own name (nor a V1 body's other keys), so a
parameter named `alice@example.com` reached the real MLServer's runtime for a purpose the zone of that address forbids,
and `{"instances": [1], "alice@example.com": 1}` the real KServe model's `predict`. A reply's parameter names reach its
client so too. They are now read, over REST and gRPC, as a tensor's name is (`Request.names`: for labels, neither
digested nor captured); a reply's beside its content. The protocol's own parameters' names are framing, not read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.flow import Outcome
from proxy.protocols import kserve
from proxy.protocols.oip import RestReplyObserver, read_rest_request
from proxy.protocols.oip_grpc import ReplyObserver, read_infer_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_oip_grpc import EMAIL, PB, infer_request
from tests.servers.real import kserve_model_server
from tests.test_oip_request_id_reaches_model import CONFIG, echo_mlserver, features, seen_over_rest
from tests.test_oip_tensor_names_reach_model import KSERVE_CONFIG

__all__ = ["echo_mlserver"]  # (the fixture, used by name)

ADDRESS = "alice@example.com"
# a KServe V1 model that answers with the body KServe's model server handed it
KSERVE_V1_ECHO = """
import json
import sys
import kserve


class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": [json.dumps(payload)]}


if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Echo("kecho")])
"""


def rest_body(where: str, name: str) -> dict[str, object]:
    """An inference request with a parameter named `name`: the request's own, its input's or its requested output's."""
    tensor: dict[str, object] = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
    body: dict[str, object] = {"inputs": [tensor], "outputs": [{"name": "y"}]}
    holder = {"request": body, "input": tensor, "output": body["outputs"][0]}[where]  # type: ignore[index]
    holder["parameters"] = {name: 1}
    return body


@pytest.mark.realserver
@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_a_parameter_name_is_refused_before_the_real_mlserver_over_rest(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle], where: str
) -> None:
    rest, grpc_address = echo_mlserver
    body = rest_body(where, ADDRESS)
    handed = {"request": "parameters", "input": "inputs", "output": "outputs"}[where]
    direct = seen_over_rest(httpx.post(f"{rest}/v2/models/echo/infer", json=body, timeout=60))
    assert ADDRESS in json.dumps(direct[handed])  # the real MLServer's runtime gets the name
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=body, timeout=60)  # for a purpose the zone allows: labelled, and it arrives
    assert allowed.status_code == 200 and "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.text
    plain = httpx.post(url, json=rest_body(where, "scale"), headers={"x-purpose": "ads"}, timeout=60)
    assert plain.status_code == 200, plain.text  # a name holding nothing the zone keeps goes through


@pytest.mark.realserver
def test_a_parameter_name_is_refused_before_the_real_mlserver_over_grpc(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    direct = grpcclient.InferenceServerClient(grpc_address).infer("echo", [features()], parameters={ADDRESS: 1})
    assert ADDRESS in json.loads(direct.as_numpy("seen")[0])["parameters"]
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features()], parameters={ADDRESS: 1}, headers={"x-purpose": "ads"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    plain = client.infer("echo", [features()], parameters={"scale": 1}, headers={"x-purpose": "ads"})
    assert json.loads(plain.as_numpy("seen")[0])["parameters"] == {"scale": 1}


@pytest.mark.realserver
def test_a_v1_bodys_key_is_refused_before_the_real_kserve_model_server(
    tmp_path: Path, make_proxy: Callable[..., ProxyHandle]
) -> None:
    with kserve_model_server(tmp_path, KSERVE_V1_ECHO, "kecho") as kserve_url:
        body = {"instances": [1], ADDRESS: 1}
        direct = httpx.post(f"{kserve_url}/v1/models/kecho:predict", json=body, timeout=60)
        assert json.loads(direct.json()["predictions"][0]) == body  # the real KServe model gets the key
        proxy = make_proxy(KSERVE_CONFIG, wait="probed", KSERVE=kserve_url)
        url = f"{proxy.url}/v1/models/kecho:predict"
        refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=60)
        assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
        plain = httpx.post(url, json={"instances": [1], "scale": 1}, headers={"x-purpose": "ads"}, timeout=60)
        assert plain.status_code == 200, plain.text


def test_parameter_names_are_read_beside_the_content_over_rest_and_grpc() -> None:
    for where in ("request", "input", "output"):
        read = read_rest_request("m", None, orjson.dumps(rest_body(where, ADDRESS)), None)
        assert ADDRESS in read.names and ADDRESS not in read.texts, where
    request = infer_request(model_name="m")
    request.parameters[ADDRESS].int64_param = 1
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.0)
    tensor.parameters["bob@example.org"].bool_param = True
    request.outputs.add(name="y").parameters["carol@example.net"].string_param = "v"
    read = read_infer_request(request.SerializeToString())
    assert set(read.names) >= {ADDRESS, "bob@example.org", "carol@example.net"} and ADDRESS not in read.texts
    # the protocol's own are framing: their names not read
    framing = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["a"],
                           "parameters": {"content_type": "str"}}], "parameters": {"sequence_id": 1}}  # fmt: skip
    assert read_rest_request("m", None, orjson.dumps(framing), None).names == ("x",)
    v1 = kserve.read_request("m", "predict", orjson.dumps({"instances": [1], ADDRESS: 1}), "application/json")
    assert v1.names == (ADDRESS,) and v1.texts == ("1",)


def test_a_reply_parameter_name_labels_the_output_over_rest_and_grpc() -> None:
    found = []
    outcome = Outcome(started_ns=1)
    rest = RestReplyObserver(outcome, EMAIL, False, None)
    output = {"name": "o", "datatype": "FP32", "shape": [1], "data": [1.0], "parameters": {ADDRESS: 1}}
    rest.body(orjson.dumps({"model_name": "m", "outputs": [output], "parameters": {"bob@example.org": True}}))
    rest.finish()
    found.append(outcome.output_detected)
    reply = PB["ModelInferResponse"](model_name="m")
    reply.parameters[ADDRESS].bool_param = True
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, EMAIL, False)
    observer.body(reply.SerializeToString())
    observer.finish()
    found.append(outcome.output_detected)
    assert found == [{"pii:email"}, {"pii:email"}]
