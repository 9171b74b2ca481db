"""Two ways a call's data reached MLServer's model unread (MLServer hands its model every header field of a REST request
and every metadata entry of a gRPC one, a binary entry as its bytes: `parameters.headers`).

The client's address. The proxy told every upstream the client's address, `X-Forwarded-For` (the caller's list and the
peer's address appended), unread: read, the `ip_address` detector would have labelled every call. So a zone over
`pii:ip_address` let a call take the caller's address to the model for a purpose it forbids. An upstream whose model is
handed the fields (`protocol: oip` or `kserve`, `headers_to_model` true) is now told nothing of the client: no
`X-Forwarded-For` at all (the caller's own list neither: MLServer's uvicorn trusts the proxy's 127.0.0.1, so a list
passed on alone would be the client to it, as the caller wrote it). One whose model is not (`headers_to_model: false`,
a Triton without a forward pattern) is told as before (`tests/ingress/test_forwarded_client_mlserver.py`).

The caller's key as binary metadata. `authorization-bin` (base64 on the wire, bytes to grpc) is passed on where the
text `authorization` is (no caller has a key, the upstream none of its own) and was not read; nor was an HTTP field
`Authorization-Bin`, passed on even once callers had keys. Both are now the text key's twin: passed on where it is,
and read there (a UUID credential is an id, as the text key's)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.harness import ProxyHandle, proxy_error
from tests.servers.real import kserve_model_server, mlserver_runtime
from tests.test_oip_cookie_and_labels_fields_read import KSERVE_ECHO

ADDRESS = "alice@example.com"
CLIENT = "203.0.113.9"  # the address a load balancer in front of the proxy writes: the user's own
UUID_KEY = "81ee476c-8839-4110-9727-d740fad13805"  # reads as a phone number, as one UUID in about 570 does
CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}
routes:
  - {model: echo, upstream: mlserver}
callers: CALLERS
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email", "pii:ip_address", "pii:phone"], allow_purposes: [care]}
detectors: [email, ip_address, phone]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
# a runtime that answers with the header fields MLServer handed it, a binary value's bytes as `bytes:<text>`
ECHO = """
import json
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        headers = payload.parameters.headers if payload.parameters else None
        text = json.dumps(headers, default=lambda value: "bytes:" + value.decode("latin-1"))
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="headers", datatype="BYTES", shape=[1], data=[text.encode()])])
"""
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
# a call for a purpose the zone forbids, its own data said to be public
ADS = {"x-purpose": "ads", "x-data-labels": "public"}


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo-bytes"), ECHO) as addresses:
        yield addresses


@pytest.fixture
def proxy(echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(CONFIG.replace("CALLERS", "[]"), wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])


def rest_handed(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A REST inference call's status, and the fields the model was handed (empty when refused)."""
    reply = httpx.post(f"{url}/v2/models/echo/infer", json=BODY, headers=headers, timeout=60)
    if reply.status_code != 200:
        assert proxy_error(reply)["code"] == "purpose_denied", reply.text
        return reply.status_code, {}
    return 200, json.loads(reply.json()["outputs"][0]["data"][0])


def grpc_handed(address: str, metadata: list[tuple[str, str | bytes]]) -> tuple[grpc.StatusCode, dict[str, Any]]:
    """A gRPC ModelInfer call's status, and the metadata the model was handed (empty when refused)."""
    request = service_pb2.ModelInferRequest(model_name="echo")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.0)
    with grpc.insecure_channel(address) as channel:
        try:
            reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                request, metadata=metadata, timeout=60
            )
        except grpc.RpcError as refused:
            assert refused.code() != grpc.StatusCode.INTERNAL, refused.details()
            return refused.code(), {}
    text = (
        reply.raw_output_contents[0][4:] if reply.raw_output_contents else reply.outputs[0].contents.bytes_contents[0]
    )
    return grpc.StatusCode.OK, json.loads(text)


