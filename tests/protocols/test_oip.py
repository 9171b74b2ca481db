"""OIP v2 REST without a socket: paths, JSON and binary-tensor requests, labels, and the reply observer."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome
from proxy.protocols.oip import (
    ADAPTER,
    HEADER_LENGTH,
    RestReplyObserver,
    _strings,
    bytes_tensor_strings,
    labels_parameter,
    read_rest_request,
    split_path,
)

EMAIL = Detectors([DetectorSpec("email")])


def no_header(name: str) -> str | None:
    """A request or reply without headers."""
    return None


def sha(*parts: bytes) -> str:
    return "sha256:" + hashlib.sha256(b"".join(parts)).hexdigest()


def raw_bytes(*items: bytes) -> bytes:
    """A BYTES tensor in the binary format: each element a 4-byte little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def nested(depth: int, leaf: Any) -> Any:
    """`leaf` inside `depth` lists, built without recursion."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# -- paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/v2/models/iris/versions/3/infer", ("iris", "3", "infer")),
        ("/v2/models/iris/infer", ("iris", None, "infer")),
        ("/v2/models/iris", ("iris", None, "")),
        ("/v2/models/iris/ready", ("iris", None, "ready")),
        ("/v2/models/iris/versions/3", ("iris", "3", "")),
        ("/v2/models/iris/versions/3/ready", ("iris", "3", "ready")),
        ("/v2/models/iris/versions", ("iris", None, "versions")),
        ("/v2/models/iris/infer/extra", ("iris", None, "infer/extra")),
        ("/v2/models/", None),
        ("/v2/models//infer", None),
        ("/v2/models", None),
        ("/v2/health/ready", None),
        ("/v1/chat/completions", None),
        ("", None),
    ],
)
def test_split_path(path: str, parts: tuple[str, str | None, str] | None) -> None:
    assert split_path(path) == parts


@pytest.mark.parametrize(
    ("method", "path", "found"),
    [
        ("POST", "/v2/models/iris/versions/3/infer", ("infer", "iris", "3")),
        ("POST", "/v2/models/iris/infer", ("infer", "iris", None)),
        ("GET", "/v2/models/iris/versions/3/infer", None),
        ("POST", "/v2/models/iris/ready", None),
        ("POST", "/v2/models/iris", None),
        ("POST", "/v2/models/iris/infer/extra", None),
        ("POST", "/v1/chat/completions", None),
    ],
)
def test_adapter_match(method: str, path: str, found: tuple[str, str, str | None] | None) -> None:
    target = ADAPTER.match(method, path)
    assert (None if target is None else (target.operation, target.model, target.version)) == found


# -- JSON requests ----------------------------------------------------------------------------------

BYTES_DATA = [["write to", "ana@example.org"], ["é"]]
FP32_DATA = [5.1, 3.5, 1.4, 0.2]
REQUEST: dict[str, Any] = {
    "id": "r-1",
    "parameters": {"data_labels": "campaign-7, health", "other": 1},
    "inputs": [
        {"name": "TEXT", "shape": [3], "datatype": "BYTES", "data": BYTES_DATA},
        {"name": "X", "shape": [1, 4], "datatype": "FP32", "data": FP32_DATA},
        {"name": "NUMBERS_AS_TEXT", "shape": [1], "datatype": "INT32", "data": ["scanned all the same"]},
    ],
    "outputs": [{"name": "Y"}],
}


def test_json_request() -> None:
    request = read_rest_request("iris", "3", orjson.dumps(REQUEST), None)
    assert (request.model, request.version, request.operation, request.stream) == ("iris", "3", "infer", False)
    # an INT32 tensor's strings too: MLServer hands them to the model, whatever the datatype says
    # and a request parameter's number, as decimal text: the backend reads it; and the request's id, which MLServer
    # hands the runtime (`payload.id`); the labels as sent too, which MLServer hands it as well
    assert request.texts == (
        "write to",
        "ana@example.org",
        "é",
        "scanned all the same",
        "campaign-7, health",
        "1",
        "r-1",
    )
    assert request.labels == ("campaign-7", "health")
    assert request.params == ()
    assert request.digest == sha(*(orjson.dumps(t["data"]) for t in REQUEST["inputs"]))


def test_json_digest_covers_the_data_not_the_framing() -> None:
    reframed = (
        b'{ "outputs": [], "inputs": [ {"datatype": "BYTES", "data": [["write to", "ana@example.org"], ["\\u00e9"]],'
        b' "name": "renamed", "shape": [1, 3]}, {"data": [5.1, 3.5, 1.4, 0.2], "datatype": "FP32", "name": "X2"},'
        b' {"datatype": "INT32", "data": ["scanned all the same"]} ] }'
    )
    original = read_rest_request("iris", None, orjson.dumps(REQUEST), None)
    assert read_rest_request("iris", None, reframed, None).digest == original.digest
    changed = {**REQUEST, "inputs": [{**REQUEST["inputs"][1], "data": [5.1, 3.5, 1.4, 0.3]}]}
    assert read_rest_request("iris", None, orjson.dumps(changed), None).digest != original.digest


def test_request_without_data_has_no_digest() -> None:
    request = read_rest_request("iris", None, b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [0]}]}', None)
    assert (request.digest, request.texts, request.labels) == (None, (), ())


def test_base64_bytes_are_scanned_as_the_model_reads_them() -> None:
    """MLServer's base64 codec (`content_type: base64`): the model gets the decoded bytes, so they are what
    is scanned."""
    tensor = {"name": "t", "datatype": "BYTES", "shape": [2], "parameters": {"content_type": "base64"},
              "data": ["YWxpY2VAZXhhbXBsZS5jb20=", "dG86IGFs\naWNlQGV4YW1wbGUuY29t", "not base64"]}  # fmt: skip
    request = read_rest_request("m", None, orjson.dumps({"inputs": [tensor]}), None)
    # decoded leniently (a stray character dropped, as `b64decode` without `validate` does; MLServer's codec
    # decodes less), and as sent: a server that ignores content_type (Triton, KServe, a runtime reading `data`
    # itself) gives the model the text as sent; and its `content_type`, which MLServer hands the runtime too
    assert request.texts == ("YWxpY2VAZXhhbXBsZS5jb20=", "alice@example.com", "dG86IGFs\naWNlQGV4YW1wbGUuY29t",
                             "to: alice@example.com", "not base64", "base64")  # fmt: skip
    plain = {**tensor, "data": ["xalice@example.com"]}
    assert "xalice@example.com" in read_rest_request("m", None, orjson.dumps({"inputs": [plain]}), None).texts


def test_json_escaped_elements_are_scanned_as_a_json_reading_runtime_reads_them() -> None:
    """MLServer's `pd_json` codec parses each element as JSON: `\\u0040` is an `@` by the time the model
    has it, so the element is scanned unescaped too (and as sent)."""
    element = '{"to": "alice\\u0040example.com", "n": "\\ud83d\\ude00 \\ud800"}'
    tensor = {"name": "t", "datatype": "BYTES", "shape": [1], "data": [element]}
    request = read_rest_request("m", None, orjson.dumps({"inputs": [tensor]}), None)
    assert request.texts == (element, '{"to": "alice@example.com", "n": "\U0001f600 \\ud800"}')
    plain = {**tensor, "data": ["no escapes here"]}
    assert read_rest_request("m", None, orjson.dumps({"inputs": [plain]}), None).texts == ("no escapes here",)


def test_tensors_in_shared_memory_make_the_request_opaque() -> None:
    """Triton's shared-memory extension over REST: the data is in a region the proxy cannot read, so the
    call is opaque (policy.passthrough decides) and has no digest; an output to shared memory too."""
    shared = {"name": "T", "datatype": "BYTES", "shape": [1],
              "parameters": {"shared_memory_region": "r0", "shared_memory_byte_size": 64}}  # fmt: skip
    request = read_rest_request("m", None, orjson.dumps({"inputs": [shared]}), None)
    assert request.opaque and request.digest is None
    output = {"inputs": REQUEST["inputs"], "outputs": [{"name": "Y", "parameters": {"shared_memory_region": "o"}}]}
    assert read_rest_request("m", None, orjson.dumps(output), None).opaque
    assert not read_rest_request("m", None, orjson.dumps(REQUEST), None).opaque


def test_bytes_data_flat_scalar_and_mixed() -> None:
    inputs = [
        {"name": "A", "datatype": "BYTES", "data": "scalar"},
        {"name": "B", "datatype": "BYTES", "data": ["x", 1, None, ["y", True, 2.5]]},
    ]
    assert read_rest_request("m", None, orjson.dumps({"inputs": inputs}), None).texts == ("scalar", "x", "y")


E = "alice@example.com"


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "t", "shape": [1], "datatype": "INT32", "data": [E]},
        {"name": "t", "shape": [1], "datatype": "FP32", "data": [E], "parameters": {"content_type": "str"}},
        {"name": "t", "shape": [1, 2], "datatype": "FP64", "data": [[1.5, E]]},
        {"name": "t", "shape": [1], "datatype": "bytes", "data": [E]},  # a datatype no server has: read all the same
        {"name": "t", "shape": [1], "datatype": "BYTES", "data": [E], "parameters": {"binary_data_size": 0}},
    ],
)
def test_text_in_a_tensor_of_any_datatype_is_scanned(tensor: dict[str, Any]) -> None:
    """MLServer checks no tensor's data against its datatype and hands the strings to the model (an INT32
    tensor's, a BYTES one's beside a binary part it does not read): every string is scanned."""
    request = read_rest_request("m", None, orjson.dumps({"inputs": [tensor]}), None)
    assert E in request.texts and EMAIL.scan_all(request.texts) == {"pii:email"}


@pytest.mark.parametrize("data", [[{"x": E}], {"x": E}, [[1, {}]], {"alice@example.com": 1}])
def test_an_object_in_tensor_data_is_invalid(data: Any) -> None:
    """No tensor's data holds a JSON object, yet MLServer passes one to the model: refused, naming the tensor."""
    inputs = [{"name": "ok", "datatype": "BYTES", "data": ["a"]}, {"name": "T", "datatype": "BYTES", "data": data}]
    with pytest.raises(InvalidRequest) as caught:
        read_rest_request("m", None, orjson.dumps({"inputs": inputs}), None)
    assert caught.value.message.startswith("tensor 'T': its data holds a JSON object")
    assert caught.value.param == "data"


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_numeric_tensors_are_not_walked_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The text check of a numeric tensor is a search of the JSON the digest writes anyway, in C: an image's
    150,528 floats are never visited one by one."""
    import proxy.protocols.oip as oip

    walked: list[Any] = []
    monkeypatch.setattr(oip, "_strings", lambda data, out, tensor=None: walked.append(data) or True)
    image = {"name": "img", "datatype": "FP32", "shape": [1, 3, 224, 224], "data": [[[[0.5] * 224] * 224] * 3]}
    flags = {"name": "f", "datatype": "BOOL", "shape": [3], "data": [True, False, None]}
    request = read_rest_request("m", None, orjson.dumps({"inputs": [image, flags, REQUEST["inputs"][0]]}), None)
    assert walked == [BYTES_DATA] and request.digest is not None


@pytest.mark.parametrize(
    ("element", "decoded"),
    [
        ("YWxpY2VAZXhhbXBsZS5jb20=", "alice@example.com"),
        ("dG86IGFsaWNlQGV4YW1wbGUuY29t", "to: alice@example.com"),
        # a stray byte that is not UTF-8: read replaced, and as Latin-1 beside (`oip.not_utf8_element`, `decoded`)
        ("/2FsaWNlQGV4YW1wbGUuY29t", ("\ufffdalice@example.com", "\xffalice@example.com")),
        # binary (an image's compressed bytes): not text, not read
        ("YQXWzHavQAMl6U1YjOURvlv9u3O0N9xR7KQ5F9ekPj1bshrEabXn304XiZ1KrgrftDDw8LM2oiQu8aItJb0uUw==", None),
        ("internationalization", None),  # a word that happens to be base64, of bytes that are not text
        ("YWxpY2VAZXhhbXBsZS5jb20", None),  # unpadded: MLServer's codec (validate=True) gives the model it as sent
        ("YWxp Y2VAZXhh bXBsZS5jb20=", None),  # a character outside the alphabet: likewise
        ("YWxpY2VA\nZXhhbXBsZS5jb20=", None),
        ("YWJj", None),  # under 8 characters: 3 bytes, too short for anything the detectors find
        ("mail alice@example.com", None),
    ],
)
def test_base64_elements_are_scanned_decoded_when_no_content_type_says_so(
    element: str, decoded: str | tuple[str, ...] | None
) -> None:
    """MLServer decodes an input its model-settings declare `content_type: base64` though the request does
    not say so: an element its codec would decode is scanned decoded too, of any datatype, in JSON or binary."""
    expected = (element, decoded) if isinstance(decoded, str) else (element, *(decoded or ()))
    for tensor in ({"name": "text", "shape": [1], "datatype": "BYTES", "data": [element]},
                   {"name": "n", "shape": [1], "datatype": "INT64", "data": [[element]]}):  # fmt: skip
        read = read_rest_request("m", None, orjson.dumps({"inputs": [tensor]}), None)
        assert read.texts + read.decoded == expected
    raw = raw_bytes(element.encode())
    body, length = binary_request([{"name": "b", "datatype": "BYTES", "shape": [1],
                                    "parameters": {"binary_data_size": len(raw)}}], raw)  # fmt: skip
    read = read_rest_request("m", None, body, length)
    assert read.texts + read.decoded == expected


@pytest.mark.parametrize("version", ["02", "002", "00", "+2", "-1", " 2", "2 ", "2abc", "1.0", "0x10", "\t7"])
def test_a_version_not_in_canonical_form_is_invalid(version: str) -> None:
    """Triton reads a version with std::stol: `02`, `+2`, ` 2` and `2abc` are its version 2, which the
    proxy, matching versions as written, would check against the baseline as an unknown version."""
    target = ADAPTER.match("POST", f"/v2/models/iris/versions/{version}/infer")
    assert target is not None and target.version == version
    with pytest.raises(InvalidRequest) as caught:
        ADAPTER.read(target, orjson.dumps(REQUEST), no_header)
    assert caught.value.param == "model_version"
    assert f"model version {version!r} is not in canonical form" in caught.value.message
    assert "(0|[1-9][0-9]*)" in caught.value.message


@pytest.mark.parametrize("version", ["0", "1", "10", "9007199254740993", "v0.1.0", "latest", "v2", "\u0662"])
def test_canonical_versions_and_names_are_read(version: str) -> None:
    """Versions that are names (MLServer's `v0.1.0`) are matched as written by MLServer and refused by Triton."""
    target = ADAPTER.match("POST", f"/v2/models/iris/versions/{version}/infer")
    assert target is not None
    assert ADAPTER.read(target, orjson.dumps(REQUEST), no_header).version == version


@pytest.mark.parametrize(
    ("value", "labels"),
    [
        ("a", ("a",)),
        (" a , b,,c ,", ("a", "b", "c")),
        ("", ()),
        (["a", " b ", ""], ("a", "b")),
        ([], ()),
        (None, ()),
    ],
)
def test_data_labels_parameter(value: Any, labels: tuple[str, ...]) -> None:
    assert labels_parameter(value) == labels
    data = {"parameters": {"data_labels": value}, "inputs": []}
    assert read_rest_request("m", None, orjson.dumps(data), None).labels == labels


@pytest.mark.parametrize("value", [5, True, {"a": 1}, ["a", 1], [["a"]]])
def test_data_labels_of_the_wrong_type_are_invalid(value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_rest_request("m", None, orjson.dumps({"parameters": {"data_labels": value}, "inputs": []}), None)
    assert caught.value.message == "parameter 'data_labels' must be a string or a list of strings"
    assert caught.value.param == "data_labels"


def test_parameters_that_are_not_an_object_carry_no_labels() -> None:
    assert read_rest_request("m", None, b'{"parameters": "data_labels", "inputs": []}', None).labels == ()


@pytest.mark.parametrize(
    ("raw", "message", "param"),
    [
        (b"{", "inference request is not valid JSON", None),
        (b"", "inference request is not valid JSON", None),
        (b"[]", "inference request must be a JSON object", None),
        (b"{}", "'inputs' is required and must be a list of tensors", "inputs"),
        (b'{"inputs": {"name": "X"}}', "'inputs' is required and must be a list of tensors", "inputs"),
        (b'{"inputs": [1]}', "'inputs' is required and must be a list of tensors", "inputs"),
    ],
)
def test_malformed_json_requests(raw: bytes, message: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_rest_request("m", None, raw, None)
    assert caught.value.message.startswith(message)
    assert caught.value.param == param


def test_5000_levels_of_nesting_never_raise_recursion_error() -> None:
    out: list[str] = []
    _strings(nested(5000, "deep"), out)
    assert out == ["deep"]
    body = b'{"inputs": [{"name": "T", "datatype": "BYTES", "data": ' + b"[" * 5000 + b'"deep"' + b"]" * 5000 + b"}]}"
    with pytest.raises(InvalidRequest, match="not valid JSON"):  # beyond orjson's depth limit: said so, not a crash
        read_rest_request("m", None, body, None)


def test_data_nested_300_deep_is_read_or_invalid() -> None:
    body = b'{"inputs": [{"name": "T", "datatype": "BYTES", "data": ' + b"[" * 300 + b'"deep"' + b"]" * 300 + b"}]}"
    try:
        request = read_rest_request("m", None, body, None)
    except InvalidRequest:
        return
    assert request.texts == ("deep",)


def test_scanned_strings_are_capped() -> None:
    data = {"inputs": [{"name": "T", "datatype": "BYTES", "data": ["s"] * 10_005}]}
    assert len(read_rest_request("m", None, orjson.dumps(data), None).texts) == 10_000


# -- the binary tensor extension --------------------------------------------------------------------


def binary_request(inputs: list[dict[str, Any]], binary: bytes, **more: Any) -> tuple[bytes, str]:
    head = orjson.dumps({"inputs": inputs, **more})
    return head + binary, str(len(head))


def test_bytes_tensor_strings() -> None:
    out: list[str] = []
    assert bytes_tensor_strings(raw_bytes(b"hello", b"", "wörld".encode()), out) is True  # all of it read
    assert out == ["hello", "", "wörld"]
    out = []
    # invalid UTF-8 replaced, and as Latin-1; with a NUL, in UTF-16 and UTF-32 to their last whole code unit (an odd
    # length's last byte unread) where that is text, and as Latin-1 to the first NUL, as a C string is read
    bytes_tensor_strings(raw_bytes(b"\xff\xfeok", b"\xff\x00ok!", "ök".encode("utf-16-le")), out)
    assert out == [
        *("\ufffd\ufffdok", "\xff\xfeok"),
        *("\ufffd\x00ok!", "\xff\u6b6f", "\uff00\u6f6b", "\xff"),
        *("\ufffd\x00k\x00", "ök", "\uf600\u6b00", "ö"),
    ]
    # bytes that are not whole elements would reach the model unscanned: refused, never skipped
    for broken in (
        raw_bytes(b"ok") + struct.pack("<I", 10) + b"short",  # an element shorter than its length
        raw_bytes(b"ok") + b"\x01\x00",  # a stub length
        raw_bytes(b"hi") + b"ana@example.com",  # text after the last element
    ):
        with pytest.raises(InvalidRequest, match="BYTES tensor"):
            bytes_tensor_strings(broken, [])
    out = []
    assert bytes_tensor_strings(raw_bytes(*[b"x"] * 10_005), out) is False  # five left unread
    assert len(out) == 10_000


def test_binary_request_digest_covers_json_data_and_binary() -> None:
    floats = struct.pack("<4f", *FP32_DATA)
    inputs = [
        {"name": "X", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": len(floats)}},
        {"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["in json"]},
    ]
    body, length = binary_request(inputs, floats, parameters={"data_labels": ["a", "b"]})
    target = ADAPTER.match("POST", "/v2/models/iris/versions/3/infer")
    assert target is not None
    request = ADAPTER.read(target, body, {HEADER_LENGTH.lower(): length, "content-type": "application/json"}.get)
    assert (request.model, request.version, request.labels) == ("iris", "3", ("a", "b"))
    assert request.texts == ("in json", "a", "b")  # (the labels as sent too: MLServer hands them to the runtime)
    assert request.digest == sha(orjson.dumps(["in json"]), floats)


def test_binary_only_request_digest_is_the_binary() -> None:
    floats = struct.pack("<2f", 1.0, 2.0)
    body, length = binary_request(
        [{"name": "X", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}], floats
    )
    request = read_rest_request("m", None, body, length)
    assert (request.texts, request.digest) == ((), sha(floats))
    with pytest.raises(InvalidRequest, match="add up to 8 bytes, but 0 bytes"):  # the 8 declared bytes are missing
        read_rest_request("m", None, body[: int(length)], length)


def test_binary_bytes_inputs_are_scanned_as_text() -> None:
    raw = raw_bytes(b"write to ana@example.org")
    inputs = [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw)}}]
    body, length = binary_request(inputs, raw)
    assert read_rest_request("m", None, body, length).texts == ("write to ana@example.org",)


@pytest.mark.parametrize("length", ["abc", "", "1.5", "-1", "100000", "1_0", "+1", "١"])
def test_bad_header_length_is_invalid(length: str) -> None:
    """Python's int() also reads `1_0` (10), `+1` and other scripts' digits, where Triton's atoi reads `1_0` as 1:
    the JSON the proxy read would not be the JSON the server reads."""
    body, _ = binary_request([], b"\x00" * 8)
    with pytest.raises(InvalidRequest) as caught:
        read_rest_request("m", None, body, length)
    assert caught.value.message.startswith("Inference-Header-Content-Length")


def test_header_length_that_cuts_the_json_is_invalid_json() -> None:
    body, length = binary_request([], b"\x00" * 8)
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        read_rest_request("m", None, body, str(int(length) - 1))


@pytest.mark.parametrize(
    ("sizes", "binary", "says"),
    [
        (
            [5],
            raw_bytes(b"write to ana@example.org"),
            "add up to 5 bytes, but 28 bytes",
        ),  # the text hides past the sizes
        ([0, 8], struct.pack("<2f", 1.0, 2.0) + raw_bytes(b"ana@example.org"), "add up to 8 bytes, but 27 bytes"),
        ([64], raw_bytes(b"short"), "add up to 64 bytes, but 9 bytes"),  # less data than declared
        ([8], b"", "add up to 8 bytes, but 0 bytes"),  # sizes, and no binary section at all
    ],
    ids=["text-past-the-sizes", "text-after-the-last-input", "fewer-bytes-than-declared", "no-binary-section"],
)
def test_binary_sizes_that_do_not_match_the_body_are_invalid(sizes: list[int], binary: bytes, says: str) -> None:
    """Every byte after the JSON belongs to exactly one input, in order (the binary-tensor extension): a
    body with bytes no input claims, or too few for what they claim, would be read by the upstream other
    than the proxy scanned it. So it is a 400 before anything is decided or forwarded."""
    inputs = [
        {"name": f"T{i}", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": size}}
        for i, size in enumerate(sizes)
    ]
    body, length = binary_request(inputs, binary)
    target = ADAPTER.match("POST", "/v2/models/m/infer")
    assert target is not None
    with pytest.raises(InvalidRequest) as caught:
        ADAPTER.read(target, body, {HEADER_LENGTH.lower(): length}.get)
    assert caught.value.status == 400 and says in caught.value.message, caught.value.message
    assert caught.value.param == "binary_data_size"


def test_what_tritonclient_sends_in_binary_passes_the_size_check() -> None:
    """The check above against the real client's encoding: binary FP32 and BYTES inputs and a JSON one."""
    import numpy as np
    import tritonclient.http as triton

    numbers = triton.InferInput("X", [1, 2], "FP32")
    numbers.set_data_from_numpy(np.array([[1.0, 2.0]], dtype=np.float32), binary_data=True)
    text = triton.InferInput("T", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"mail ana@example.org", "wörld".encode()], dtype=object), binary_data=True)
    inline = triton.InferInput("J", [1], "BYTES")
    inline.set_data_from_numpy(np.array([b"in json"], dtype=object), binary_data=False)
    body, json_size = triton.InferenceServerClient.generate_request_body([numbers, text, inline])
    assert json_size is not None and len(body) > json_size
    request = read_rest_request("m", None, body, str(json_size))
    assert request.texts == ("mail ana@example.org", "wörld", "in json")


# -- replies ----------------------------------------------------------------------------------------


def reply_observer(capture: bool = True) -> tuple[RestReplyObserver, Outcome]:
    outcome = Outcome(started_ns=0)
    target = ADAPTER.match("POST", "/v2/models/iris/infer")
    assert target is not None
    observer = ADAPTER.observer(target, outcome, EMAIL, capture)
    assert observer.ended is False
    return observer, outcome


def test_reply_with_binary_outputs_after_head() -> None:
    floats = struct.pack("<2f", 0.0, 2.0)
    head = orjson.dumps({
        "model_name": "iris", "model_version": "3", "id": "r-1",
        "outputs": [{"name": "Y", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}],
    })  # fmt: skip
    observer, outcome = reply_observer()
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))}
    observer.head(200, headers.get)
    observer.body(head + floats)
    observer.finish()
    assert (outcome.response_model, outcome.response_id) == ("iris:3", "r-1")
    assert outcome.extra == {"lineage.model.version": "3"}
    assert outcome.output_digest == sha(floats)
    assert (outcome.content, outcome.output_detected, observer.ended) == ((), frozenset(), False)


