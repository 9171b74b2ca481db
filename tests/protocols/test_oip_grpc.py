"""OIP v2 gRPC wire reader without a socket, on bytes built with the project's generated messages.

The generated module registers `inference.*` in protobuf's default pool, where tritonclient (imported by
tests/transport/test_grpc.py in this same pytest process) registers its own copy: importing both fails.
So the messages here come from the generated module's own serialized descriptor, loaded into a private
pool; the wire format is the same and the default pool is never touched.
"""

from __future__ import annotations

import ast
import hashlib
import struct
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

import proxy.oip
from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome
from proxy.protocols.oip import labels_parameter
from proxy.protocols.oip_grpc import (
    ADAPTER,
    MODEL_INFER,
    MODEL_STREAM_INFER,
    ReplyObserver,
    WireError,
    encode_model_metadata_request,
    fields,
    read_infer_request,
    read_model_metadata,
    read_model_name,
)


def no_header(name: str) -> str | None:
    """A request or reply without headers."""
    return None


def _messages() -> dict[str, Any]:
    source = Path(proxy.oip.__file__).with_name("grpc_predict_v2_pb2.py").read_text()
    serialized = next(
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "AddSerializedFile"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(serialized)
    names = ("ModelInferRequest", "ModelInferResponse", "ModelStreamInferResponse", "ModelMetadataRequest",
             "ModelMetadataResponse", "InferParameter", "ModelReadyResponse")  # fmt: skip
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}")) for name in names}


PB = _messages()
EMAIL = Detectors([DetectorSpec("email")])


def simple_infer(
    target: str, version: str = "", model: str = "simple", metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[object, str]:
    """A ModelInfer of model `simple` (two INT32 inputs), or of `model` named so, through `target` (host:port), with
    `metadata` (`x-purpose`): the grpc status code it ends with, and its details."""
    import grpc

    request = PB["ModelInferRequest"](model_name=model, model_version=version)
    for name in ("A", "B"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 1]).contents.int_contents.append(1)
    with grpc.insecure_channel(target) as channel:
        try:
            channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
                request.SerializeToString(), metadata=metadata, timeout=10
            )
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def sha(*parts: bytes) -> str:
    return "sha256:" + hashlib.sha256(b"".join(parts)).hexdigest()


