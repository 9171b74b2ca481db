"""An InferParameter's `double_param` (field 4) and `uint64_param` (field 5) are members of its oneof in KServe's and
Triton's protocol, but not in MLServer's nor in KServe's model server's, whose InferParameter has three members
(`bool_param`, `int64_param`, `string_param`): there they are unknown fields, which leave the member before them set.
So `{string_param: "202-555-0123", uint64_param: 5}` is 5 to Triton and the phone number to MLServer's runtime, and
`{int64_param: 2025550123, double_param: 1.0}` the number 1 to Triton and the phone number to MLServer's. The proxy
read the parameter as Triton does alone (the member of five set last), so the phone number reached the real
MLServer's model for a purpose the zone of phone numbers forbids. Both readings are read now: the string or number
MLServer keeps and the number Triton keeps, in the request's, its inputs' and its requested outputs' parameters,
and in a reply's and its outputs'."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import grpc
import pytest

from proxy.flow import Outcome
from proxy.protocols.oip_grpc import ReplyObserver, read_infer_request
from tests.harness import ProxyHandle, dead_port
from tests.protocols.test_oip_grpc import PB
from tests.test_oip_grpc_parameter_last_member import CONFIG, DETECTORS, PHONE, _call, _entry, _field, _varint, request
from tests.test_oip_request_id_reaches_model import echo_mlserver

__all__ = ["echo_mlserver"]  # the real MLServer fixture, used here by name

STRING = b"\x1a\x0c202-555-0123"  # string_param, a phone number as text
INT64 = b"\x10" + _varint(PHONE)  # int64_param, the phone number as a number
UINT64 = b"\x28\x05"  # uint64_param 5: unknown to MLServer
DOUBLE = b"\x21" + struct.pack("<d", 1.0)  # double_param 1.0: unknown to MLServer
# a phone number in the member MLServer keeps, followed by a member only Triton's protocol has (in one value, or in
# two values of one map entry, which protobuf merges)
VALUES = {
    "string-uint64": [STRING + UINT64],
    "string-double": [STRING + DOUBLE],
    "int64-uint64": [INT64 + UINT64],
    "int64-double": [INT64 + DOUBLE],
    "string|uint64": [STRING, UINT64],
}
# what Triton's reading keeps of each (the last of five members), and MLServer's (the last of three)
TRITON = {"string-uint64": 5, "string-double": 1.0, "int64-uint64": 5, "int64-double": 1.0, "string|uint64": 5}
MLSERVER = {"string-uint64": "202-555-0123", "string-double": "202-555-0123", "int64-uint64": PHONE,
            "int64-double": PHONE, "string|uint64": "202-555-0123"}  # fmt: skip


def _given(body: bytes, where: str) -> object:
    """The parameter `p` as Triton's protocol reads `body` (its five members)."""
    parsed = PB["ModelInferRequest"].FromString(body)
    given = {"request": parsed.parameters, "input": parsed.inputs[0].parameters,
             "output": parsed.outputs[0].parameters if parsed.outputs else {}}[where]  # fmt: skip
    value = given["p"]
    return getattr(value, str(value.WhichOneof("parameter_choice")))


@pytest.mark.parametrize("values", list(VALUES))
@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_both_readings_of_a_parameter_are_read(where: str, values: str) -> None:
    body = request(where, VALUES[values])
    assert _given(body, where) == TRITON[values]  # Triton's reading: not the phone number
    texts = read_infer_request(body).texts
    assert str(MLSERVER[values]) in texts and str(int(TRITON[values])) in texts, texts
    assert DETECTORS.scan_all(texts) == {"pii:phone"}


def test_a_member_after_them_all_is_read_alone() -> None:
    """A bool set last is the bool to every reader: nothing of the members before it is text."""
    assert read_infer_request(request("request", [STRING + UINT64 + b"\x08\x01"])).texts == ()
    assert read_infer_request(request("request", [INT64 + DOUBLE + b"\x08\x01"])).texts == ()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("values", ["string-uint64", "int64-double", "string|uint64"])