def test_reply_with_binary_outputs_without_the_header_is_ignored() -> None:
    head = orjson.dumps({"model_name": "iris", "outputs": [{"name": "Y", "datatype": "FP32", "shape": [2]}]})
    observer, outcome = reply_observer()
    observer.head(200, no_header)
    observer.body(head + b"\x00\x01\x02\x03")
    observer.finish()
    assert (outcome.response_model, outcome.output_digest) == (None, None)


def test_json_reply_with_bytes_outputs() -> None:
    outputs = [
        {"name": "TEXT", "datatype": "BYTES", "shape": [2], "data": ["mail ana@example.org", " ok"]},
        {"name": "Y", "datatype": "INT64", "shape": [1], "data": [2]},
    ]
    observer, outcome = reply_observer()
    observer.head(200, {"content-type": "application/json"}.get)
    observer.body(orjson.dumps({"model_name": "echo", "model_version": "", "outputs": outputs}))
    observer.finish()
    assert (outcome.response_model, outcome.response_id, outcome.extra) == ("echo", None, {"lineage.model.version": ""})
    assert outcome.output_digest == sha(orjson.dumps(outputs[0]["data"]), orjson.dumps([2]))
    assert outcome.output_detected == frozenset({"pii:email"})
    assert outcome.content == ("mail [pii:email] ok",)


