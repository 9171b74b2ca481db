"""A whole 200 reply holding an integer of over 4,300 digits (more than Python's `int` reads from text) was read as a
float, as `fetch().json()` reads it, and recorded a success; the openai and Anthropic SDKs' `.json()` (Python's
`json`: "Exceeds the limit (4300 digits) for integer string conversion") and tritonclient's `InferResult`
(rapidjson: "Invalid integer value") raise at it. It is read so still, for its labels, and the call is
`upstream_error`, as an event's data holding one is (`tests/test_sse_big_integers.py`). One of 4,300 digits, or such
digits in a string or before a fraction, is read by all of them, a success as before. So is a reply read in the charset
its type names, where that reading is the reply (`requests`). Driven with the real SDKs, tritonclient and `requests`
through the proxy against an upstream that frames by hand."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import ollama
import openai
import orjson
import pytest
import requests

from proxy.protocols import MAX_STRINGS
from tests.event_streams import span_of
from tests.harness import traced
from tests.test_unsized_replies_output import CHAT, EMAIL, INFER, MESSAGE, OUT, TRUNCATED, Reply, pieces, setup_for  # noqa: F401

STATUS_ERROR = 2
TOO_LONG = b"9" * 4301  # one digit past what Python's `int` reads from text
NUMBERS = {  # id -> (the number written into the reply, whether the clients raise at it)
    "4301": (TOO_LONG, True),
    "negative-5000": (b"-" + b"7" * 5000, True),
    "in-an-array": (b"[1," + TOO_LONG + b"]", True),
    "4300": (b"9" * 4300, False),
    "fraction": (TOO_LONG + b".5", False),
    "in-a-string": (b'"' + TOO_LONG + b'"', False),
}
FRAMINGS = ["sized", "chunked", "close"]


def _with(reply: dict[str, Any], number: bytes) -> bytes:
    """`reply`'s JSON with a member `n` holding `number`, its last: its fields are read before it."""
    return orjson.dumps(reply)[:-1] + b',"n":' + number + b"}"