def raw_bytes(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def infer_request(**fields_: Any) -> Any:
    return PB["ModelInferRequest"](**fields_)


def as_tuples(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    return [(n, w, bytes(v) if isinstance(v, memoryview) else v) for n, w, v in fields(memoryview(buf))]


# -- the wire walker --------------------------------------------------------------------------------


def test_fields_of_a_message() -> None:
    data = PB["ModelMetadataRequest"](name="iris", version="2").SerializeToString()
    assert as_tuples(data) == [(1, 2, b"iris"), (2, 2, b"2")]
    assert as_tuples(PB["ModelReadyResponse"](ready=True).SerializeToString()) == [(1, 0, 1)]
    assert as_tuples(b"") == []


def test_fields_reads_varints_and_skips_fixed_width() -> None:
    assert as_tuples(PB["InferParameter"](int64_param=300).SerializeToString()) == [(2, 0, 300)]
    assert as_tuples(PB["InferParameter"](int64_param=-1).SerializeToString()) == [(2, 0, 2**64 - 1)]
    double = PB["InferParameter"](double_param=1.5).SerializeToString() + b"\x08\x01"  # then bool_param
    assert [(n, w) for n, w, _ in fields(memoryview(double))] == [(4, 1), (1, 0)]
    fixed32 = b"\x0d\x00\x00\x80\x3f\x10\x07"  # field 1 fixed32, then field 2 varint 7
    assert [(n, w) for n, w, _ in fields(memoryview(fixed32))] == [(1, 5), (2, 0)]
    assert as_tuples(fixed32)[1] == (2, 0, 7)


def test_fields_slices_without_copying() -> None:
    data = PB["ModelMetadataRequest"](name="x" * 1000).SerializeToString()
    buf = memoryview(data)
    ((_, _, value),) = list(fields(buf))
    assert isinstance(value, memoryview) and value.obj is data and len(value) == 1000


def test_a_group_is_skipped_as_protobuf_skips_an_unknown_one() -> None:
    nested = b"\x0b\x08\x01\x13\x0a\x01y\x14\x0c"  # group 1 { varint, group 2 { bytes } }
    assert as_tuples(nested + b"\x0a\x01x") == [(1, 2, b"x")]
    parsed = infer_request()
    parsed.ParseFromString(nested + b"\x0a\x01x")
    assert parsed.model_name == "x"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x08", "truncated varint"),
        (b"\x08\xff", "truncated varint"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "varint too long"),
        (b"\x0a\x05abc", "truncated length-delimited field"),
        (b"\x0a", "truncated varint"),
        (b"\x09\x00\x00", "truncated fixed-width field"),
        (b"\x0d\x00", "truncated fixed-width field"),
        (b"\x0b", "a group without its end"),
        (b"\x0b\x14", "end-group of another group"),
        (b"\x0c", "unsupported wire type 4"),
        (b"\x0e", "unsupported wire type 6"),
        (b"\x0f", "unsupported wire type 7"),
    ],
)
def test_fields_of_broken_bytes(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        list(fields(memoryview(data)))


HIDDEN = b"\x0arestricted"  # a model_name field's length and value, after one of the tags below


@pytest.mark.parametrize(
    "tag",
    [
        b"\x8a\x80\x80\x80\x10",  # field 1 to C++ protobuf (it keeps a tag's low 32 bits), 2^29+1 when read whole
        b"\x8a\x80\x80\x80\x80\x00",  # six bytes
        b"\x8a\x00",  # field 1 in two bytes: an unknown field to pure-Python protobuf (it looks tags up by bytes)
        b"\xfa\xff\xff\xff\x1f",  # field number 2^30 - 1: past protobuf's largest (2^29 - 1)
    ],
)
def test_a_tag_protobuf_parsers_read_differently_is_refused(tag: bytes) -> None:
    """Otherwise the upstream's parser and the proxy read different models or tensors: `echo` here, and
    to Triton's C++ parser `restricted`, a model the caller may not use."""
    message = b"\x0a\x04echo" + tag + HIDDEN
    with pytest.raises(WireError, match="a field tag in a form protobuf parsers read differently"):
        list(fields(memoryview(message)))
    with pytest.raises(InvalidRequest, match="not a valid protobuf message"):
        read_infer_request(message)


def test_the_largest_field_number_and_long_lengths_are_read() -> None:
    largest = b"\xfa\xff\xff\xff\x0f"  # field 2^29 - 1, wire type 2, in five bytes
    assert as_tuples(largest + b"\x01x") == [((1 << 29) - 1, 2, b"x")]
    long_value = b"x" * 200  # a two-byte length
    assert as_tuples(b"\x0a\xc8\x01" + long_value) == [(1, 2, long_value)]
    with pytest.raises(WireError, match="a field length over protobuf's limit"):
        list(fields(memoryview(b"\x0a\x80\x80\x80\x80\x08")))  # 2^31


def test_tensors_in_shared_memory_make_the_request_opaque() -> None:
    """Triton's shared-memory extension: the tensor's data is in a region the proxy cannot read, so the
    call is opaque (policy.passthrough decides), and has no digest (nothing was read to digest)."""
    message = infer_request(model_name="echo")
    tensor = message.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    tensor.parameters["shared_memory_region"].string_param = "r0"
    tensor.parameters["shared_memory_byte_size"].int64_param = 64
    request = read_infer_request(message.SerializeToString())
    assert request.opaque and request.digest is None and request.texts == ()
    output_only = full_request()
    output_only.outputs[0].parameters["shared_memory_region"].string_param = "out"
    assert read_infer_request(output_only.SerializeToString()).opaque
    assert not read_infer_request(full_request().SerializeToString()).opaque


# -- ModelInferRequest ------------------------------------------------------------------------------


def full_request() -> Any:
    request = infer_request(model_name="iris", model_version="3", id="req-1")
    request.parameters["data_labels"].string_param = "campaign-7, health"
    request.parameters["priority"].int64_param = 2
    text = request.inputs.add(name="TEXT", datatype="BYTES", shape=[2])
    text.contents.bytes_contents.extend([b"write to ana@example.org", "wörld".encode()])
    numbers = request.inputs.add(name="X", datatype="FP32", shape=[1, 2])
    numbers.contents.fp32_contents.extend([1.5, 2.5])
    request.outputs.add(name="Y")
    return request


def test_read_infer_request() -> None:
    message = full_request()
    request = read_infer_request(message.SerializeToString())
    assert (request.model, request.version, request.operation, request.stream) == ("iris", "3", "infer", False)
    assert request.labels == ("campaign-7", "health")
    # the id too: MLServer hands it the runtime; and the labels as sent, which it hands it as well
    assert request.texts == ("req-1", "campaign-7, health", "write to ana@example.org", "wörld")
    assert request.params == ()
    assert request.digest == sha(*(tensor.contents.SerializeToString() for tensor in message.inputs))


def test_read_infer_request_with_raw_input_contents() -> None:
    """raw_input_contents[i] belongs to inputs[i]: only BYTES inputs' raw bytes are read as text."""
    request = infer_request(model_name="echo")
    request.inputs.add(name="X", datatype="INT8", shape=[15])
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[2])
    request.inputs.add(name="MORE", datatype="BYTES", shape=[1])
    looks_like_text, text, more = raw_bytes(b"not scanned"), raw_bytes(b"hello", "é".encode()), raw_bytes(b"more")
    request.raw_input_contents.extend([looks_like_text, text, more])
    read = read_infer_request(request.SerializeToString())
    assert (read.model, read.version, read.labels) == ("echo", None, ())
    assert read.texts == ("hello", "é", "more")
    assert read.digest == sha(looks_like_text, text, more)


