"""An InferParameter is a oneof: protobuf keeps the member parsed last, so a parameter whose value holds a
`string_param` and then an `int64_param` (in one value, or in two values of one map entry, which protobuf merges) is
that number to Triton and to MLServer, whose runtime gets it in `parameters`. The proxy read the string and never the
number, so `{"phone": {string_param: "x", int64_param: 2025550123}}` took a phone number to the real MLServer's model
for a purpose the zone of phone numbers forbids (a parameter's number is read, `_parameter_numbers`: a backend reads
it).
The member set last is read now, in the request's, its inputs' and its requested outputs' parameters, and in a
reply's; a string set last is still read as the string."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.oip_grpc import MODEL_INFER, ReplyObserver, read_infer_request
from tests.harness import ProxyHandle, dead_port
from tests.protocols.test_oip_grpc import PB
from tests.test_oip_request_id_reaches_model import echo_mlserver

__all__ = ["echo_mlserver"]  # the real MLServer fixture, used here by name

PHONE = 2025550123
DETECTORS = Detectors([DetectorSpec("phone")])
CONFIG = """
listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams:
  - {{name: mlserver, grpc: "{grpc}", protocol: oip, checkpoint: echo@1}}
routes:
  - {{model: "*", upstream: mlserver}}
policy: {{anonymous: allow, default_purpose: care}}
zones:
  - {{name: personal, labels: ["pii:phone"], allow_purposes: [care]}}
detectors: [phone]
telemetry: {{exporter: none}}
lineage: {{store: "${{STORE}}"}}
"""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


STRING = _field(3, b"x")  # string_param "x"
NUMBER = b"\x10" + _varint(PHONE)  # int64_param
# (the map entry's values: the last member set is the number, in one value or across two; a string last is a string)
VALUES = {"one": [STRING + NUMBER], "two": [STRING, NUMBER], "string-last": [NUMBER + STRING]}


def _entry(values: list[bytes]) -> bytes:
    return _field(1, b"p") + b"".join(_field(2, value) for value in values)


def request(where: str, values: list[bytes]) -> bytes:
    """A ModelInferRequest whose parameter `p` (the request's, its input's or its requested output's) holds `values`."""
    entry = _entry(values)
    tensor = _field(1, b"x") + _field(2, b"FP32") + _field(3, b"\x01") + _field(5, _field(6, b"\x00\x00\x80\x3f"))
    tensor += _field(4, entry) if where == "input" else b""
    body = _field(1, b"echo") + _field(5, tensor)
    body += _field(4, entry) if where == "request" else b""
    return body + (_field(6, _field(1, b"seen") + _field(2, entry)) if where == "output" else b"")


@pytest.mark.parametrize("values", list(VALUES))
@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_the_parameters_member_set_last_is_read(where: str, values: str) -> None:
    body = request(where, VALUES[values])
    parsed = PB["ModelInferRequest"].FromString(body)
    given = {"request": parsed.parameters, "input": parsed.inputs[0].parameters,
             "output": parsed.outputs[0].parameters if parsed.outputs else {}}[where]  # fmt: skip
    member = given["p"].WhichOneof("parameter_choice")
    assert member == ("string_param" if values == "string-last" else "int64_param")  # protobuf's reading
    texts = read_infer_request(body).texts
    assert texts == (("x",) if values == "string-last" else (str(PHONE),))
    assert DETECTORS.scan_all(texts) == (frozenset() if values == "string-last" else {"pii:phone"})


@pytest.mark.parametrize("values", ["one", "two"])
def test_a_replys_parameters_member_set_last_is_read(values: str) -> None:
    reply = _field(1, b"echo") + _field(4, _entry(VALUES[values]))
    assert PB["ModelInferResponse"].FromString(reply).parameters["p"].int64_param == PHONE
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False)
    observer.body(reply)
    observer.finish()
    assert outcome.output_detected == {"pii:phone"}


def _call(address: str, body: bytes, purpose: str) -> Any:
    with grpc.insecure_channel(address) as channel:
        return channel.unary_unary(MODEL_INFER)(body, metadata=(("x-purpose", purpose),), timeout=60)


def test_a_number_set_after_a_string_is_refused_for_a_purpose_its_zone_forbids(
    make_proxy: Callable[..., ProxyHandle],
) -> None:
    """Refused before the upstream (a dead port: a call let through ends UNAVAILABLE), and recorded so."""
    proxy = make_proxy(CONFIG.format(grpc=f"127.0.0.1:{dead_port()}"), wait="none")
    with pytest.raises(grpc.RpcError) as refused:
        _call(proxy.grpc, request("request", VALUES["one"]), "ads")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    trailing = dict(refused.value.trailing_metadata())
    assert trailing["x-lineage-decision"] == "deny" and "pii:phone" in refused.value.details()


@pytest.mark.realserver
@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_the_real_mlservers_model_gets_the_number_and_the_proxy_refuses_it(
    where: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    _, grpc_address = echo_mlserver
    body = request(where, VALUES["one"])
    reply = PB["ModelInferResponse"].FromString(_call(grpc_address, body, "ads"))
    seen = json.loads(reply.raw_output_contents[0][4:] if reply.raw_output_contents else
                      reply.outputs[0].contents.bytes_contents[0])  # fmt: skip
    got = seen["parameters"] if where == "request" else seen[f"{where}s"][0]
    assert got["p"] == PHONE  # the model's runtime gets the number, directly
    proxy = make_proxy(CONFIG.format(grpc=grpc_address), wait="probed")
    with pytest.raises(grpc.RpcError) as refused:
        _call(proxy.grpc, body, "ads")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    with grpc.insecure_channel(proxy.grpc) as channel:  # for a purpose the zone allows: labelled, and it arrives
        allowed = channel.unary_unary(MODEL_INFER).with_call(body, metadata=(("x-purpose", "care"),), timeout=60)[1]
    assert "pii:phone" in dict(allowed.trailing_metadata())["x-data-labels"].split(",")