def _recorded(setup: Any, trace: str, raises: bool) -> None:
    """The call is `upstream_error` where its clients raise at the reply, a success where they read it; its output
    read, for its labels, either way."""
    span = span_of(setup, trace)
    assert span.attributes.get("error.type") == ("upstream_error" if raises else None)
    assert span.status_code == (STATUS_ERROR if raises else 0)
    labels = span.attributes["lineage.output.labels"]
    assert EMAIL in labels and TRUNCATED not in labels, labels


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("number", list(NUMBERS))
def test_a_chat_reply_the_openai_sdk_raises_at_is_upstream_error(setup_for: Any, number: str, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    written, raises = NUMBERS[number]
    setup.upstream.reply = Reply([_with(CHAT, written)], framing=framing, content_type="application/json")
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=30, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
        if raises:
            with pytest.raises(ValueError, match="4300 digits"):
                raw.parse()
        else:
            assert raw.parse().choices[0].finish_reason == "stop"
    finally:
        client.close()
    _recorded(setup, raw.headers["x-trace-id"], raises)


@pytest.mark.parametrize("number", list(NUMBERS))
def test_a_message_the_anthropic_sdk_raises_at_is_upstream_error(setup_for: Any, number: str) -> None:  # noqa: F811
    setup = setup_for()
    written, raises = NUMBERS[number]
    setup.upstream.reply = Reply([_with(MESSAGE, written)], content_type="application/json")
    client = anthropic.Anthropic(base_url=setup.proxy.url, api_key="k", timeout=30, max_retries=0)
    try:
        raw = client.messages.with_raw_response.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        if raises:
            with pytest.raises(ValueError, match="4300 digits"):
                raw.parse()
        else:
            assert raw.parse().stop_reason == "end_turn"
    finally:
        client.close()
    _recorded(setup, raw.headers["x-trace-id"], raises)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("number", list(NUMBERS))
def test_an_oip_reply_tritonclient_raises_at_is_upstream_error(setup_for: Any, number: str, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    written, raises = NUMBERS[number]
    setup.upstream.reply = Reply([_with(INFER, written)], framing=framing, content_type="application/json")
    trace, headers = traced()
    if raises:
        with pytest.raises(ValueError, match="Invalid integer value"):
            setup.infer(headers)
    else:
        assert setup.infer(headers)["n"] == json.loads(written)
    _recorded(setup, trace, raises)


def _utf7_digits(text: str) -> bytes:
    """`text` in UTF-7 with its digits in base64 (`+ADkAOQ...-`, as a UTF-7 encoder may write any character): the UTF-8
    reading of it holds none of them."""
    digits = text.strip("}").rsplit(" ", 1)[1]
    return text[: -len(digits) - 1].encode() + b"+" + base64.b64encode(digits.encode("utf-16-be")).rstrip(b"=") + b"-}"


@pytest.mark.parametrize("charset", ["utf-7", "cp500"])
def test_a_reply_read_in_its_charset_that_requests_raises_at_is_upstream_error(setup_for: Any, charset: str) -> None:  # noqa: F811
    """A whole reply whose UTF-8 reading is no JSON is read in the charset its type names, as `requests`' `.json()`
    reads it (`_in_charset`): where that reading holds an integer of over 4,300 digits (written in UTF-7's base64, or
    EBCDIC's digits), `requests` raises at it, as the openai SDK does at the UTF-8 reading. It was a success."""
    setup = setup_for()
    text = f'{{"predictions": ["write to {OUT}"], "n": {"9" * 4301}}}'
    body = _utf7_digits(text) if charset == "utf-7" else text.encode(charset)
    assert body.decode(charset) == text and b"9" * 4301 not in body
    setup.upstream.reply = Reply([body], framing="sized", content_type=f"application/json; charset={charset}")
    response = requests.post(f"{setup.proxy.url}/v1/models/iris:predict", json={"instances": [["hi"]]}, timeout=30)
    assert response.status_code == 200
    with pytest.raises(ValueError, match="4300 digits"):
        response.json()
    _recorded(setup, response.headers["x-trace-id"], True)


LATE = MAX_STRINGS + 10  # values in a reply's list: those past the first `MAX_STRINGS` + 1 are not parsed
LATE_NUMBERS = {  # id -> (a late value written with the number, whether the clients raise at it)
    "4301": (TOO_LONG, True),
    "negative-5000": (b"-" + b"7" * 5000, True),
    "4300": (b"9" * 4300, False),
    "fraction": (TOO_LONG + b".5", False),
    "exponent": (b"1e" + TOO_LONG, False),
    "in-a-string": (b'"' + TOO_LONG + b'"', False),
}


def _late(body: bytes, value: bytes, number: bytes) -> bytes:
    """`body` with its last `value` (one past those parsed) holding `number` in place of its `0.25`."""
    at = body.rindex(value)
    return body[:at] + value.replace(b"0.25", number) + body[at + len(value) :]


def _recorded_late(setup: Any, trace: str, raises: bool) -> None:
    """As `_recorded`, for a reply of more values than are parsed: its output `scan:truncated` where it holds text."""
    span = span_of(setup, trace)
    assert span.attributes.get("error.type") == ("upstream_error" if raises else None)
    assert span.status_code == (STATUS_ERROR if raises else 0)


@pytest.mark.parametrize("framing", ["sized", "chunked"])
@pytest.mark.parametrize("number", list(LATE_NUMBERS))
def test_an_embeddings_reply_with_the_number_past_the_vectors_read_is_recorded_as_the_openai_sdk_reads_it(
    setup_for: Any,  # noqa: F811
    number: str,
    framing: str,
) -> None:
    """An embeddings reply of more vectors than are parsed (`oip.many_values`) holding an integer of over 4,300 digits
    in one past them (the rest judged in C, `oip.unread_long_integer`): the openai SDK raises, the call is
    `upstream_error`. It was a success."""
    setup = setup_for()
    written, raises = LATE_NUMBERS[number]
    data = [{"object": "embedding", "index": i, "embedding": [0.25]} for i in range(LATE)]
    body = orjson.dumps(
        {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    )
    setup.upstream.reply = Reply(pieces(_late(body, b"[0.25]", written), 1 << 20), framing=framing)
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=30, max_retries=0)
    try:
        raw = client.embeddings.with_raw_response.create(model="m", input="hi", encoding_format="float")
        if raises:
            with pytest.raises(ValueError, match="4300 digits"):
                raw.parse()
        else:  # (its `.json()`: a 4,300-digit integer where a float is typed the SDK's model then raises at too, as
            # it does where one is read, `OverflowError`)
            assert len(raw.http_response.json()["data"]) == LATE
    finally:
        client.close()
    _recorded_late(setup, raw.headers["x-trace-id"], raises)


@pytest.mark.parametrize("number", [number for number in LATE_NUMBERS if number != "exponent"])
def test_an_oip_reply_with_the_number_past_the_outputs_read_is_recorded_as_tritonclient_reads_it(
    setup_for: Any,  # noqa: F811
    number: str,
) -> None:
    """An OIP reply of more outputs than are parsed holding an integer of over 4,300 digits in one past them:
    tritonclient's `InferResult` raises, the call is `upstream_error`. It was a success. (Its rapidjson raises at a
    number past a double's range written with an exponent too, `1e400`, which Python's `json` reads: not asked here.)"""
    setup = setup_for()
    written, raises = LATE_NUMBERS[number]
    outputs = [{"name": f"o{i}", "datatype": "FP32", "shape": [1], "data": [0.25]} for i in range(LATE)]
    body = orjson.dumps({"model_name": "iris", "model_version": "1", "outputs": outputs})
    setup.upstream.reply = Reply([_late(body, b"[0.25]", written)], framing="sized")
    trace, headers = traced()
    if raises:
        with pytest.raises(ValueError, match="Invalid integer value"):
            setup.infer(headers)
    else:
        assert len(setup.infer(headers)["outputs"]) == LATE
    _recorded_late(setup, trace, raises)


@pytest.mark.parametrize("number", list(LATE_NUMBERS))
def test_a_kserve_v1_reply_with_the_number_past_the_predictions_read_is_recorded_as_requests_reads_it(
    setup_for: Any,  # noqa: F811
    number: str,
) -> None:
    """A KServe V1 reply of more predictions than are parsed holding an integer of over 4,300 digits in one past them:
    `requests`' `.json()` raises, the call is `upstream_error`. It was a success."""
    setup = setup_for()
    written, raises = LATE_NUMBERS[number]
    body = orjson.dumps({"predictions": [[0.25]] * LATE})
    setup.upstream.reply = Reply([_late(body, b"[0.25]", written)], framing="sized")
    response = requests.post(f"{setup.proxy.url}/v1/models/iris:predict", json={"instances": [[1.0]]}, timeout=30)
    assert response.status_code == 200
    if raises:
        with pytest.raises(ValueError, match="4300 digits"):
            response.json()
    else:
        assert len(response.json()["predictions"]) == LATE
    _recorded_late(setup, response.headers["x-trace-id"], raises)


OLLAMA_LINE = {"model": "m", "created_at": "2026-12-06T00:00:00Z", "done": False,
               "message": {"role": "assistant", "content": f"write to {OUT}"}}  # fmt: skip
OLLAMA_LAST = {"model": "m", "created_at": "2026-12-06T00:00:00Z", "done": True, "done_reason": "stop",
               "message": {"role": "assistant", "content": ""}}  # fmt: skip


@pytest.mark.parametrize("number", list(NUMBERS))
def test_an_ollama_line_the_ollama_sdk_raises_at_is_upstream_error(setup_for: Any, number: str) -> None:  # noqa: F811
    """Ollama's streamed JSON lines, one holding the number after its content: the `ollama` SDK's `json.loads(line)`
    raises at an integer of over 4,300 digits, and the call is `upstream_error` (the line no JSON, unread:
    `scan:truncated`); it was a success. Other lines are read as before."""
    setup = setup_for()
    written, raises = NUMBERS[number]
    body = _with(OLLAMA_LINE, written) + b"\n" + orjson.dumps(OLLAMA_LAST) + b"\n"
    setup.upstream.reply = Reply([body], content_type="application/x-ndjson")
    trace, headers = traced()
    client = ollama.Client(host=setup.proxy.url, headers=headers)
    chat = client.chat(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    if raises:
        with pytest.raises(ValueError, match="4300 digits"):
            list(chat)
    else:
        assert [part.done for part in chat] == [False, True]
    span = span_of(setup, trace)
    assert span.attributes.get("error.type") == ("upstream_error" if raises else None)
    assert span.status_code == (STATUS_ERROR if raises else 0)
    labels = span.attributes["lineage.output.labels"]
    assert (TRUNCATED in labels) == raises and (EMAIL in labels) != raises, labels
