"""What reading an OIP gRPC ModelInfer request or reply costs the event loop: counted in lines of Python run
in the adapter (`python_lines`), never timed. Many small tensors are read in half the Python the walker
took field by field; runs of numbers (unpacked contents, unknown numeric fields) in a constant amount of
it, in C; `data_labels` in many map entries in linear work (a tuple grown entry by entry copied 2 * 10^8
labels for 20,000 of them). Skipping in C still checks what it skips: what the walker refused, it refuses
with the same error."""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Any

import pytest

import proxy.protocols.oip_grpc as oip_grpc
from proxy.errors import InvalidRequest
from proxy.flow import Outcome
from proxy.protocols.oip import labels_parameter
from proxy.protocols.oip_grpc import ReplyObserver, read_infer_request
from tests.protocols.test_oip_grpc import EMAIL, PB
from tests.test_scan_cost import python_lines

# they count or bound what functions run by patching them: with the modules interpreted (tests/conftest.py)
pytestmark = pytest.mark.interpreted

SOURCE = oip_grpc.__file__
TENSORS = 4096


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def small_tensors(message: str, raw: bool = False) -> Any:
    """`TENSORS` FP32 tensors of one number each, as a client batching many small inputs sends them."""
    built = PB[message](model_name="m")
    tensors = built.inputs if message == "ModelInferRequest" else built.outputs
    for index in range(TENSORS):
        tensor = tensors.add(name=f"in{index}", datatype="FP32", shape=[1])
        if raw:
            (built.raw_input_contents if message == "ModelInferRequest" else built.raw_output_contents).append(
                struct.pack("<f", index)
            )
        else:
            tensor.contents.fp32_contents.append(float(index))
    return built


def read_reply(data: bytes) -> Outcome:
    outcome = Outcome(started_ns=0)
    observer = ReplyObserver(outcome, EMAIL, False)
    observer.body(data)
    observer.finish()
    return outcome


@pytest.mark.parametrize(
    ("message", "raw"), [("ModelInferRequest", False), ("ModelInferRequest", True), ("ModelInferResponse", False)]
)
def test_a_small_tensor_costs_a_bounded_amount_of_python(message: str, raw: bool) -> None:
    """25-27 bytes a tensor: the walker took 121-124 lines of Python for each, 63-71 now (a 64 MiB request
    of them held the event loop for seconds)."""
    built = small_tensors(message, raw)
    data = built.SerializeToString()
    if message == "ModelInferRequest":
        read = read_infer_request(data)
        lines = python_lines(lambda: read_infer_request(data), SOURCE)
        contents = built.raw_input_contents if raw else [tensor.contents.SerializeToString() for tensor in built.inputs]
        assert read.digest == "sha256:" + hashlib.sha256(b"".join(contents)).hexdigest()
    else:
        outcome = read_reply(data)
        lines = python_lines(lambda: read_reply(data), SOURCE)
        contents = [tensor.contents.SerializeToString() for tensor in built.outputs]
        assert outcome.output_digest == "sha256:" + hashlib.sha256(b"".join(contents)).hexdigest()
    assert lines / TENSORS <= 90


def test_a_small_model_infer_costs_no_more_python_than_it_did() -> None:
    """The benchmark's call (one FP32 tensor, 16 bytes of raw contents) and its reply: 158 and 195 lines
    before, 111 and 145 now (134 allowed the request: one more since 2026-12-04, the digest a stream's later message
    skips asked after, `digested`; three more since 2026-12-05, whether a tensor's elements were read whole, past
    `BYTES_SCANNED`: `_tensor`'s `whole`)."""
    request = (b"\x0a\x06simple" + delimited(5, b"\x0a\x02IN\x12\x04FP32\x1a\x02\x01\x04")
               + delimited(7, bytes(16)))  # fmt: skip
    tensor = delimited(1, b"OUT") + delimited(2, b"FP32") + delimited(3, bytes([1, 4]))
    reply = delimited(1, b"simple") + delimited(2, b"1") + delimited(3, b"b") + delimited(5, tensor)
    reply += delimited(6, bytes(16))
    assert read_infer_request(request).digest == "sha256:" + hashlib.sha256(bytes(16)).hexdigest()
    assert python_lines(lambda: read_infer_request(request), SOURCE) <= 134
    assert read_reply(reply).response_model == "simple:1"
    assert python_lines(lambda: read_reply(reply), SOURCE) <= 170