@pytest.mark.realserver
def test_the_model_is_told_nothing_of_the_client(echo_mlserver: tuple[str, str], proxy: ProxyHandle) -> None:
    rest, grpc_address = echo_mlserver
    _, direct = rest_handed(rest, {"x-forwarded-for": CLIENT})
    assert direct["x-forwarded-for"] == CLIENT  # the real MLServer hands its model the field
    status, handed = rest_handed(proxy.url, {**ADS, "x-forwarded-for": CLIENT})
    assert status == 200
    assert "x-forwarded-for" not in handed and handed["x-forwarded-proto"] == "http", handed
    status, handed = rest_handed(proxy.url, ADS)  # a caller that says nothing: not its peer's address either
    assert status == 200 and "x-forwarded-for" not in handed, handed
    # so neither is what a caller writes there read: it reaches no model
    assert rest_handed(proxy.url, {**ADS, "x-forwarded-for": ADDRESS})[0] == 200
    code, handed = grpc_handed(proxy.grpc, [("x-forwarded-for", CLIENT), *ADS.items()])
    assert code == grpc.StatusCode.OK
    assert "x-forwarded-for" not in handed and handed["x-forwarded-proto"] == "http", handed
    code, handed = grpc_handed(grpc_address, [("x-forwarded-for", CLIENT)])
    assert handed["x-forwarded-for"] == CLIENT  # (as MLServer's gRPC server hands it, direct)


KSERVE = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: kserve, url: "${KSERVE}", protocol: kserve}
routes:
  - {model: kecho, upstream: kserve}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:ip_address"], allow_purposes: [care]}
detectors: [ip_address]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_kserves_model_is_told_nothing_of_the_client(tmp_path: Path, make_proxy: Callable[..., ProxyHandle]) -> None:
    """KServe's model server hands its model every field of a V1 call (`predict(payload, headers)`): so too."""
    headers = {"content-type": "application/json", "x-forwarded-for": CLIENT}
    with kserve_model_server(tmp_path, KSERVE_ECHO, "kecho") as url:
        direct = httpx.post(f"{url}/v1/models/kecho:predict", json={"instances": [[1.0]]}, headers=headers, timeout=60)
        assert direct.json()["predictions"][0]["x-forwarded-for"] == CLIENT  # the real server hands its model the field
        proxy = make_proxy(KSERVE, KSERVE=url)
        reply = httpx.post(f"{proxy.url}/v1/models/kecho:predict", json={"instances": [[1.0]]},
                           headers={**headers, **ADS}, timeout=60)  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert "x-forwarded-for" not in reply.json()["predictions"][0], reply.text


@pytest.mark.realserver
def test_a_binary_key_passed_on_is_read(echo_mlserver: tuple[str, str], proxy: ProxyHandle) -> None:
    key = ("authorization-bin", f"Bearer {ADDRESS}".encode())
    code, direct = grpc_handed(echo_mlserver[1], [key])
    assert direct["authorization-bin"] == f"bytes:Bearer {ADDRESS}"  # the real MLServer hands its model the bytes
    code, _ = grpc_handed(proxy.grpc, [key, *ADS.items()])
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, handed = grpc_handed(proxy.grpc, [key])  # for the purpose the zone allows: passed on as it came
    assert code == grpc.StatusCode.OK and handed["authorization-bin"] == f"bytes:Bearer {ADDRESS}", handed
    uuid = ("authorization-bin", f"Bearer {UUID_KEY}".encode())  # an id, not a number: not read
    assert grpc_handed(proxy.grpc, [uuid, *ADS.items()])[0] == grpc.StatusCode.OK
    # an HTTP field so named is the key's twin too
    assert rest_handed(proxy.url, {**ADS, "authorization-bin": f"Bearer {ADDRESS}"})[0] == 403
    status, handed = rest_handed(proxy.url, {"authorization-bin": f"Bearer {ADDRESS}"})
    assert status == 200 and handed["authorization-bin"] == f"Bearer {ADDRESS}", handed


@pytest.mark.realserver
def test_a_binary_key_held_back_is_not_read(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Once callers have keys the proxy passes on neither form of one (an HTTP `Authorization-Bin` was passed on), and
    reads neither: a call for a purpose the zone forbids goes on."""
    callers = f'[{{name: ops, api_key_sha256: "{hashlib.sha256(b"ops-key").hexdigest()}"}}]'
    proxy = make_proxy(CONFIG.replace("CALLERS", callers), wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    status, handed = rest_handed(proxy.url, {**ADS, "authorization-bin": f"Bearer {ADDRESS}"})
    assert status == 200 and "authorization-bin" not in handed, handed
    code, handed = grpc_handed(proxy.grpc, [("authorization-bin", f"Bearer {ADDRESS}".encode()), *ADS.items()])
    assert code == grpc.StatusCode.OK and "authorization-bin" not in handed, handed
