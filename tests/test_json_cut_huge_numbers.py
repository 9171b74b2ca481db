"""A reply framed by its connection's close whose JSON holds a number past a double's range (`1e400`, `-1E+999`, an
integer of 400 digits: Python's `json`, which its clients read it with, reads an infinity or the integer's digits;
orjson refuses it, "number is infinity when parsed as double", at the number) and that closed before its JSON's end
was not said cut short, as one holding `NaN` was not (`tests/test_json_cut_nan.py`): an OIP REST, KServe V1 or
embeddings reply so cut was recorded as one that ended well, only `scan:truncated`. It is now read on past such
numbers in a copy where each is a finite number of its length (`_small_exponents`, `_short_integers`: only where
orjson refused one), and said cut exactly where its client's `json` fails at its end (helper bigreply6)."""

from __future__ import annotations

import json
import math
from typing import Any

import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import TRUNCATED
from proxy.protocols import MAX_STRINGS, ends_early
from tests.test_json_cut_nan import CALLS, STATUS_ERROR, _call, _large, _observer, handed, not_said_cut, said_cut  # noqa: F401
from tests.test_reply_many_values_unparsed import _read_as
from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401

LONG = b"1" * 400  # an integer past a double's range: Python's `json` reads its digits, orjson refuses it
# what stands for `NaN`, `Infinity` and `-Infinity` in the NaN tests' replies (`json.dumps` of them): numbers past a
# double's range written as big-decimal writers (Java's `BigDecimal`, Python's `Decimal`) and hands write them
HUGE = {b"-Infinity": b"-" + LONG, b"Infinity": b"1E+999", b"NaN": b"1e400"}


def _huge(body: bytes) -> bytes:
    """`body` (`json.dumps` of a reply holding NaN and the infinities) with numbers past a double's range for them."""
    for missing, huge in HUGE.items():
        body = body.replace(missing, huge)
    with pytest.raises(orjson.JSONDecodeError, match="number is infinity"):
        orjson.loads(body + b"]}")
    return body


def _numbers(value: Any) -> list[Any]:
    """The numbers in `value` (JSON as Python's `json` reads it), in document order."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [number for item in value for number in _numbers(item)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.parametrize("api", list(CALLS))
def test_a_close_delimited_reply_holding_a_number_past_a_doubles_range_closed_before_its_end_is_recorded_cut(
    setup_for: Any,  # noqa: F811
    api: str,
) -> None:
    setup = setup_for()
    body = _huge(json.dumps(CALLS[api][2]).encode())
    sent = body[: len(body) - 4]
    assert sent.index(b"1e400") < sent.index(LONG) < len(sent) - 20
    response, got = _call(setup, api, Reply([sent[:40], sent[40:]], framing="close"))
    assert response.status_code == 200 and got == sent  # what came, and a clean end, as direct
    with pytest.raises(ValueError):
        json.loads(got)  # (its client's `json` fails at its end)
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == "upstream_reset"
    assert span.status_code == STATUS_ERROR
    assert TRUNCATED in span.attributes["lineage.output.labels"]


@pytest.mark.parametrize("api", list(CALLS))
def test_a_whole_close_delimited_reply_holding_a_number_past_a_doubles_range_is_not_and_is_read(
    setup_for: Any,  # noqa: F811
    api: str,
) -> None:
    setup = setup_for()
    body = _huge(json.dumps(CALLS[api][2]).encode()) + b"\n"
    response, got = _call(setup, api, Reply([body[:40], body[40:]], framing="close"))
    assert response.status_code == 200 and got == body
    assert {math.inf, -int(LONG)} <= set(_numbers(json.loads(got)))  # (its client's `json` reads them)
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") is None
    assert TRUNCATED not in span.attributes["lineage.output.labels"]


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
def test_the_openai_sdk_fails_on_an_embeddings_reply_past_a_doubles_range_exactly_where_the_record_says_cut(
    setup_for: Any,  # noqa: F811
    cut: bool,
) -> None:
    """The openai SDK reads a whole embeddings reply holding `1e400` (an infinity) and fails on one cut short: the
    record says cut short in the second case alone. (Its `-1e400`: an integer past a double's range, its client's
    `json` reads, the SDK's model refuses as a float, `OverflowError`, whole or cut.)"""
    setup = setup_for()
    body = _huge(json.dumps(CALLS["embeddings"][2]).encode()).replace(b"-" + LONG, b"-1e400")
    sent = body[: len(body) - 4] if cut else body
    setup.upstream.reply = Reply([sent[:40], sent[40:]], framing="close")
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=30, max_retries=0)
    raw = client.embeddings.with_raw_response.create(model="m", input="hello", encoding_format="float")
    if cut:
        with pytest.raises(ValueError):
            raw.parse()
    else:
        assert raw.parse().data[0].embedding == [math.inf, math.inf, -math.inf, 0.5]
    span = span_of(setup, raw.headers["x-trace-id"])
    assert span.attributes.get("error.type") == ("upstream_reset" if cut else None)
    assert (TRUNCATED in span.attributes["lineage.output.labels"]) is cut