NUMBERS = 1 << 16
# every numeric form a run holds: varints of 1 to 10 bytes (bool, int32, int64 -1, uint64), fixed32 (fp32),
# fixed64 (fp64), unknown fields with 2-, 3- and 5-byte tags (the largest field number protobuf allows)
UNPACKED = {
    "bool_contents": tag(1, 0) + b"\x01",
    "int_contents": tag(2, 0) + varint(300),
    "int64_contents -1": tag(3, 0) + varint(2**64 - 1),
    "uint64_contents": tag(5, 0) + varint(2**40),
    "fp32_contents": tag(6, 5) + struct.pack("<f", 1.5),
    "fp64_contents": tag(7, 1) + struct.pack("<d", 1.5),
    "unknown field 16": tag(16, 0) + b"\x07",
    "unknown field 2^14": tag(1 << 14, 5) + bytes(4),
    "unknown field 2^29 - 1": tag((1 << 29) - 1, 1) + bytes(8),
}


@pytest.mark.parametrize("name", UNPACKED)
def test_unpacked_numbers_are_skipped_in_c(name: str) -> None:
    """A tensor's contents as 65,536 unpacked numbers (a serializer may send repeated numbers unpacked;
    so may a caller wanting to stall the proxy), then a string: read in under 400 lines of Python however
    many numbers there are, where the walker took each in Python (about 19 lines each). The run is still
    checked, and the string after it still read and scanned."""
    contents = UNPACKED[name] * NUMBERS + delimited(8, b"mail ana@example.org")
    data = b"\x0a\x01m" + delimited(5, delimited(2, b"INT32") + delimited(5, contents))
    read = read_infer_request(data)
    assert read.texts == ("mail ana@example.org",)
    assert read.digest == "sha256:" + hashlib.sha256(contents).hexdigest()
    assert python_lines(lambda: read_infer_request(data), SOURCE) < 400
    reply = b"\x0a\x01m" + delimited(5, delimited(5, contents))
    assert read_reply(reply).output_digest == read.digest
    assert python_lines(lambda: read_reply(reply), SOURCE) < 400


def test_unknown_numeric_fields_around_the_message_are_skipped_in_c() -> None:
    run = (tag(3, 0) + b"\x01" + tag(20, 5) + bytes(4)) * NUMBERS
    data = run + b"\x0a\x01m" + run + delimited(5, delimited(2, b"BYTES") + run) + run + delimited(7, b"")
    read = read_infer_request(data)
    assert (read.model, read.texts, read.digest) == ("m", (), "sha256:" + hashlib.sha256(b"").hexdigest())
    assert python_lines(lambda: read_infer_request(data), SOURCE) < 400


RUN = tag(2, 0) + b"\x01"


@pytest.mark.parametrize(
    ("after", "error"),
    [
        (tag(2, 0), "truncated varint"),
        (tag(2, 0) + b"\xff" * 10 + b"\x01", "varint too long"),
        (tag(6, 5) + b"\x00\x00", "truncated fixed-width field"),
        (tag(7, 1) + bytes(7), "truncated fixed-width field"),
        (b"\x00\x01", "field number 0"),
        (b"\x90\x00\x01", "a field tag in a form protobuf parsers read differently"),  # field 2 in two bytes
        (b"\x90\x80\x80\x80\x10\x01", "a field tag in a form protobuf parsers read differently"),  # past 2^29
        (tag(2, 4), "unsupported wire type 4"),
        (tag(2, 3), "a group without its end"),
        (tag(2, 2) + b"\x05ab", "truncated length-delimited field"),
    ],
)
def test_a_run_of_numbers_ends_where_the_walker_would_refuse_the_message(after: bytes, error: str) -> None:
    """What the walker refuses after a run, whatever it is, it refuses with its own error: a run in C stops
    before any field not in the one form every protobuf parser reads alike."""
    for contents in (RUN * 1000 + after, after):
        data = b"\x0a\x01m" + delimited(5, delimited(5, contents))
        with pytest.raises(InvalidRequest, match=re.escape(f"not a valid protobuf message: {error}")):
            read_infer_request(data)


class Concatenated(tuple[str, ...]):
    """`labels_parameter`'s labels, counting those copied whenever a tuple is made of them and another
    tuple's (a list extended by them is left to the list)."""

    copied = 0

    def __add__(self, other: Any) -> Any:
        if not isinstance(other, tuple):
            return NotImplemented
        Concatenated.copied += len(self) + len(other)
        return tuple(self) + tuple(other)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, tuple):
            return NotImplemented
        Concatenated.copied += len(self) + len(other)
        return tuple(other) + tuple(self)


def test_labels_in_many_map_entries_are_read_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """`data_labels` in 20,000 map entries (concatenated messages merge: each entry is read): each label
    copied a bounded number of times, not once for every entry after it (2 * 10^8 copies; 64 MiB of them
    would have held the event loop for hours)."""
    entries = 20_000
    monkeypatch.setattr(oip_grpc, "labels_parameter", lambda text: Concatenated(labels_parameter(text)))
    Concatenated.copied = 0
    entry = delimited(4, delimited(1, b"data_labels") + delimited(2, delimited(3, b"campaign-7")))
    read = read_infer_request(b"\x0a\x01m" + entry * entries)
    assert read.labels == ("campaign-7",) * entries
    assert Concatenated.copied <= 2 * entries
