"""A reply framed by its connection's close whose JSON holds `NaN` or an infinity (tritonclient's, numpy's missing
values: Python's `json`, which its clients read it with, takes them) and that closed before its JSON's end was not said
cut short: `ends_early` asked orjson, which refuses at the `NaN`, before the cut at the end. An OIP REST, KServe V1 or
embeddings reply so cut was recorded as one that ended well (no `error.type`, only `scan:truncated`). It is now read on
past them as its client's `json` reads them, and said cut exactly where that `json` fails at its end (helper
bigreply5)."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import protocols
from proxy.detectors import TRUNCATED
from proxy.flow import Outcome
from proxy.protocols import MAX_STRINGS, ends_early, kserve, oip
from proxy.protocols import openai as openai_protocol
from tests.protocols.test_oip_grpc import EMAIL
from tests.test_reply_many_values_unparsed import _read_as
from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import OUT, Reply, Setup, setup_for  # noqa: F401

STATUS_ERROR = 2
MISSING = [math.nan, math.inf, -math.inf, 0.5]  # as `json.dumps` writes them: NaN, Infinity, -Infinity
INFER = {"model_name": "iris", "model_version": "1", "id": "r-1", "outputs": [
    {"name": "P", "datatype": "FP32", "shape": [4], "data": MISSING},
    {"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": [f"write to {OUT}"]}]}  # fmt: skip
PREDICT = {"predictions": [MISSING, [f"write to {OUT}"]]}
EMBEDDINGS = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": MISSING}], "model": "m",
              "usage": {"prompt_tokens": 1, "total_tokens": 1}}  # fmt: skip
CALLS = {  # API -> (path, request body, reply)
    "oip": ("/v2/models/iris/infer", {"inputs": [{"name": "X", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]},
            INFER),
    "kserve": ("/v1/models/iris:predict", {"instances": [["hi"]]}, PREDICT),
    "embeddings": ("/v1/embeddings", {"model": "m", "input": "hello"}, EMBEDDINGS),
}  # fmt: skip


def _call(setup: Setup, api: str, reply: Reply) -> tuple[httpx.Response, bytes]:
    path, request, _ = CALLS[api]
    setup.upstream.reply = reply
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json=request, timeout=30) as response:
        body = b"".join(response.iter_raw())
    return response, body


@pytest.mark.parametrize("api", list(CALLS))
def test_a_close_delimited_reply_holding_nan_closed_before_its_end_is_recorded_cut(setup_for: Any, api: str) -> None:  # noqa: F811
    setup = setup_for()
    body = json.dumps(CALLS[api][2]).encode()
    sent = body[: len(body) - 4]  # (past its NaN and infinities: they are its first values)
    assert sent.index(b"NaN") < sent.index(b"-Infinity") < len(sent) - 20
    response, got = _call(setup, api, Reply([sent[:40], sent[40:]], framing="close"))
    assert response.status_code == 200 and got == sent  # what came, and a clean end, as direct
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == "upstream_reset"
    assert span.status_code == STATUS_ERROR
    assert TRUNCATED in span.attributes["lineage.output.labels"]


@pytest.mark.parametrize("api", list(CALLS))
def test_a_whole_close_delimited_reply_holding_nan_is_not_and_is_read(setup_for: Any, api: str) -> None:  # noqa: F811
    setup = setup_for()
    body = json.dumps(CALLS[api][2]).encode() + b"\n"
    response, got = _call(setup, api, Reply([body[:40], body[40:]], framing="close"))
    assert response.status_code == 200 and got == body
    assert json.loads(got) == json.loads(body)  # (its client's `json` reads it)
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") is None
    assert TRUNCATED not in span.attributes["lineage.output.labels"]


def _observer(api: str) -> Any:
    outcome = Outcome(started_ns=1)
    if api == "oip":
        return oip.RestReplyObserver(outcome, EMAIL, False, None)
    if api == "kserve":
        return kserve.ReplyObserver(outcome, EMAIL, False)
    return openai_protocol.ReplyObserver(outcome, EMAIL, False, True)


def _large(api: str, count: int) -> bytes:
    """A reply of `count` values after those holding NaN and the infinities, as `json.dumps` writes it."""
    path, request, reply = CALLS[api]
    values = [0.25] * count
    if api == "oip":
        reply = {**reply, "outputs": [*reply["outputs"], {"name": "Q", "datatype": "FP32", "shape": [count],
                                                          "data": values}]}  # fmt: skip
    elif api == "kserve":
        reply = {"predictions": [*reply["predictions"], *[[value] for value in values]]}
    else:
        vectors = [{"object": "embedding", "index": 1, "embedding": [value]} for value in values]
        reply = {**reply, "data": [*reply["data"], *vectors]}
    return json.dumps(reply).encode()


@pytest.mark.parametrize("api", list(CALLS))
@pytest.mark.parametrize("count", [20_000, MAX_STRINGS + 10], ids=["past-64KiB", "many-values"])
def test_a_large_kept_reply_holding_nan_in_its_first_bytes_is_said_cut_where_it_is(api: str, count: int) -> None:
    """Past 64 KiB its first bytes were asked first whether they are JSON (`_fails_early`), as orjson reads them: a NaN
    there told no JSON, so never cut short. They are asked as its client's `json` reads them."""
    body = _large(api, count)
    assert body.index(b"NaN") < 1000 and len(body) > 100_000
    whole, whole_cut = _read_as(_observer(api), body, "kept")
    assert whole_cut is False and whole.output_detected == (set() if api == "embeddings" else {"pii:email"})
    outcome, cut = _read_as(_observer(api), body[: len(body) * 2 // 3], "kept")
    assert cut is True and TRUNCATED in outcome.output_detected


@pytest.mark.parametrize("api", list(CALLS))
def test_a_kept_reply_holding_a_lone_surrogate_escape_cut_short_is_said_cut(api: str) -> None:
    """A lone surrogate escape (`\\ud800`), which its client's `json` reads and orjson refuses as it refuses `NaN`, is
    read on past in the same copy (review revbigreply5: before, such a reply cut short was never said cut)."""
    body = _large(api, 20_000).replace(b"NaN", b"0.0").replace(b"Infinity", b"1.0")
    body = body.replace(b'"model_name": "iris"', b'"model_name": "iris\\ud800"').replace(
        b'"object": "list"', b'"object": "list\\udc00"'
    )
    body = body.replace(b'"predictions": [', b'"predictions": ["\\ud800", ')
    assert b"\\ud800" in body or b"\\udc00" in body
    json.loads(body)
    with pytest.raises(orjson.JSONDecodeError, match="surrogate"):
        orjson.loads(body)
    whole, whole_cut = _read_as(_observer(api), body, "kept")
    assert whole_cut is False
    outcome, cut = _read_as(_observer(api), body[: len(body) * 2 // 3], "kept")
    assert cut is True and TRUNCATED in outcome.output_detected


@pytest.mark.interpreted  # (counts the calls a module makes of a pattern's `sub`, which compiled ones make in C)
def test_a_kept_reply_of_lone_surrogate_escapes_cut_short_is_copied_without_a_patterns_pass() -> None:
    """Its copy with each surrogate's escape one orjson reads was made by `re.sub` (`_SURROGATE_ESCAPE`), stepping each
    match: 14 MiB of strings each holding a lone escape, or of escaped emoji pairs, 0.24-0.64 s in the loop turn that
    reads it. It is made by `str.replace` in C (`_no_surrogates`: 0.12-0.17 s; helper bigreply6)."""
    body = b'{"predictions": [' + b", ".join([b'["a \\ud800 b", "\\ud83d\\ude00"]'] * 5000) + b"]}"
    json.loads(body)
    assert _subs_reading_cut("kserve", body) == 0


@pytest.mark.interpreted  # (as above)
@pytest.mark.parametrize(("after", "subs"), [(b"", 0), (b'"not 1NaN",', 1)], ids=["written", "after-a-digit"])
def test_a_kept_reply_of_nan_and_the_infinities_cut_short_is_copied_without_a_patterns_pass(
    after: bytes, subs: int
) -> None:
    """Its copy with each `NaN`, `Infinity` and `-Infinity` a finite number orjson reads was made by `re.sub` stepping
    each: 15 MiB of vectors `[NaN,Infinity,-Infinity,NaN]` 0.1 s of CPU more than as many finite values (0.7 s wall on
    a loaded machine), in the loop turn that reads it. It is made by `str.replace` in C (`_finite_copy`), but for a word
    that stands after a character a number runs on from (`1NaN`, in a string: no JSON writer writes one outside),
    which only the pattern leaves as it is: there, for that word alone."""
    vector = b'{"object": "embedding", "index": 1, "embedding": [NaN, Infinity, -Infinity, NaN]}'
    body = b'{"object": "list", "data": [' + after + b", ".join([vector] * 5000) + b'], "model": "m"}'
    json.loads(body)
    assert _subs_reading_cut("embeddings", body) == subs


@pytest.mark.interpreted  # (as above)
@pytest.mark.parametrize(
    ("vector", "subs"),
    [(b"[1e400, -1E+999]", 0), (b"[1e400, 2E999, 3.5e307]", 0), (b"[1e1000, -1E+1999]", 2)],
    ids=["signed", "unsigned", "four-digit-exponents"],
)
def test_a_kept_reply_of_numbers_past_the_range_cut_short_is_copied_without_a_patterns_pass(
    vector: bytes, subs: int
) -> None:
    """Its copy with each number past a double's range a finite one was made by two patterns' `re.sub` stepping each
    exponent of three digits (`_small_exponents`): 15 MiB of `[1e400,-1E+999]` 0.40-0.41 s in the close turn, as many
    finite values 0.24-0.26 s. Every digit but `0` is made `1` first, in C, which leaves them finite: 0.28-0.30 s; the
    patterns are asked only where that leaves one past the range (an exponent of four digits)."""
    body = b'{"object": "list", "data": [' + b", ".join([vector] * 5000) + b'], "model": "m"}'
    json.loads(body)
    assert _subs_reading_cut("embeddings", body) == subs


def _subs_reading_cut(api: str, body: bytes) -> int:
    """The calls of a pattern's `sub` made reading `body` kept and cut at two thirds (said cut, its output unread)."""
    subs = 0

    def counting(frame: Any, event: str, arg: Any) -> None:
        nonlocal subs
        if event == "c_call" and getattr(arg, "__name__", "") == "sub" and isinstance(arg.__self__, re.Pattern):
            subs += 1

    sys.setprofile(counting)
    try:
        outcome, cut = _read_as(_observer(api), body[: len(body) * 2 // 3], "kept")
    finally:
        sys.setprofile(None)
    assert cut is True and TRUNCATED in outcome.output_detected
    return subs


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The texts handed to orjson and to Python's `json` (which builds as it reads: 12 MiB of tiny values 1.3-2 s to
    fail), by parser and size, refused or read. Both are looked up at each call by compiled modules too: counted
    compiled as interpreted (as `test_reply_many_values_unparsed.built`)."""
    texts: list[tuple[str, int]] = []
    orjson_loads, json_loads = orjson.loads, json.loads

    def counted_orjson(data: Any) -> Any:
        texts.append(("orjson", len(data)))
        return orjson_loads(data)

    def counted_json(text: str, **kw: Any) -> Any:
        texts.append(("json", len(text)))
        return json_loads(text, **kw)

    monkeypatch.setattr(orjson, "loads", counted_orjson)
    monkeypatch.setattr(json, "loads", counted_json)
    return texts


@pytest.mark.parametrize("missing", [False, True], ids=["finite", "nan"])
def test_a_kept_embeddings_reply_of_many_vectors_cut_short_is_not_handed_to_pythons_json(
    handed: list[tuple[str, int]], missing: bool
) -> None:
    """16 MiB of vectors kept as they passed, cut short, were parsed by Python's `json` (`_client_json`) to be told no
    JSON, 0.5-2 s in one loop turn, where orjson's refusal at its end already said so, then by orjson again to be told
    cut (`ends_early`). Now handed to orjson once; one holding `NaN`, which orjson refuses, twice (the second time its
    copy with those finite: `_finite_copy`), where it does not end in a bracket or brace, as a whole reply does; to
    Python's `json`, not at all."""
    body = _large("embeddings", MAX_STRINGS + 10)
    if not missing:
        body = body.replace(b"NaN", b"0.0").replace(b"Infinity", b"1.0")  # (-1.0 for -Infinity)
    cut = body[: len(body) * 2 // 3]
    assert cut[-1:] not in b"]}"  # (one that ends so may be whole: `_cut_at_end` leaves it to `_client_json`)
    handed.clear()
    outcome, said_cut = _read_as(_observer("embeddings"), cut, "kept")
    assert said_cut is True and TRUNCATED in outcome.output_detected
    assert [text for text in handed if text[1] > len(cut) // 10] == [("orjson", len(cut))] * (1 + missing), handed


# cut JSON texts a client's `json` reads up to their end (each with an end it reads whole), and texts it fails in
# before their end, written with `NaN` and the infinities where orjson's copy must not read on (`_NON_FINITE`)
_CUT = {
    b"[1, NaN, 2": b"]", b"[1, Na": b"N]", b"[N": b"aN]", b"[NaN, Infinity, -Infinity, 3": b"]", b'{"a": -Inf': b"inity}",
    b"[Infinit": b"y]", b"[-": b"1]", b'["NaN", "1NaN", "e-Infinity", 1': b"]", b'{"NaN": NaN, "c"': b": 1}",
    b"[null, NaN": b"]", b"Na": b"N", b"-Inf": b"inity", b'{"a": [NaN, 1], "b": "x': b'"}', b"[[NaN, 1]": b"]",
    # lone surrogate escapes, which its client's `json` reads and orjson refuses (`no low surrogate in string`), and
    # one cut within the escape after a high one (orjson: `invalid escape`), a pair and an escaped backslash beside them
    b'["\\ud800", 1': b"]", b'["\\udc00x", "\\ud83d\\ude00", "\\\\ud800", 2': b"]", b'["\\ud800\\u00': b'41"]',
    b'{"\\uDBFF": NaN, "b"': b": 1}", b'["\\ud800\\u0041", "\\ud8': b'00"]',
}  # fmt: skip
_NOT_CUT = [b'{"a":1,Na', b"[1NaN, 2", b"[1.NaN", b"[-NaN, 2", b"[1e-Infinity, 2", b"[--Infinity, 2", b"[NaNx, 1",
            b"[1 Na", b"[0.5eNaN", b'["\\ud800\\u00zz', b'["\\ud800\\x',
            # a control character in a string (a line's end), where white space may end a text cut short: orjson's
            # error is at it, its client's `json`'s too
            b'["a\n', b'["\\ud800\r', b'[NaN, "a\n\n']  # fmt: skip
_WHOLE = [b"[NaN]", b"NaN", b"-Infinity", b'{"a": [Infinity]}', b'["\\ud800"]', b'"\\udc00\\ud800"']


@pytest.mark.parametrize(("text", "end"), list(_CUT.items()))
def test_json_holding_nan_cut_before_its_end_is_said_cut(text: bytes, end: bytes) -> None:
    said_cut(text, end, b"[NaN, ")


def said_cut(text: bytes, end: bytes, lead: bytes) -> None:
    """`text`, JSON to a client's `json` once `end` is after it, is said cut; so past the first 64 KiB with `lead` in
    them, asked of them first (`_fails_early`). tests/test_json_cut_huge_numbers.py asks it too."""
    json.loads(text + end)
    with pytest.raises(ValueError):
        json.loads(text)
    assert ends_early(text)
    assert ends_early(lead + b" " * (70 << 10) + text)


@pytest.mark.parametrize("text", _NOT_CUT)
def test_json_a_client_fails_in_before_its_end_is_not_said_cut(text: bytes) -> None:
    not_said_cut(text, _CUT.values(), b"[NaN, ")


def not_said_cut(text: bytes, ends: Iterable[bytes], lead: bytes) -> None:
    """`text`, which a client's `json` fails in before its end (no end makes it JSON), is not said cut, nor past the
    first 64 KiB with `lead` in them."""
    for end in {*ends, b"", b"]", b"}", b"]}"}:
        with pytest.raises(ValueError):
            json.loads(text + end)
    assert not ends_early(text)
    assert not ends_early(lead + b" " * (70 << 10) + text)


@pytest.mark.parametrize("text", _WHOLE)
def test_whole_json_holding_nan_is_not_said_cut(text: bytes) -> None:
    json.loads(text)
    assert not ends_early(text) and not ends_early(text + b" " * (70 << 10))
    assert not ends_early(b"  ") and not ends_early(b"")


_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
_STRINGS = st.sampled_from(["NaN", "1NaN", "-Infinity", "e-Infinity", "Inf", "x", "\ud800", "\udc00\ud800", "\\ud800"])
_VALUES = st.recursive(
    _FLOATS | _STRINGS | st.integers() | st.none() | st.booleans(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_STRINGS, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_VALUES, max_size=4) | st.dictionaries(_STRINGS, _VALUES, max_size=3), st.integers(0, 2))
def test_every_cut_of_json_holding_nan_and_infinities_is_said_cut(value: Any, indent: int) -> None:
    text = json.dumps(value, indent=indent or None).encode()
    assert not ends_early(text)  # (whole)
    for end in range(1, len(text)):
        assert ends_early(text[:end]), text[:end]


class _Reading:
    """A pattern whose `sub` counts the characters it is given (`read`)."""

    def __init__(self, pattern: re.Pattern[str], read: list[int]) -> None:
        self.pattern, self.read = pattern, read

    def sub(self, repl: str, text: str) -> str:
        self.read.append(len(text))
        return self.pattern.sub(repl, text)


@pytest.mark.interpreted  # (replaces a module's patterns, which compiled code reads as constants)
@pytest.mark.parametrize("at", [0.5, 0.9, 1.0])
def test_a_copy_whose_word_after_a_digit_comes_late_has_only_the_rest_read_by_the_pattern(
    monkeypatch: pytest.MonkeyPatch, at: float
) -> None:
    """A text dense with `NaN`, `Infinity` and `-Infinity` holding one after a character a number runs on from (`1NaN`
    in a string) late: the pattern read all of it after `kept.search` had read it to there, 18 % more than the pattern
    alone where that one is last in 15 MiB. Only the text from it is read by the pattern now, the copy the same."""
    vectors = ", ".join(["[NaN, Infinity, -Infinity, NaN]"] * 2000)
    place = int(len(vectors) * at)
    place = vectors.rfind(", ", 0, place) if at < 1 else len(vectors)
    text = "[" + vectors[:place] + ', "not 1NaN 1Infinity 1-Infinity"' + vectors[place:] + "]"
    json.loads(text)
    copy = protocols._finite_copy(text)
    read: list[int] = []
    monkeypatch.setattr(
        protocols,
        "_NON_FINITE",
        tuple((word, finite, _Reading(changed, read), kept) for word, finite, changed, kept in protocols._NON_FINITE),
    )
    assert protocols._finite_copy(text) == copy and orjson.loads(copy)
    assert len(read) == 3 and all(count <= len(text) - place for count in read), (read, len(text) - place)
