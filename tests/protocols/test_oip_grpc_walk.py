"""The ModelInferRequest and ModelInferResponse readers walk their messages' fields in a loop of their own, `_spans`
written out: they read every message, well formed or not, as the same readers walking it with `_spans` do (kept
here as they were, the reference)."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import InvalidRequest
from proxy.flow import Outcome
from proxy.protocols import SHA256, OutputText, Request
from proxy.protocols import oip_grpc as oip
from proxy.protocols.oip import check_version, labels_parameter, observe_reply_meta
from tests.protocols.test_oip_grpc import EMAIL, PB, full_request, infer_response, raw_bytes


def reference_read(buf: bytes) -> Request:
    """`read_infer_request` as it was, on `_spans`."""
    view = memoryview(buf)
    model = version = ""
    labels: list[str] = []
    texts: list[str] = []
    names: list[str] = []  # the tensors' and parameters' names (read since it was the reference)
    decoded: list[str] = []  # the other readings of elements that are not UTF-8 (read beside since it was)
    datatypes: list[str] = []
    digest = SHA256.copy()
    raws: list[memoryview] = []
    seen = shared = filled = False
    declared: list[bool] = []
    try:
        for number, start, stop in oip._spans(buf, 0, len(buf)):
            if number == 5:
                datatype, in_shared, in_contents, base64, _, _ = oip._tensor(
                    buf, view, start, stop, texts, digest, None, names, 0, decoded
                )
                datatypes.append(datatype)
                declared.append(base64)
                shared = shared or in_shared
                filled = filled or in_contents
                seen = True
            elif number == 7:
                raw = view[start:stop]
                digest.update(raw)
                seen = True
                raws.append(raw)
            elif number == 1:
                model = oip._string(buf, start, stop)
            elif number == 2:
                version = oip._string(buf, start, stop)
            elif number == 3 and stop > start:  # the request's id (read since it was the reference)
                texts.append(oip._string(buf, start, stop))
            elif number == 4:
                key, text, numbered = oip._parameter(buf, start, stop)
                if key == oip.LABELS_PARAMETER:
                    if text is None:
                        raise InvalidRequest(f"parameter {oip.LABELS_PARAMETER!r} must be a string_param")
                    labels += labels_parameter(text)
                    if text:  # its labels as text too (read since it was the reference)
                        texts.append(text)
                elif key not in oip.FRAMING_PARAMETERS:
                    # (its numbers: read since it was the reference)
                    texts += oip._parameter_texts(text, numbered, buf, start, stop)
                    if key:  # its name (read since it was the reference)
                        names.append(key)
            elif number == 6:
                shared = oip._requested_output(buf, start, stop, texts, names)[0] or shared
    except oip.WireError as exc:
        raise InvalidRequest(f"ModelInferRequest is not a valid protobuf message: {exc}") from None
    if raws and filled:
        raise InvalidRequest("contents and raw_input_contents in one request: an input's data is in one or the "
                             "other, for every input alike", param="raw_input_contents")  # fmt: skip
    whole = oip._raw_strings(raws, datatypes, texts, declared, decoded)
    if not model:
        raise InvalidRequest("model_name is required", param="model_name")
    check_version(version)
    oip.add_decoded_texts(texts, 0, decoded)
    return Request(model, "infer", False, tuple(texts), (), tuple(labels), version or None,
                   "sha256:" + digest.hexdigest() if seen and not shared else None, opaque=shared,
                   unscanned=not whole, decoded=tuple(decoded), names=tuple(names))  # fmt: skip


def reference_reply(data: bytes) -> Outcome:
    """`ReplyObserver.body` then `finish` as they were, `_response` on `_spans`."""
    outcome = Outcome(started_ns=0)
    digest, seen, found = SHA256.copy(), False, None
    view = memoryview(data)
    model = version = rid = ""
    texts: list[str] = []
    names: list[str] = []  # the outputs' (read since it was the reference)
    beside: list[str] = []  # their elements' other readings (read beside since it was)
    datatypes: list[str] = []
    raws: list[memoryview] = []
    parameters: list[tuple[str, str]] = []
    whole = True
    try:
        for number, first, last in oip._spans(data, 0, len(data)):
            if number == 5:
                datatypes.append(oip._tensor(data, view, first, last, texts, digest, None, names, 0, beside)[0])
                seen = True
            elif number == 6:
                raw = view[first:last]
                digest.update(raw)
                seen = True
                raws.append(raw)
            elif number == 1:
                model = oip._string(data, first, last)
            elif number == 2:
                version = oip._string(data, first, last)
            elif number == 3:
                rid = oip._string(data, first, last)
            elif number == 4:
                name, text, numbered = oip._parameter(data, first, last)
                if name not in oip.FRAMING_PARAMETERS:
                    text = "\n".join(oip._parameter_texts(text, numbered, data, first, last))
                    if text or name:  # its name too (read since it was the reference)
                        parameters.append((name, f"{name}\n{text}" if text else name))
    except oip.WireError:  # read up to there; the rest is unread
        whole = False
    else:
        observe_reply_meta(outcome, model, version, rid)
    try:
        whole = oip._raw_strings(raws, datatypes, texts, None, beside) and whole
    except InvalidRequest:
        whole = False
    if parameters or texts or names or not whole:
        found = OutputText(outcome, EMAIL, True, digests=False)
        for name, text in parameters:
            found.aside(("parameters", name), text)
        if texts or not whole:
            found.add_pieces(texts, whole)
        if beside:
            found.aside_readings(beside)
        if names:
            found.aside(oip.OUTPUT_NAMES, "\n".join(names))
    if found is not None:
        found.finish(EMAIL)
    else:
        outcome.output_detected = frozenset()
    outcome.output_digest = "sha256:" + digest.hexdigest() if seen else None
    return outcome


def read(reader: Any, buf: bytes) -> Request | str:
    try:
        request: Request = reader(buf)
    except InvalidRequest as exc:
        return f"{exc.message} ({exc.param})"
    return request


def reply(data: bytes) -> Outcome:
    outcome = Outcome(started_ns=0)
    observer = oip.ReplyObserver(outcome, EMAIL, True)
    observer.body(data)
    observer.finish()
    return outcome


def fields_of(outcome: Outcome) -> tuple[Any, ...]:
    return (outcome.response_model, outcome.response_id, outcome.extra, outcome.output_digest,
            outcome.output_detected, outcome.content)  # fmt: skip


def replies() -> list[bytes]:
    text = infer_response().SerializeToString()
    raw = PB["ModelInferResponse"](model_name="echo", id="r-2")
    raw.outputs.add(name="Y", datatype="INT32", shape=[1])
    raw.outputs.add(name="TEXT", datatype="BYTES", shape=[2])
    raw.raw_output_contents.extend([struct.pack("<i", 7), raw_bytes(b"one", b"ana@example.org")])
    noted = infer_response()  # the reply's own parameters: a runtime's answer beside its tensors
    noted.parameters["note"].string_param = "ana@example.org"
    named = PB["ModelInferResponse"](model_name="echo", id="r-3")  # an output named by its runtime
    named.outputs.add(name="ana@example.org", datatype="ana@example.net", shape=[1])
    named.raw_output_contents.append(struct.pack("<i", 7))
    return [text, raw.SerializeToString(), noted.SerializeToString(), named.SerializeToString()]


def test_the_readers_read_well_formed_messages_as_on_spans() -> None:
    request = full_request().SerializeToString()
    assert read(oip.read_infer_request, request) == read(reference_read, request)
    for data in replies():
        assert fields_of(reply(data)) == fields_of(reference_reply(data))


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=40), position=st.integers(0, 400), cut=st.integers(0, 400))
def test_the_readers_read_mangled_messages_as_on_spans(data: bytes, position: int, cut: int) -> None:
    for good in (full_request().SerializeToString(), *replies()):
        at = min(position, len(good))
        mangled = (good[:at] + data + good[at:])[: max(cut, 1)]
        assert read(oip.read_infer_request, mangled) == read(reference_read, mangled)
        assert fields_of(reply(mangled)) == fields_of(reference_reply(mangled))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120))
def test_the_readers_read_arbitrary_bytes_as_on_spans(data: bytes) -> None:
    assert read(oip.read_infer_request, data) == read(reference_read, data)
    assert fields_of(reply(data)) == fields_of(reference_reply(data))