@pytest.mark.parametrize("api", list(CALLS))
@pytest.mark.parametrize("count", [20_000, MAX_STRINGS + 10], ids=["past-64KiB", "many-values"])
def test_a_large_kept_reply_holding_a_number_past_a_doubles_range_is_said_cut_where_it_is(api: str, count: int) -> None:
    body = _huge(_large(api, count))
    assert body.index(b"1e400") < 1000 and len(body) > 100_000
    whole, whole_cut = _read_as(_observer(api), body, "kept")
    assert whole_cut is False and whole.output_detected == (set() if api == "embeddings" else {"pii:email"})
    outcome, cut = _read_as(_observer(api), body[: len(body) * 2 // 3], "kept")
    assert cut is True and TRUNCATED in outcome.output_detected


@pytest.mark.parametrize(
    ("huge", "passes"),
    [({}, 0), ({b"NaN": b"1e400"}, 1), ({b"NaN": LONG}, 1), (HUGE, 2)],
    ids=["finite", "exponent", "digits", "both"],
)
def test_a_kept_reply_cut_short_is_copied_only_for_the_kinds_of_number_orjson_refused(
    handed: list[tuple[str, int]],  # noqa: F811
    huge: dict[bytes, bytes],
    passes: int,
) -> None:
    """A kept embeddings reply of many vectors cut short is handed to orjson once, and once more for each kind of
    number past a double's range it refused (a copy with those finite: an exponent of 100 or more, an integer part of
    210 digits or more); to Python's `json`, not at all."""
    body = _large("embeddings", MAX_STRINGS + 10)
    for missing, number in huge.items():
        body = body.replace(missing, number)
    body = body.replace(b"-Infinity", b"-1.0").replace(b"Infinity", b"1.0").replace(b"NaN", b"0.0")
    cut = body[: len(body) * 2 // 3]
    handed.clear()
    outcome, said_cut = _read_as(_observer("embeddings"), cut, "kept")
    assert said_cut is True and TRUNCATED in outcome.output_detected
    assert [text for text in handed if text[1] > len(cut) // 10] == [("orjson", len(cut))] * (1 + passes), handed


# cut JSON texts a client's `json` reads up to their end (each with an end it reads whole), and texts it fails in
# before their end, with numbers past a double's range where the copy must read on past them, and where it must not
# (a `\uXXXX` escape whose hex holds an `e` before digits: `\u0e40`, Thai's `เ`, then `1`)
_CUT = {
    b"[1e400": b"]", b"[1e400, 2": b"]", b'[-1E+999, "x': b'"]', b'{"a": 2.5e0400, "b"': b": 1}", b"[" + LONG: b"]",
    b"[1e400, " + LONG + b".": b"5]", b"[-" + LONG + b".5e": b"-3]", b'["\\u0e401", 1e+400, "\\u00e1234", 3': b"]",
    b"[1e-400, 0e999, 1E400, NaN, " + LONG + b', "\\ud800", 5': b"]", b"[" + b"7" * 250 + b"e99, 1e400, 3": b"]",
    b"[0." + LONG + b"e400, " + b"9" * 209 + b"e99, 2": b"]", b'{"k": [' + LONG + b"], " + b'"\\u1e40": 1e400': b"}",
    b"[1.7976931348623159e308, -0.9e309": b"]", b"[1e99999999999999999999": b"]",
    # runs of 210 digits or more that are no integer part, left as they are: in a fraction, an exponent, an escape
    b"[" + LONG + b", 1." + LONG + b", 2e-" + LONG + b', "\\u12' + LONG + b'", 3': b"]",
}  # fmt: skip
_NOT_CUT = [b"[1e400.5, 1", b"[1e400e5, 1", b"[01e400, 1", b'{"a":1,1e400', b"[0" + LONG + b", 1", b"[1.e400, 2",
            b"[1e400 1", b"[--1e400, 1", b'[1e400, "a\n', b'["\\u0e4x", 1e400, 1', b"[" + LONG + b"-1, 2",
            b"[1e400, " + LONG + b"x", b"[" + LONG + b", 0" + LONG + b", 1"]  # fmt: skip
_WHOLE = [b"[1e400]", b"1e400", b"-" + LONG, b'{"a": [1E+999]}', LONG + b".5", b'["\\u0e401", 1e400]']


@pytest.mark.parametrize(("text", "end"), list(_CUT.items()))
def test_json_holding_a_number_past_a_doubles_range_cut_before_its_end_is_said_cut(text: bytes, end: bytes) -> None:
    said_cut(text, end, b"[1e400, ")


@pytest.mark.parametrize("text", _NOT_CUT)
def test_json_holding_one_a_client_fails_in_before_its_end_is_not_said_cut(text: bytes) -> None:
    not_said_cut(text, _CUT.values(), b"[1e400, ")


@pytest.mark.parametrize("text", _WHOLE)
def test_whole_json_holding_a_number_past_a_doubles_range_is_not_said_cut(text: bytes) -> None:
    json.loads(text)
    assert not ends_early(text) and not ends_early(text + b" " * (70 << 10))


_NUMBERS = st.sampled_from(
    ["1e400", "-1E+999", "2.5e0400", "1e+309", "0.9e309", "1" * 400, "-" + "9" * 309 + ".5", "7" * 250 + "e99",
     "9" * 209 + "e99", "1e-400", "0e999", "1.7976931348623157e308", "0.5", "-12", "NaN"]
)  # fmt: skip
_STRINGS = st.sampled_from(['"\\u0e40"', '"\\u0e401"', '"\\u00e1234"', '"x 1e400"', '"1E+999"', '"\\ud800"', '"a"'])
_TEXTS = st.recursive(
    _NUMBERS | _STRINGS,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
        | st.lists(st.tuples(_STRINGS, inner), max_size=3).map(
            lambda members: "{" + ", ".join(f"{key}: {value}" for key, value in members) + "}"
        )
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(_TEXTS.filter(lambda text: text[:1] in "[{"))
def test_every_cut_of_json_holding_numbers_past_a_doubles_range_is_said_cut(text: str) -> None:
    data = text.encode()
    json.loads(data)
    assert not ends_early(data)  # (whole)
    for end in range(1, len(data)):
        assert ends_early(data[:end]), data[:end]
