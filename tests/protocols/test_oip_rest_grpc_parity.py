"""One OIP inference sent over REST or over gRPC gets the same labels and the same decision: what reaches the
model is read as the server behind the proxy reads it (real MLServer, serving both), whichever way it came.

- raw_input_contents beside inputs whose `contents` hold data: Triton refuses the two together, MLServer gives
  raw_input_contents[i] to the i-th input with no data of its own (`mlserver.raw.inject_raw`), not to the i-th
  input. Read as the i-th input's, a BYTES input's text rode in as a numeric input's raw bytes, unread.
- A tensor declaring `content_type: base64` has its elements read decoded as a runtime decodes them, over gRPC
  as over REST.
- A sequence's id is Triton's uint64 correlation id: a gRPC int64_param of -1 is the id a REST `sequence_id`
  of 18446744073709551615 names, one sequence, one model state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import httpx
import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import MODEL_INFER, read_infer_request
from tests.protocols.test_oip_grpc import PB, infer_request, raw_bytes
from tests.protocols.test_oip_upstreams import ECHO
from tests.servers.real import mlserver_serving

E = "alice@example.com"


def _mixed() -> bytes:
    """A numeric input with its data in `contents`, then a BYTES input whose data is the one raw content."""
    request = infer_request(model_name="plain")
    request.inputs.add(name="n", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    request.inputs.add(name="t", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(raw_bytes(E.encode()))
    return bytes(request.SerializeToString())


def test_raw_contents_beside_contents_holding_data_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="raw_input_contents"):
        read_infer_request(_mixed())


def test_raw_contents_beside_empty_contents_are_read() -> None:
    """MLServer's own client (`ModelInferRequestConverter.from_types(..., use_raw=True)`) sends every input an
    empty `contents` beside its raw contents: read as before."""
    mlserver_made = b"\n\x01m*\x0f\n\x01T\x12\x05BYTES\x1a\x01\x01*\x00:\x06\x02\x00\x00\x00hi"
    assert read_infer_request(mlserver_made).texts == ("hi",)


@pytest.mark.parametrize(("int64", "uint64"), [(-1, (1 << 64) - 1), (-2, (1 << 64) - 2), (-(1 << 63), 1 << 63)])
def test_a_negative_grpc_sequence_id_is_the_uint64_rest_names(int64: int, uint64: int) -> None:
    request = infer_request(model_name="echo")
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"x")
    request.parameters["sequence_id"].int64_param = int64
    over_grpc = read_infer_request(request.SerializeToString()).sequence
    body = {"parameters": {"sequence_id": uint64}, "inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES",
                                                               "data": ["x"]}]}  # fmt: skip
    over_rest = read_rest_request("echo", None, orjson.dumps(body), None).sequence
    assert over_grpc == over_rest == f"echo\n{uint64}"


@pytest.mark.parametrize("raw", [False, True])
def test_elements_declared_base64_are_read_decoded_as_over_rest(raw: bool) -> None:
    """`content_type: base64` on a tensor: over REST each element is read as sent and decoded leniently, as a
    runtime calling `b64decode` without `validate` decodes it (a MIME line break dropped); over gRPC it was
    read decoded only where MLServer's strict codec decodes it, so the address below went unread."""
    elements = ["YWxpY2VAZXhhbXBsZS5jb20=", "dG86IGFs\naWNlQGV4YW1wbGUuY29t", "not base64"]
    tensor = {"name": "t", "datatype": "BYTES", "shape": [3], "parameters": {"content_type": "base64"},
              "data": elements}  # fmt: skip
    over_rest = read_rest_request("m", None, orjson.dumps({"inputs": [tensor]}), None).texts
    request = infer_request(model_name="m")
    given = request.inputs.add(name="t", datatype="BYTES", shape=[3])
    given.parameters["content_type"].string_param = "base64"
    if raw:
        request.raw_input_contents.append(raw_bytes(*(e.encode() for e in elements)))
    else:
        given.contents.bytes_contents.extend(e.encode() for e in elements)
    over_grpc = read_infer_request(request.SerializeToString()).texts
    assert "to: alice@example.com" in over_rest
    assert set(over_rest) <= set(over_grpc), (over_rest, over_grpc)


