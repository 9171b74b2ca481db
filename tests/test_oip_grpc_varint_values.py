"""A number in an OIP gRPC request's parameters is read as protobuf reads it: a varint's low 64 bits. A varint may
take ten bytes, and protobuf drops what its tenth byte holds past the 64th bit; read whole, `sequence_start` sent as
2^64 (ten bytes, its low 64 bits zero) was a start to the proxy and no start to the upstream: a request going on with
a sequence started with health data was read as one starting it anew, so it carried none of the sequence's labels
and reached the model, which answered it from that data, for any purpose. A `sequence_id` so written named another
sequence than the upstream's (one the proxy had not seen: `scan:truncated`, not the labels it carried)."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton

from proxy.protocols.oip_grpc import read_infer_request, sequence_key
from tests.protocols.test_oip_grpc import infer_request
from tests.test_oip_sequences import CONFIG

INFER = "/inference.GRPCInferenceService/ModelInfer"
TENTH = b"\x80" * 9  # a varint's first nine bytes, each with its continuation bit: the value is in the tenth


def entry(name: str, parameter: bytes) -> bytes:
    """A ModelInferRequest `parameters` map entry (field 4), its InferParameter as given (short: one-byte lengths)."""
    body = b"\x0a" + bytes([len(name)]) + name.encode() + b"\x12" + bytes([len(parameter)]) + parameter
    return b"\x22" + bytes([len(body)]) + body


def request(sequence_id: bytes, *more: bytes) -> bytes:
    """An `echo` request of one BYTES element, its `sequence_id` the InferParameter given, with `more` entries."""
    built = infer_request(model_name="echo")
    built.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"and the dose?")
    data: bytes = built.SerializeToString()
    return data + entry("sequence_id", sequence_id) + b"".join(more)


@pytest.mark.parametrize(
    ("sequence_id", "start"),
    [
        (b"\x10\x07", b"\x08" + TENTH + b"\x02"),  # bool_param 2^64: false to protobuf
        (b"\x10\x07", b"\x08" + TENTH + b"\x03"),  # 2^64 + 2^63: true
        (b"\x10\x85" + b"\x80" * 8 + b"\x03", b"\x08\x00"),  # int64_param 2^64 + 2^63 + 5: -(2^63) + 5
        (b"\x10\x87" + b"\x80" * 8 + b"\x7f", b"\x08\x01"),  # int64_param 127 * 2^63 + 7: -(2^63) + 7
        (b"\x28\x87" + b"\x80" * 8 + b"\x02", b"\x08\x00"),  # uint64_param 2^64 + 7: 7
    ],
    ids=["start-2^64", "start-2^64+2^63", "int64", "int64-127", "uint64"],
)
def test_a_parameter_number_is_its_low_64_bits_as_for_protobuf(sequence_id: bytes, start: bytes) -> None:
    data = request(sequence_id, entry("sequence_start", start))
    parsed = infer_request()
    parsed.ParseFromString(data)  # what the upstream reads
    given = parsed.parameters["sequence_id"]
    number = given.int64_param if given.WhichOneof("parameter_choice") == "int64_param" else given.uint64_param
    read, starts = read_infer_request(data), parsed.parameters["sequence_start"].bool_param
    assert (read.sequence, read.starts) == (sequence_key("echo", number), starts)


def test_a_request_going_on_with_a_health_sequence_is_not_read_as_starting_it(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    proxy = make_proxy(CONFIG, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    client = triton.InferenceServerClient(proxy.grpc)
    text = triton.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"patient 7: insulin dose 12u"], dtype=np.object_))
    labelled = {"x-data-labels": "health", "x-purpose": "care"}
    client.infer("echo", [text], sequence_id=7, sequence_start=True, headers=labelled)  # the sequence starts
    going_on = request(b"\x10\x07", entry("sequence_start", b"\x08" + TENTH + b"\x02"))
    parsed = infer_request()
    parsed.ParseFromString(going_on)
    assert not parsed.parameters["sequence_start"].bool_param  # to the model: sequence 7 goes on, its state kept
    with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(INFER)(going_on, metadata=(("x-purpose", "ads"),), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    assert "health" in (caught.value.details() or "")
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == ["echo"]  # it never reached it