def test_bytes_contents_are_read_whatever_the_datatype() -> None:
    """MLServer gives the model whichever contents field is set: an INT32 tensor's bytes_contents are text
    too. Every other contents field is a number by its protobuf type, and raw contents of a numeric datatype
    are unpacked as numbers, so they hold no string."""
    request = infer_request(model_name="echo")
    request.inputs.add(name="N", datatype="INT32", shape=[1]).contents.bytes_contents.append(b"ana@example.org")
    assert read_infer_request(request.SerializeToString()).texts == ("ana@example.org",)


@pytest.mark.parametrize("raw", [False, True])
def test_base64_elements_are_scanned_decoded_too(raw: bool) -> None:
    """MLServer decodes an input its model-settings declare `content_type: base64` though the request does
    not say so (a parameter gRPC callers rarely send): elements its codec decodes are scanned decoded too."""
    elements = [b"YWxpY2VAZXhhbXBsZS5jb20=", b"YWxpY2VAZXhhbXBsZS5jb20", b"plain text"]
    request = infer_request(model_name="echo")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[3])
    if raw:
        request.raw_input_contents.append(raw_bytes(*elements))
    else:
        tensor.contents.bytes_contents.extend(elements)
    read = read_infer_request(request.SerializeToString())
    assert read.texts == ("YWxpY2VAZXhhbXBsZS5jb20=", "YWxpY2VAZXhhbXBsZS5jb20", "plain text", "alice@example.com")


