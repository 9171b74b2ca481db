"""The match that refuses an OIP REST request of over 65,536 tensors unparsed (`oip._MANY_TENSORS`) is bounded, and
taken to every path that reads an inference request. Its regex walks every value of the body's `inputs` list, tens
of nanoseconds each: a 63 MB body of 65,535 arrays of 320 `{}` was walked whole, 3.5 s, before the parse refused it for
its million objects at once (counted in C: 0.1 s before the match); a body of few objects is walked over its first
`_MANY_TENSORS_UPTO` bytes only. MLServer's `/infer_stream`, which takes the same inference request, was parsed
whole, 278,000 one-element inputs (16 MB) 1-1.3 s, before its inputs were counted."""

from __future__ import annotations

import struct
import sys
from typing import Any

import orjson
import pytest

from proxy.errors import InvalidRequest, RequestTooLarge
from proxy.protocols import MAX_STRINGS, Target, oip
from proxy.protocols.oip import BYTES_SCANNED, bytes_tensor_strings, read_rest_request
from proxy.protocols.oip_generate import read_request
from tests.test_oip_many_tensors_unparsed import _parsed, _tiny


class _Walked:
    """`_MANY_TENSORS` recording how many bytes each match was given to walk."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.walked: list[int] = []

    def match(self, string: bytes, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        self.walked.append(min(endpos, len(string)) - pos)
        return self.pattern.match(string, pos, endpos)


def _walked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    walked = _Walked(oip._MANY_TENSORS)
    monkeypatch.setattr(oip, "_MANY_TENSORS", walked)
    return walked.walked


@pytest.mark.interpreted
def test_a_body_the_parse_refuses_for_its_objects_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    walked = _walked(monkeypatch)
    body = b'{"inputs": [' + (b"[" + b"{}," * 15 + b"{}],") * (MAX_STRINGS - 1) + b"1]}"  # 1,114,000 objects
    with pytest.raises(RequestTooLarge, match="over 1,000,000 JSON objects and arrays"):
        read_rest_request("m", None, body, None)
    assert walked == []  # (walked whole before: 63 MB so, 3.5 s)


@pytest.mark.interpreted
def test_a_body_of_few_objects_is_walked_over_its_first_bytes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    walked = _walked(monkeypatch)
    braces = b'"' + b"{" * (MAX_STRINGS + 1) + b'"'  # (in a string: the body is walked for its count of them)
    many = (b"[" + b"1," * 100 + b"1],") * (MAX_STRINGS - 2)  # 13 MB of numbers, too few inputs: parsed after
    with pytest.raises(InvalidRequest, match="'inputs' is required and must be a list of tensors"):
        read_rest_request("m", None, b'{"inputs": [' + braces + b"," + many + b"1]}", None)
    assert len(walked) == 1 and walked[0] <= 8 << 20  # (its first 8 MiB: 13 MB before)
    # tritonclient's one-element inputs, spaced as `requests` writes them, fall within it
    tiny = _tiny(MAX_STRINGS + 1)
    spaced = orjson.dumps({"inputs": tiny}, option=orjson.OPT_INDENT_2)
    with pytest.raises(RequestTooLarge, match="over 65,536 tensors"):
        read_rest_request("m", None, spaced, None)
    assert len(walked) == 2


@pytest.mark.interpreted
def test_an_infer_stream_request_of_more_tensors_than_read_is_refused_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = _parsed(monkeypatch)
    tiny = _tiny(278_000)
    stream = Target("infer", "m", None, stream=True)  # MLServer's `/infer_stream`
    with pytest.raises(RequestTooLarge, match="over 65,536 tensors"):
        read_request(stream, orjson.dumps({"inputs": tiny}), None)
    assert parsed == []  # (parsed whole before)
    # a generate path's body of that shape may be Triton's generate request: one input named `inputs`, 70,000 texts
    texts = orjson.dumps({"inputs": ["{}"] * (MAX_STRINGS + 4_464)})
    read = read_request(Target("generate", "m", None), texts, None)
    assert len(parsed) == 1 and read.texts


def test_a_utf8_element_cut_at_the_scan_limit_is_read_as_utf8() -> None:
    # the last character's two bytes either side of the limit: the element was read as not UTF-8, its reading
    # replaced ending in U+FFFD and its Latin-1 reading beside it
    element = b"a" * (BYTES_SCANNED - 1) + "é".encode() + b"b"
    out: list[str] = []
    beside: list[str] = []
    assert not bytes_tensor_strings(struct.pack("<I", len(element)) + element, out, beside)
    assert out == ["a" * (BYTES_SCANNED - 1)] and beside == []
    # one that is not UTF-8 in what is read is read so, as ever
    latin = b"a" * (BYTES_SCANNED - 2) + "é".encode("latin-1") + b"bc"
    assert not bytes_tensor_strings(struct.pack("<I", len(latin)) + latin, out, beside)
    assert out[1] == "a" * (BYTES_SCANNED - 2) + "\ufffdb" and beside == ["a" * (BYTES_SCANNED - 2) + "éb"]
    # through a request's binary section, as a BYTES input sent so
    head = orjson.dumps({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(element) + 4}}]})  # fmt: skip
    read = read_rest_request("m", None, head + struct.pack("<I", len(element)) + element, str(len(head)))
    assert read.unscanned and "a" * (BYTES_SCANNED - 1) in read.texts and read.decoded == ()
