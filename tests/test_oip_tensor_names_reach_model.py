"""An OIP request's tensor names reach the model's runtime: MLServer (and KServe's model server) hand it
`payload.inputs[i].name` and `payload.outputs[i].name` as the client wrote them (Triton takes only the names its model's
configuration gives; these take any), and MLServer's pandas codec makes the inputs' names a DataFrame's columns. The
proxy did not read them, so an input named `alice@example.com` reached the real MLServer's runtime for a purpose the
zone of that address forbids (an echo runtime answered with the name for `x-purpose: ads`). KServe's model server hands
its model an input's `datatype` too, any string (upper-cased), where Triton and MLServer refuse one that is none of the
protocol's. They are now read, over REST and gRPC, for labels (`Request.names`: not the call's content, neither
digested nor captured), a datatype only when it is none of the protocol's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

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
from tests.servers.real import kserve_echo, kserve_model_server, mlserver_echo, mlserver_runtime
from tests.test_oip_request_id_reaches_model import CONFIG

ADDRESS = "alice@example.com"
# a runtime that answers with the names MLServer handed it: the inputs' and the requested outputs'
ECHO = mlserver_echo(
    '{"inputs": [tensor.name for tensor in payload.inputs], "outputs": [tensor.name for tensor in payload.outputs or []]}'
)


# a KServe model that answers with the names and datatypes KServe's model server handed it (its V2 REST protocol)
KSERVE_ECHO = kserve_echo(
    '{"inputs": [[tensor.name, tensor.datatype] for tensor in payload.inputs],'
    ' "outputs": [tensor.name for tensor in payload.request_outputs or []]}'
)
KSERVE_CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: kserve, url: "${KSERVE}", protocol: kserve}
routes:
  - {model: "*", upstream: kserve}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo-names"), ECHO) as addresses:
        yield addresses


def rest_body(input_name: str, output_name: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"inputs": [{"name": input_name, "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    if output_name is not None:
        body["outputs"] = [{"name": output_name}]
    return body


def seen_over_rest(reply: httpx.Response) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = json.loads(reply.json()["outputs"][0]["data"][0])
    return seen


def features(name: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [1], "FP32")
    tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    return tensor


@pytest.mark.realserver
@pytest.mark.parametrize(("input_name", "output_name"), [(ADDRESS, None), ("x", ADDRESS)], ids=["input", "output"])
def test_a_tensor_name_is_refused_before_the_real_mlserver_over_rest(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle], input_name: str, output_name: str | None
) -> None:
    rest, grpc_address = echo_mlserver
    body = rest_body(input_name, output_name)
    handed = {"inputs": [input_name], "outputs": [output_name] if output_name else []}
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=body, timeout=60)
    assert seen_over_rest(direct) == handed  # the real MLServer's model gets the address
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, json=body, timeout=60)  # for a purpose the zone allows: labelled, and it arrives
    assert allowed.status_code == 200 and "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.text
    assert seen_over_rest(allowed) == handed
    plain = httpx.post(url, json=rest_body("x", "y"), headers={"x-purpose": "ads"}, timeout=60)
    assert plain.status_code == 200, plain.text  # names holding nothing the zone keeps go through
    assert seen_over_rest(plain) == {"inputs": ["x"], "outputs": ["y"]}


@pytest.mark.realserver
def test_a_tensor_name_is_refused_before_the_real_mlserver_over_grpc(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    requested = [grpcclient.InferRequestedOutput(ADDRESS)]
    direct = grpcclient.InferenceServerClient(grpc_address).infer("echo", [features(ADDRESS)], outputs=requested)
    assert json.loads(direct.as_numpy("seen")[0]) == {"inputs": [ADDRESS], "outputs": [ADDRESS]}
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    for inputs, outputs in (([features(ADDRESS)], None), ([features("x")], requested)):
        with pytest.raises(InferenceServerException) as refused:
            client.infer("echo", inputs, outputs=outputs, headers={"x-purpose": "ads"})
        assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    allowed = client.infer("echo", [features(ADDRESS)])
    assert json.loads(allowed.as_numpy("seen")[0])["inputs"] == [ADDRESS]
    plain = client.infer("echo", [features("x")], headers={"x-purpose": "ads"})
    assert json.loads(plain.as_numpy("seen")[0])["inputs"] == ["x"]


@pytest.mark.realserver
def test_a_datatype_is_refused_before_the_real_kserve_model_server(
    tmp_path: Path, make_proxy: Callable[..., ProxyHandle]
) -> None:
    with kserve_model_server(tmp_path, KSERVE_ECHO, "kecho") as kserve:
        body = {"inputs": [{"name": "x", "datatype": "Bob@Example.org", "shape": [1], "data": [1]}],
                "outputs": [{"name": ADDRESS}]}  # fmt: skip
        direct = httpx.post(f"{kserve}/v2/models/kecho/infer", json=body, timeout=60)
        handed = {"inputs": [["x", "BOB@EXAMPLE.ORG"]], "outputs": [ADDRESS]}
        assert seen_over_rest(direct) == handed  # the real KServe's model gets both addresses
        proxy = make_proxy(KSERVE_CONFIG, wait="probed", KSERVE=kserve)
        url = f"{proxy.url}/v2/models/kecho/infer"
        for sent in (body, {**body, "outputs": []}):  # each address alone is refused
            refused = httpx.post(url, json=sent, headers={"x-purpose": "ads"}, timeout=60)
            assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
        plain = {"inputs": [{"name": "x", "datatype": "int64", "shape": [1], "data": [1]}]}
        allowed = httpx.post(url, json=plain, headers={"x-purpose": "ads"}, timeout=60)
        assert allowed.status_code == 200, allowed.text  # a datatype of the protocol's, in any case, is framing
        assert seen_over_rest(allowed) == {"inputs": [["x", "INT64"]], "outputs": []}


def test_tensor_names_are_read_over_rest_and_grpc() -> None:
    names = read_rest_request("m", None, orjson.dumps(rest_body(ADDRESS, "bob@example.org")), None).names
    assert names == (ADDRESS, "bob@example.org")
    request = infer_request(model_name="m")
    request.inputs.add(name=ADDRESS, datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    request.outputs.add(name="bob@example.org")
    names = read_infer_request(request.SerializeToString()).names
    assert names == (ADDRESS, "bob@example.org")
    # read beside the content, not as it (neither digested nor captured, as header fields); an empty name not at all
    named = read_rest_request("m", None, orjson.dumps(rest_body(ADDRESS)), None)
    assert named.texts == () and named.names == (ADDRESS,)
    assert read_rest_request("m", None, orjson.dumps(rest_body("")), None).names == ()
    # a datatype none of the protocol's is read too (KServe hands it on), one of them is not, in any case
    odd = {"inputs": [{"name": "x", "datatype": ADDRESS, "shape": [1], "data": [1]},
                      {"name": "y", "datatype": "fp32", "shape": [1], "data": [1.0]}]}  # fmt: skip
    assert read_rest_request("m", None, orjson.dumps(odd), None).names == ("x", ADDRESS, "y")
    request = infer_request(model_name="m")
    request.inputs.add(name="x", datatype=ADDRESS, shape=[1]).contents.int64_contents.append(1)
    request.inputs.add(name="y", datatype="BF16", shape=[1])
    assert read_infer_request(request.SerializeToString()).names == ("x", ADDRESS, "y")