@pytest.mark.parametrize("raw", [False, True])
def test_json_escaped_elements_are_scanned_unescaped_too(raw: bool) -> None:
    """A runtime that parses elements as JSON (MLServer's `pd_json`) gives the model `\\u0040` as `@`."""
    elements = [b'{"to": "alice\\u0040example.com"}', b"plain"]
    request = infer_request(model_name="echo")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[2])
    if raw:
        request.raw_input_contents.append(raw_bytes(*elements))
    else:
        tensor.contents.bytes_contents.extend(elements)
    read = read_infer_request(request.SerializeToString())
    assert read.texts == ('{"to": "alice\\u0040example.com"}', "plain", '{"to": "alice@example.com"}')


@pytest.mark.parametrize("version", ["02", "+2", " 2", "2abc", "-1", "1.0"])
def test_a_version_not_in_canonical_form_is_invalid(version: str) -> None:
    """Triton parses model_version with std::stol: each of these is a number other than what it spells."""
    with pytest.raises(InvalidRequest) as caught:
        read_infer_request(infer_request(model_name="simple", model_version=version).SerializeToString())
    assert caught.value.param == "model_version" and "(0|[1-9][0-9]*)" in caught.value.message
    for fine in ("2", "0", "v0.1.0", ""):
        message = infer_request(model_name="simple", model_version=fine).SerializeToString()
        assert read_infer_request(message).version == (fine or None)


def test_read_infer_request_labels_from_several_entries_and_lists() -> None:
    data = infer_request(model_name="m").SerializeToString()
    for value in ("a,b", " c "):
        entry = infer_request()
        entry.parameters["data_labels"].string_param = value
        data += entry.SerializeToString()  # concatenated messages merge: two map entries with one key
    assert read_infer_request(data).labels == ("a", "b", "c")


@pytest.mark.parametrize("kind", ["int64_param", "bool_param", "double_param"])
def test_data_labels_that_is_not_a_string_param_is_invalid(kind: str) -> None:
    request = infer_request(model_name="m")
    setattr(request.parameters["data_labels"], kind, 1)
    with pytest.raises(InvalidRequest) as caught:
        read_infer_request(request.SerializeToString())
    assert caught.value.message == "parameter 'data_labels' must be a string_param"


def test_missing_model_name_is_invalid() -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_infer_request(infer_request(model_version="1").SerializeToString())
    assert (caught.value.message, caught.value.param) == ("model_name is required", "model_name")
    with pytest.raises(InvalidRequest, match="model_name is required"):
        read_infer_request(b"")


def test_a_request_without_tensors_has_no_digest() -> None:
    request = read_infer_request(infer_request(model_name="m").SerializeToString())
    assert (request.texts, request.digest) == ((), None)


def test_every_truncation_is_a_request_or_an_invalid_request() -> None:
    data = full_request().SerializeToString()
    cut_inside_a_field = 0
    for length in range(len(data)):
        try:
            read_infer_request(data[:length])
        except InvalidRequest as exc:
            if exc.message.startswith("ModelInferRequest is not a valid protobuf message: truncated"):
                cut_inside_a_field += 1
            else:
                assert exc.message == "model_name is required"
    assert cut_inside_a_field > len(data) // 2


@pytest.mark.parametrize("data", [b"\xff" * 20, b"\x0b\x14", b"\x0a\xff\xff\xff\xff\x0f", b"GET / HTTP/1.1\r\n\r\n"])
def test_garbage_is_an_invalid_request(data: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not a valid protobuf message"):
        read_infer_request(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_invalid_request(data: bytes) -> None:
    try:
        request = read_infer_request(data)
    except InvalidRequest:
        return
    assert request.model


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=60), position=st.integers(0, 400))
def test_a_mangled_request_never_raises_anything_but_invalid_request(data: bytes, position: int) -> None:
    good = full_request().SerializeToString()
    position = min(position, len(good))
    try:
        read_infer_request(good[:position] + data + good[position:])
    except InvalidRequest:
        pass