@pytest.mark.parametrize(
    "data", [b"", b"{", b"[]", b'{"outputs": null}', b'{"outputs": "xy"}', b'{"model_name": 3, "outputs": [1, "x"]}']
)
def test_unreadable_replies_are_ignored(data: bytes) -> None:
    observer, outcome = reply_observer()
    observer.head(500, no_header)
    observer.body(data)
    observer.chunk(b"ignored")
    observer.finish()
    assert (outcome.response_model, outcome.response_id, outcome.output_digest, outcome.content) == (
        None,
        None,
        None,
        (),
    )


@pytest.mark.parametrize("outputs", [b"5", b"true", b"1.5"])
def test_reply_with_outputs_that_are_not_a_list_does_not_raise(outputs: bytes) -> None:
    observer, outcome = reply_observer()
    observer.head(200, no_header)
    observer.body(b'{"model_name": "m", "outputs": ' + outputs + b"}")
    observer.finish()
    assert outcome.response_model == "m"


def test_reply_text_in_any_datatype_and_in_objects_is_scanned() -> None:
    """A reply is forwarded whatever it holds: its strings are read wherever they are, an object's keys and
    values too (an object in a request's data is refused instead)."""
    outputs = [
        {"name": "N", "datatype": "INT32", "shape": [1], "data": ["mail ana@example.org"]},
        {"name": "O", "datatype": "BYTES", "shape": [1], "data": [{"to": "bob@example.org"}]},
    ]
    for output in outputs:
        observer, outcome = reply_observer(capture=False)
        observer.head(200, no_header)
        observer.body(orjson.dumps({"model_name": "echo", "outputs": [output]}))
        observer.finish()
        assert outcome.output_detected == frozenset({"pii:email"})
        assert outcome.output_digest == sha(orjson.dumps(output["data"]))


