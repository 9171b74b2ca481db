"""Two of protobuf's merging rules the OIP gRPC reader did not follow (review of the oneof fix, helper revhuntgrpc).

A field whose wire type is not its declared one is an unknown field to protobuf, which keeps what came before it: a
`sequence_id` of `{int64_param: 7}` followed by a field 4 (`double_param`) written as a varint is sequence 7 to
Triton, but the proxy read any field 4 as the double and so no sequence: a request starting sequence 7 with health
data left the sequence no labels, and a request going on with it reached the model, which answers it from that state,
for a purpose the health zone forbids.

A non-repeated message field given twice is one message, the two merged (as their bytes together parse): a
ModelStreamInferResponse whose `infer_response` comes in two parts is one reply to Triton's client, its raw contents
matched to the outputs of both parts by their order. The proxy read each part alone, so a BYTES output in the first
part and its raw contents in the second were never matched up, and their text passed unread (no `pii:phone`)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.oip_grpc import ReplyObserver, read_infer_request, sequence_key
from tests.harness import ProxyHandle
from tests.protocols.test_oip_grpc import PB
from tests.test_oip_grpc_varint_values import INFER, entry, request
from tests.test_oip_sequences import CONFIG

# field 4 (double_param) in the other wire types: unknown fields to protobuf, after the member it keeps
NOT_DOUBLES = {"varint": b"\x20\x01", "fixed32": b"\x25\x00\x00\x00\x00", "bytes": b"\x22\x00"}


@pytest.mark.parametrize("form", list(NOT_DOUBLES))
def test_a_field_4_not_a_double_leaves_the_sequence_as_protobuf_reads_it(form: str) -> None:
    data = request(b"\x10\x07" + NOT_DOUBLES[form], entry("sequence_start", b"\x08\x01" + NOT_DOUBLES[form]))
    parsed = PB["ModelInferRequest"].FromString(data)  # what the upstream reads
    assert parsed.parameters["sequence_id"].int64_param == 7 and parsed.parameters["sequence_start"].bool_param
    read = read_infer_request(data)
    assert (read.sequence, read.starts) == (sequence_key("echo", 7), True)


def test_a_double_still_names_no_sequence() -> None:
    data = request(b"\x10\x07" + b"\x21" + struct.pack("<d", 7.0))
    assert PB["ModelInferRequest"].FromString(data).parameters["sequence_id"].WhichOneof("parameter_choice") == (
        "double_param"
    )
    assert read_infer_request(data).sequence is None


def test_a_sequence_started_with_a_field_4_varint_carries_its_labels(
    faithful: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    address, log = faithful
    proxy = make_proxy(CONFIG, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    labelled = {"x-data-labels": "health", "x-purpose": "care"}
    starting = request(b"\x10\x07" + NOT_DOUBLES["varint"], entry("sequence_start", b"\x08\x01"))
    with grpc.insecure_channel(proxy.grpc) as channel:  # sequence 7 starts, with health data (allowed: care)
        channel.unary_unary(INFER)(starting, metadata=tuple(labelled.items()), timeout=10)
    client = triton.InferenceServerClient(proxy.grpc)
    text = triton.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"and the dose?"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as caught:  # sequence 7 goes on, for ads
        client.infer("echo", [text], sequence_id=7, headers={"x-purpose": "ads"})
    assert caught.value.status() == "StatusCode.PERMISSION_DENIED", caught.value.message()
    assert "health" in (caught.value.message() or "")
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == ["echo"]  # only the first


def _field(number: int, value: bytes) -> bytes:
    return bytes([number << 3 | 2, len(value)]) + value


def test_a_stream_reply_in_two_parts_is_read_as_one() -> None:
    element = b"call 202-555-0123"
    first = (
        _field(1, b"echo")
        + _field(5, _field(1, b"a") + _field(2, b"FP32") + _field(3, b"\x01"))
        + _field(5, _field(1, b"b") + _field(2, b"BYTES") + _field(3, b"\x01"))
        + _field(6, b"\x00\x00\x80\x3f")
    )
    second = _field(6, struct.pack("<I", len(element)) + element)
    message = _field(2, first) + _field(2, second)
    reply = PB["ModelStreamInferResponse"].FromString(message).infer_response  # what Triton's client reads
    assert [output.datatype for output in reply.outputs] == ["FP32", "BYTES"]
    assert reply.raw_output_contents[1].endswith(element)
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, Detectors([DetectorSpec("phone")]), False)
    observer.model = "echo"
    assert observer.stream_message(message) is None
    observer.finish()
    assert outcome.output_detected == {"pii:phone"}