def test_field_order_does_not_change_what_is_scanned() -> None:
    inputs = infer_request(model_name="echo")
    inputs.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    raw = infer_request()
    raw.raw_input_contents.append(raw_bytes(b"write to ana@example.org"))
    in_order = inputs.SerializeToString() + raw.SerializeToString()
    reordered = raw.SerializeToString() + inputs.SerializeToString()
    assert PB["ModelInferRequest"].FromString(reordered) == PB["ModelInferRequest"].FromString(in_order)
    assert read_infer_request(in_order).texts == ("write to ana@example.org",)
    assert read_infer_request(reordered).texts == ("write to ana@example.org",)


def test_bytes_tensors_that_are_not_utf8_are_scanned_with_replacement_characters() -> None:
    """BYTES elements are bytes (an image, a tokenizer's ids): invalid UTF-8 is no error. The request
    reads, each bad byte scans as U+FFFD so the text around it is still scanned, and the digest covers
    the bytes as sent, not their decoding."""
    request = infer_request(model_name="echo")
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend([b"\xff\xfe write to ana@example.org \xc3", b"\x80"])
    read = read_infer_request(request.SerializeToString())
    # each also as Latin-1, as a model may decode it, read beside the texts (`oip.not_utf8_element`)
    assert read.texts == ("\ufffd\ufffd write to ana@example.org \ufffd", "\ufffd")
    assert read.decoded == ("\xff\xfe write to ana@example.org \xc3", "\x80")
    assert EMAIL.scan_all(read.texts) == frozenset({"pii:email"})
    assert read.digest == sha(tensor.contents.SerializeToString())
    request = infer_request(model_name="echo")
    request.inputs.add(name="EMPTY", datatype="BYTES", shape=[0])
    request.inputs.add(name="RAW", datatype="BYTES", shape=[1])
    raw = raw_bytes(b"mail bo@example.org\xe2\x82")
    request.raw_input_contents.extend([b"", raw])
    read = read_infer_request(request.SerializeToString())
    assert read.texts == ("mail bo@example.org\ufffd",)
    assert read.decoded == ("mail bo@example.org\xe2\x82",)
    assert EMAIL.scan_all(read.texts) == frozenset({"pii:email"})
    assert read.digest == sha(b"", raw)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x02\xff\xfe",  # model_name
        b"\x0a\x01m\x12\x01\xc3",  # model_version
        b"\x0a\x01m\x2a\x04\x12\x02\xff\xfe",  # inputs[0].datatype
        b"\x0a\x01m\x22\x06\x0a\x04\xff\xfe\xfd\xfc",  # a parameter's key
    ],
)
def test_a_string_field_that_is_not_utf8_is_an_invalid_request(data: bytes) -> None:
    """protobuf `string` fields, unlike BYTES contents, must be UTF-8: the upstream's parser refuses them,
    so the proxy refuses the call instead of deciding on a message the upstream reads differently."""
    with pytest.raises(DecodeError):
        PB["ModelInferRequest"].FromString(data)
    with pytest.raises(InvalidRequest, match="not a valid protobuf message: a string field is not valid UTF-8"):
        read_infer_request(data)


# -- replies ----------------------------------------------------------------------------------------


def infer_response() -> Any:
    response = PB["ModelInferResponse"](model_name="echo", model_version="1", id="r-9")
    text = response.outputs.add(name="TEXT", datatype="BYTES", shape=[1])
    text.contents.bytes_contents.append(b"mail ana@example.org")
    return response


def observer(capture: bool = True) -> tuple[ReplyObserver, Outcome]:
    outcome = Outcome(started_ns=0)
    target = ADAPTER.match("POST", MODEL_STREAM_INFER)
    assert target is not None
    obs = ADAPTER.observer(target, outcome, EMAIL, capture)
    assert obs.ended is False
    return obs, outcome