@pytest.fixture(scope="module")
def both_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """MLServer serving `plain` (the Echo model: it answers with what it was given) over REST and gRPC."""
    root = tmp_path_factory.mktemp("mlserver") / "models"
    (root / "plain").mkdir(parents=True)
    (root / "plain" / "echo.py").write_text(ECHO)
    (root / "plain" / "model-settings.json").write_text(json.dumps({"name": "plain", "implementation": "echo.Echo"}))
    with mlserver_serving(root, "/v2/models/plain/ready") as (http, grpc_address):
        yield http, grpc_address


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
  - name: private
    labels: ["pii:email", health]
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


def _infer(target: str, message: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> tuple[grpc.StatusCode, str]:
    """A ModelInfer through `target`: its status, and its reply's outputs as text (or the status's details)."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = channel.unary_unary(MODEL_INFER)(message, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    parsed = PB["ModelInferResponse"].FromString(reply)
    return grpc.StatusCode.OK, repr([*(list(o.contents.bytes_contents) for o in parsed.outputs),
                                     *parsed.raw_output_contents])  # fmt: skip


@pytest.mark.realserver
def test_text_in_raw_contents_mlserver_gives_a_bytes_input_is_not_let_through(both_mlserver, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """The same text over REST, in input `t`'s data, is found (403); over gRPC, as the raw contents MLServer gives
    input `t`, it reached the model unread, for `marketing`. Now refused, as Triton refuses it."""
    http, grpc_address = both_mlserver
    status, seen = _infer(grpc_address, _mixed())
    assert status == grpc.StatusCode.OK and E in seen, seen  # MLServer gave input `t` the address
    proxy = make_proxy(CONFIG, MLS=http, MLS_GRPC=grpc_address)
    body = {"inputs": [{"name": "n", "shape": [1], "datatype": "INT32", "data": [1]},
                       {"name": "t", "shape": [1], "datatype": "BYTES", "data": [E]}]}  # fmt: skip
    assert httpx.post(f"{proxy.url}/v2/models/plain/infer", json=body, timeout=30).status_code == 403
    status, seen = _infer(proxy.grpc, _mixed())
    assert status == grpc.StatusCode.INVALID_ARGUMENT and "raw_input_contents" in seen, (status, seen)


@pytest.mark.realserver
def test_a_sequence_named_over_rest_carries_what_its_grpc_start_had(both_mlserver, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A sequence started clean over REST (id 2^64 - 1), started again over gRPC (int64 -1, the same id to Triton)
    with health data for `support`, then gone on with over REST for `marketing`: the model's state holds the health
    data, so the last call carries its label and is refused, as it is when every call names the id one way."""
    http, grpc_address = both_mlserver
    proxy = make_proxy(CONFIG, MLS=http, MLS_GRPC=grpc_address)
    sequence = (1 << 64) - 1

    def rest(start: bool) -> httpx.Response:
        body = {"parameters": {"sequence_id": sequence, "sequence_start": start},
                "inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}  # fmt: skip
        return httpx.post(f"{proxy.url}/v2/models/plain/infer", json=body, timeout=30)

    assert rest(start=True).status_code == 200
    request = infer_request(model_name="plain")
    request.inputs.add(name="t", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(raw_bytes(b"insulin dose 12u"))  # (MLServer answers raw contents in kind)
    request.parameters["sequence_id"].int64_param = -1
    request.parameters["sequence_start"].bool_param = True
    started = _infer(proxy.grpc, request.SerializeToString(), (("x-data-labels", "health"), ("x-purpose", "support")))
    assert started[0] == grpc.StatusCode.OK, started
    later = rest(start=False)
    assert later.status_code == 403 and "health" in later.text, later.text