@pytest.mark.parametrize("where", ["reply", "output"])
def test_both_readings_of_a_replys_parameter_are_read(where: str, values: str, stream: bool) -> None:
    """A reply's own parameter, or its output tensor's (unary, and in a stream's message), is read as both too:
    KServe's own gRPC client (`InferenceGRPCClient`) parses the reply with its three-member InferParameter and hands
    the caller the phone number, where Triton's client reads the number after it."""
    entry = _entry(VALUES[values])
    output = _field(1, b"out") + _field(2, b"FP32") + _field(3, b"\x01") + _field(4, entry)
    reply = _field(1, b"echo") + (_field(4, entry) if where == "reply" else _field(5, output))
    parsed = PB["ModelInferResponse"].FromString(reply)
    given = (parsed.parameters if where == "reply" else parsed.outputs[0].parameters)["p"]
    assert getattr(given, str(given.WhichOneof("parameter_choice"))) == TRITON[values]  # not the phone, to Triton
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False)
    if stream:
        observer.model = "echo"
        assert observer.stream_message(_field(2, reply)) is None
    else:
        observer.body(reply)
    observer.finish()
    assert outcome.output_detected == {"pii:phone"}


def test_a_phone_before_a_double_is_refused_for_a_purpose_its_zone_forbids(
    make_proxy: Callable[..., ProxyHandle],
) -> None:
    """Refused before the upstream (a dead port: a call let through ends UNAVAILABLE), and recorded so."""
    proxy = make_proxy(CONFIG.format(grpc=f"127.0.0.1:{dead_port()}"), wait="none")
    for values in ("string-double", "int64-uint64"):
        with pytest.raises(grpc.RpcError) as refused:
            _call(proxy.grpc, request("input", VALUES[values]), "ads")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
        trailing = dict(refused.value.trailing_metadata())
        assert trailing["x-lineage-decision"] == "deny" and "pii:phone" in refused.value.details()


@pytest.mark.realserver
@pytest.mark.parametrize("values", ["string-uint64", "int64-double"])
@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_the_real_mlservers_model_gets_the_phone_and_the_proxy_refuses_it(
    where: str, values: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    _, grpc_address = echo_mlserver
    body = request(where, VALUES[values])
    reply = PB["ModelInferResponse"].FromString(_call(grpc_address, body, "ads"))
    seen = json.loads(reply.raw_output_contents[0][4:] if reply.raw_output_contents else
                      reply.outputs[0].contents.bytes_contents[0])  # fmt: skip
    got = seen["parameters"] if where == "request" else seen[f"{where}s"][0]
    assert got["p"] == MLSERVER[values]  # the model's runtime gets the phone number, directly
    proxy = make_proxy(CONFIG.format(grpc=grpc_address), wait="probed")
    with pytest.raises(grpc.RpcError) as refused:
        _call(proxy.grpc, body, "ads")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    with grpc.insecure_channel(proxy.grpc) as channel:  # for a purpose the zone allows: labelled, and it arrives
        allowed = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer").with_call(
            body, metadata=(("x-purpose", "care"),), timeout=60
        )[1]
    assert "pii:phone" in dict(allowed.trailing_metadata())["x-data-labels"].split(",")


@pytest.mark.realserver
@pytest.mark.parametrize("values", ["string-uint64", "int64-double"])
def test_a_streams_later_message_is_read_as_both_too(
    values: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """ModelStreamInfer: a first message with nothing to refuse, then one whose parameter holds the phone number in the
    member MLServer keeps: the stream ends refused, the later message unanswered (it never reached the model)."""
    _, grpc_address = echo_mlserver
    proxy = make_proxy(CONFIG.format(grpc=grpc_address), wait="probed")
    with grpc.insecure_channel(proxy.grpc) as channel:
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        replies = stream(iter([request("request", [b"\x1a\x02hi"]), request("request", VALUES[values])]),
                         metadata=(("x-purpose", "ads"),), timeout=60)  # fmt: skip
        answered = []
        with pytest.raises(grpc.RpcError) as refused:
            answered.extend(replies)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    assert "pii:phone" in refused.value.details() and len(answered) <= 1