def test_stream_message() -> None:
    response = infer_response()
    obs, outcome = observer()
    obs.head(0, no_header)
    error = obs.stream_message(PB["ModelStreamInferResponse"](infer_response=response).SerializeToString())
    assert error is None
    obs.finish()
    assert (outcome.response_model, outcome.response_id) == ("echo:1", "r-9")
    assert outcome.extra == {"lineage.model.version": "1"}
    assert outcome.output_digest == sha(response.outputs[0].contents.SerializeToString())
    assert outcome.output_detected == frozenset({"pii:email"})
    assert outcome.content == ("mail [pii:email]",)
    assert obs.ended is False


def test_stream_messages_with_an_error_and_raw_outputs() -> None:
    obs, outcome = observer()
    failed = PB["ModelStreamInferResponse"](error_message="model failed: out of memory").SerializeToString()
    assert obs.stream_message(failed) == "model failed: out of memory"
    response = PB["ModelInferResponse"](model_name="echo", id="r-2")
    response.outputs.add(name="Y", datatype="INT32", shape=[1])
    response.outputs.add(name="TEXT", datatype="BYTES", shape=[2])
    ints, text = struct.pack("<i", 7), raw_bytes(b"one", b"two")
    response.raw_output_contents.extend([ints, text])
    obs.chunk(PB["ModelStreamInferResponse"](infer_response=response).SerializeToString())  # chunk is stream_message
    obs.finish()
    assert (outcome.response_model, outcome.response_id, outcome.extra) == (
        "echo",
        "r-2",
        {"lineage.model.version": ""},
    )
    assert outcome.output_digest == sha(ints, text)
    assert outcome.content == ("onetwo",)


def test_unary_reply_body() -> None:
    response = infer_response()
    obs, outcome = observer(capture=False)
    obs.body(response.SerializeToString())
    obs.finish()
    assert (outcome.response_model, outcome.content) == ("echo:1", ())
    assert outcome.output_digest == sha(response.outputs[0].contents.SerializeToString())


def test_reply_without_tensors_has_no_digest() -> None:
    obs, outcome = observer()
    obs.body(PB["ModelInferResponse"](model_name="echo").SerializeToString())
    obs.finish()
    assert (outcome.response_model, outcome.output_digest) == ("echo", None)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_observer_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    obs, outcome = observer()
    obs.body(data)
    error = obs.stream_message(data)
    assert error is None or isinstance(error, str)
    obs.finish()


# -- metadata ---------------------------------------------------------------------------------------


def test_read_model_metadata() -> None:
    response = PB["ModelMetadataResponse"](name="iris", versions=["1", "2"], platform="sklearn")
    tensor = response.inputs.add(name="predict", datatype="FP32")
    tensor.shape.extend([-1, 4])
    assert read_model_metadata(response.SerializeToString()) == {
        "name": "iris",
        "versions": ["1", "2"],
        "platform": "sklearn",
    }
    assert read_model_metadata(b"") == {"name": "", "versions": [], "platform": ""}


@pytest.mark.parametrize("name", ["iris", "", "modèle/ü", "m" * 200, "x" * 20_000])
def test_encode_model_metadata_request_round_trips(name: str) -> None:
    encoded = encode_model_metadata_request(name)
    parsed = PB["ModelMetadataRequest"].FromString(encoded)
    assert (parsed.name, parsed.version) == (name, "")
    assert encoded == PB["ModelMetadataRequest"](name=name).SerializeToString()
    assert read_model_name(encoded) == name


@settings(max_examples=100, deadline=None)
@given(name=st.text(max_size=300))
def test_encode_model_metadata_request_round_trips_any_name(name: str) -> None:
    encoded = encode_model_metadata_request(name)
    assert PB["ModelMetadataRequest"].FromString(encoded).name == name
    assert encoded == PB["ModelMetadataRequest"](name=name).SerializeToString()


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=100))
def test_read_model_name_never_raises(data: bytes) -> None:
    assert isinstance(read_model_name(data), str)


def test_read_model_name_takes_the_last_name_as_protobuf_does() -> None:
    twice = (
        PB["ModelMetadataRequest"](name="echo").SerializeToString()
        + PB["ModelMetadataRequest"](name="restricted").SerializeToString()
    )
    assert PB["ModelMetadataRequest"].FromString(twice).name == read_model_name(twice) == "restricted"