def test_reply_nested_300_deep_does_not_raise() -> None:
    observer, outcome = reply_observer()
    observer.head(200, no_header)
    observer.body(
        b'{"model_name": "m", "outputs": [{"datatype": "BYTES", "data": ' + b"[" * 300 + b'"x"' + b"]" * 300 + b"}]}"
    )
    observer.finish()


def test_binary_bytes_outputs_are_scanned_as_text() -> None:
    raw = raw_bytes(b"mail ana@example.org")
    head = orjson.dumps({
        "model_name": "echo", "outputs": [{"name": "T", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw)}}],
    })  # fmt: skip
    observer, outcome = reply_observer()
    observer.head(200, {"inference-header-content-length": str(len(head))}.get)
    observer.body(head + raw)
    observer.finish()
    assert outcome.output_detected == frozenset({"pii:email"})


def test_a_bytes_tensor_past_the_scan_limit_is_labelled_truncated_not_passed_as_clean() -> None:
    """Only the first BYTES_SCANNED bytes of a BYTES tensor are read for detectors: the rest goes to the
    model unscanned, so the call says so (`scan:truncated`), as a prompt over limits.scan_max_chars does.
    A tensor within the limit is not labelled."""
    from proxy.protocols.oip import BYTES_SCANNED

    big = raw_bytes(b"x" * (BYTES_SCANNED // 2), b"y" * (BYTES_SCANNED // 2), b"mail ana@example.org")
    one_long = raw_bytes("é".encode() * (BYTES_SCANNED // 2 + 1) + b" mail ana@example.org")  # one element
    small = raw_bytes(b"mail ana@example.org")
    target = ADAPTER.match("POST", "/v2/models/m/infer")
    assert target is not None
    for raw, cut in ((big, True), (one_long, True), (small, False)):
        inputs = [{"name": "T", "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": len(raw)}}]
        body, length = binary_request(inputs, raw)
        assert ADAPTER.read(target, body, {HEADER_LENGTH.lower(): length}.get).unscanned is cut
    for count, cut in ((10_001, True), (10_000, False)):  # JSON strings: as many as are scanned, and one more
        inputs = [{"name": "T", "datatype": "BYTES", "shape": [count], "data": ["x"] * count}]
        body = orjson.dumps({"inputs": inputs})
        assert ADAPTER.read(target, body, no_header).unscanned is cut
    from proxy.protocols.oip_grpc import read_infer_request
    from tests.protocols.test_oip_grpc import infer_request

    message = infer_request(model_name="m")
    message.inputs.add(name="T", datatype="BYTES", shape=[3])
    message.raw_input_contents.append(big)
    request = read_infer_request(message.SerializeToString())
    assert request.unscanned is True
    from proxy.config import parse
    from proxy.detectors import TRUNCATED
    from proxy.record.spans import trace_context
    from proxy.server import ProxyProcess

    pipeline = ProxyProcess(parse("""
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
""")).ref.current  # fmt: skip
    call = pipeline.call(request, "oip", {}.get, trace_context(None, None, 1.0))
    assert call.detected == {TRUNCATED}  # the email was past the limit: unread, and the call says so
    from proxy.protocols import Request

    short = ("mail ana@example.org",)  # well under limits.scan_max_chars: the label can only come from the flag
    for unscanned, detected in ((True, {TRUNCATED, "pii:email"}), (False, {"pii:email"})):
        request = Request("m", "infer", texts=short, unscanned=unscanned)
        assert pipeline.call(request, "oip", {}.get, trace_context(None, None, 1.0)).detected == detected


@pytest.mark.parametrize(
    ("raw", "labels"),
    [
        (raw_bytes(b"mail ana@example.org"), {"pii:email"}),  # read whole
        (raw_bytes(b"mail ana@example.org", b"x" * (1 << 20)), {"pii:email", "scan:truncated"}),  # past the read
        (raw_bytes(b"mail ana@example.org") + b"\x09\x00", {"pii:email", "scan:truncated"}),  # not whole elements
    ],
    ids=["whole", "past-the-limit", "malformed"],
)
def test_a_bytes_output_the_observer_could_not_read_whole_is_labelled_truncated(raw: bytes, labels: set[str]) -> None:
    head = orjson.dumps({"model_name": "iris", "outputs": [
        {"name": "T", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw)}}]})  # fmt: skip
    observer, outcome = reply_observer(capture=False)
    observer.head(200, {"inference-header-content-length": str(len(head))}.get)
    observer.body(head + raw)
    observer.finish()
    assert outcome.output_detected == labels


def test_text_in_parameters_is_scanned_but_the_protocols_own() -> None:
    """Triton's Python backend reads its request's parameters, MLServer runtimes theirs: a string there
    reached the model unscanned."""
    body = {"parameters": {"note": "mail ana@example.org", "data_labels": "campaign-7", "options": {"to": ["x@y.org"]}},
            "inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1.0],
                        "parameters": {"content_type": "np", "hint": "call +1 415 555 0100"}}]}  # fmt: skip
    texts = read_rest_request("m", None, orjson.dumps(body), None).texts
    # a tensor's `content_type` too: MLServer hands the runtime its `parameters` whole (a codec's name or not)
    # and the labels as sent, which MLServer hands it too (a label is any word of the grammar)
    assert texts == ("mail ana@example.org", "campaign-7", "to", "x@y.org", "np", "call +1 415 555 0100")