# -- the adapter ------------------------------------------------------------------------------------


def test_adapter_matches_infer_rpcs() -> None:
    for path in (MODEL_INFER, MODEL_STREAM_INFER):
        target = ADAPTER.match("POST", path)
        assert target is not None and (target.operation, target.model) == ("infer", "")
    assert ADAPTER.match("POST", "/inference.GRPCInferenceService/NoSuchMethod") is None
    assert ADAPTER.match("POST", "/other.Service/ModelInfer") is None


def test_adapter_reads_an_infer_request() -> None:
    target = ADAPTER.match("POST", MODEL_INFER)
    assert target is not None
    request = ADAPTER.read(target, full_request().SerializeToString(), no_header)
    assert (request.model, request.version, request.labels) == ("iris", "3", ("campaign-7", "health"))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40), position=st.integers(0, 400), cut=st.integers(0, 400))
def test_whatever_protobuf_reads_from_a_message_the_proxy_reads_too(data: bytes, position: int, cut: int) -> None:
    """The message the proxy decides on must be the one the upstream reads: on mangled bytes that
    protobuf's own parser accepts, the wire walker names the same model and version, and sees at least
    the labels and the BYTES strings protobuf sees (protobuf keeps a map key's last entry; the proxy
    unites them all). What protobuf refuses, the upstream refuses too, whatever the proxy made of it."""
    good = full_request().SerializeToString()
    position = min(position, len(good))
    mangled = (good[:position] + data + good[position:])[: max(cut, 1) + len(good) // 2]
    parsed = infer_request()
    try:
        parsed.ParseFromString(mangled)
    except Exception:  # google.protobuf.message.DecodeError: the upstream would refuse the call
        return
    if not parsed.model_name:
        with pytest.raises(InvalidRequest, match="model_name"):
            read_infer_request(mangled)
        return
    try:
        request = read_infer_request(mangled)
    except InvalidRequest as exc:  # refused by the proxy's own rules, which protobuf does not know:
        # a data_labels parameter that is not a string_param, BYTES contents that are not whole elements, a
        # tag this parser (upb) reads but others read differently (test_a_tag_protobuf_parsers_read_differently),
        # a model version Triton reads as another number (test_a_version_not_in_canonical_form_is_invalid)
        reasons = ("data_labels", "BYTES tensor", "protobuf parsers read differently", "not in canonical form")
        assert any(why in str(exc) for why in reasons), exc
        return
    assert (request.model, request.version or "") == (parsed.model_name, parsed.model_version)
    if "data_labels" in parsed.parameters:
        assert set(labels_parameter(parsed.parameters["data_labels"].string_param)) <= set(request.labels)
    for tensor in parsed.inputs:
        for item in tensor.contents.bytes_contents:
            assert item.decode("utf-8", "replace") in request.texts


def test_text_in_parameters_is_scanned_but_the_protocols_own() -> None:
    """Triton's Python backend reads its request's parameters (`request.parameters()`), MLServer runtimes
    theirs: a string parameter reached the model unscanned."""
    request = infer_request(model_name="m")
    request.parameters["note"].string_param = "mail ana@example.org"
    request.parameters["data_labels"].string_param = "campaign-7"
    tensor = request.inputs.add(name="X", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.0)
    tensor.parameters["hint"].string_param = "call +1 415 555 0100"
    tensor.parameters["content_type"].string_param = "np"
    # a tensor's `content_type` too: MLServer hands the runtime its `parameters` whole (a codec's name or not)
    # and the labels as sent, which MLServer hands it too (the request's map in the order protobuf writes it: not fixed)
    texts = read_infer_request(request.SerializeToString()).texts
    assert sorted(texts[:2]) == ["campaign-7", "mail ana@example.org"]
    assert texts[2:] == ("call +1 415 555 0100", "np")
