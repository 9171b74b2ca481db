"""Replies of a million tiny values held the event loop while orjson built them all, in one turn: a KServe V1 reply's
`predictions`, an embeddings reply's `data` (0.4-0.5 s at 16 MiB, 1-2 s on a loaded machine). Their first
`MAX_STRINGS` + 1 are now found in the bytes and parsed, with the members after the list (found from the reply's end),
as an OIP `/infer` reply's `outputs` are (whose members after them were left unread until 2026-12-05: its `model_name`
and `model_version`, the record's checkpoint, among them)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any
from unittest import mock

import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import TRUNCATED
from proxy.flow import Outcome
from proxy.protocols import MAX_STRINGS, kserve, oip, oip_generate
from proxy.protocols import openai as openai_protocol
from tests.configs import ONE_UPSTREAM
from tests.harness import LoopThread, ProxyHandle
from tests.protocols.test_oip_grpc import EMAIL
from tests.protocols.test_registry import JSON_VALUES
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.raw_origin import proxy_in_front, request_body
from tests.test_oip_reply_many_outputs_unparsed import _read as oip_read

ADDRESS = "alice@example.com"
MILLION = 1_000_000


def _json_type(name: str) -> str | None:
    return "application/json" if name == "content-type" else None


def _kserve(body: bytes) -> Outcome:
    outcome = Outcome(started_ns=0)
    observer = kserve.ReplyObserver(outcome, EMAIL, False)
    observer.head(200, _json_type)
    observer.body(body)
    observer.finish()
    return outcome


def _embeddings(body: bytes, pieces: int = 0) -> tuple[Outcome, bool]:
    """An embeddings reply read whole (sized), or kept in `pieces` as it passed and read at its close: its outcome,
    and whether it was said cut short."""
    outcome = Outcome(started_ns=0)
    observer = openai_protocol.ReplyObserver(outcome, EMAIL, False, True)
    observer.head(200, _json_type)
    cut = False
    if pieces:
        size = -(-len(body) // pieces)
        for at in range(0, len(body), size):
            observer.chunk(body[at : at + size])
        cut = observer.cut_short()
    else:
        observer.body(body)
    observer.finish()
    return outcome, cut


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The JSON texts values were built from, by size: those orjson read, and all Python's `json` was handed (which
    builds as it reads: 12 MiB of tiny values 1.3-2 s to fail); not those orjson refused, which cost it none (14 MiB
    70 ms). orjson and `json` are looked up at each call by compiled modules too: counted compiled as interpreted."""
    sizes: list[int] = []
    orjson_loads, json_loads = orjson.loads, json.loads

    def counted_orjson(data: Any) -> Any:
        value = orjson_loads(data)
        sizes.append(len(data))
        return value

    def counted_json(text: str, **kw: Any) -> Any:
        sizes.append(len(text))
        return json_loads(text, **kw)

    monkeypatch.setattr(orjson, "loads", counted_orjson)
    monkeypatch.setattr(json, "loads", counted_json)
    return sizes


def _predictions(count: int, item: Any = (0.5,)) -> list[Any]:
    values: list[Any] = [list(item)] * count
    values[0] = [ADDRESS]
    return values


def test_a_kserve_reply_of_a_million_predictions_has_only_those_read_parsed(built: list[int]) -> None:
    body = orjson.dumps({"predictions": _predictions(MILLION)})  # 6.9 MB
    outcome = _kserve(body)
    assert len(built) == 1 and built[0] < len(body) // 10  # (the whole body before)
    # numbers are no labelled data: those unread hold no string, so the labels are whole; no digest of a part
    assert outcome.output_detected == {"pii:email"}
    assert outcome.output_digest is None
    whole = _kserve(orjson.dumps({"predictions": _predictions(MAX_STRINGS)}))  # at the bound: parsed whole
    assert whole.output_detected == {"pii:email"} and whole.output_digest is not None


def test_a_kserve_reply_cut_reads_the_members_after_its_predictions_and_says_what_it_left() -> None:
    after = orjson.dumps({"predictions": _predictions(MAX_STRINGS + 5), "note": "bob@example.org"})
    assert kserve.many_values(after, kserve._MANY_PREDICTIONS, kserve._OUTPUTS_NAMED)[0] is not after
    assert _kserve(after.replace(ADDRESS.encode(), b"x")).output_detected == {"pii:email"}  # (the note's)
    late = _predictions(MAX_STRINGS + 5)
    late[-1] = ["bob@example.org"]  # a string past those read: unread, said so
    assert _kserve(orjson.dumps({"predictions": late})).output_detected == {"pii:email", TRUNCATED}
    again = orjson.dumps({"outputs": _predictions(MAX_STRINGS + 5), "predictions": [["bob@example.org"]]})
    assert kserve.many_values(again, kserve._MANY_PREDICTIONS, kserve._OUTPUTS_NAMED)[0] is again  # its client's
    assert "pii:email" in _kserve(again.replace(ADDRESS.encode(), b"x")).output_detected


def _vectors(count: int) -> bytes:
    data = [{"object": "embedding", "index": 0, "embedding": [0.5]}] * count
    usage = {"prompt_tokens": 7, "total_tokens": 7}
    return orjson.dumps({"object": "list", "data": data, "model": "emb-1", "usage": usage})  # (OpenAI's order)


def test_an_embeddings_reply_of_a_million_vectors_has_only_those_read_parsed_and_its_model_after_them(
    built: list[int],
) -> None:
    body = _vectors(MILLION)  # 47 MB
    outcome, _ = _embeddings(body)
    assert len(built) == 1 and built[0] < len(body) // 10  # (the whole body before)
    assert outcome.response_model == "emb-1" and outcome.input_tokens == 7  # (after the vectors)
    assert outcome.output_detected == frozenset()


def test_an_embeddings_reply_kept_as_it_passed_is_told_whole_or_cut_short() -> None:
    body = _vectors(MAX_STRINGS + 10)
    outcome, cut = _embeddings(body, 7)
    assert not cut and outcome.response_model == "emb-1"
    # cut off after a vector's object: its rest ends as an object does, but not as this reply's JSON does
    shorter = body[: body.rindex(b"]}", 0, len(body) // 2) + 2]
    assert _embeddings(shorter, 7)[1]


def test_an_oip_reply_cut_reads_its_model_and_parameters_after_its_outputs() -> None:
    """Before 2026-12-05 the members after a cut reply's `outputs` were unread: its model (the record's checkpoint
    `m:1`) was not recorded, an address in its parameters not read."""
    outputs = [{"name": "o", "datatype": "FP32", "shape": [1], "data": [1.5]}] * (MAX_STRINGS + 5)
    body = orjson.dumps({"outputs": outputs, "model_name": "m", "model_version": "1", "id": "r1",
                         "parameters": {"note": "bob@example.org \\\"]"}})  # fmt: skip
    assert len(orjson.loads(oip.many_values(body, after_unread=True)[0])["outputs"]) == MAX_STRINGS + 1
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.body(body)
    observer.finish()
    assert outcome.response_model == "m:1" and outcome.response_id == "r1"
    assert outcome.output_detected == {"pii:email", TRUNCATED}


MANY_VECTORS = _vectors(300_000)  # 14 MB: under `limits.buffer_max_bytes`, so read whole


async def _answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(MANY_VECTORS))
    writer.write(MANY_VECTORS)
    await writer.drain()
    return True


def test_the_openai_sdk_gets_an_embeddings_reply_of_many_vectors_whole_and_the_record_names_its_model(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    spans = f"telemetry: {{exporter: otlp, endpoint: 'http://127.0.0.1:{otlp.port}'}}\n"
    with proxy_in_front(loop_thread, make_proxy, ONE_UPSTREAM + spans, _answer) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", timeout=120, max_retries=0)
        answer = client.embeddings.create(model="emb-1", input="hello")
    assert len(answer.data) == 300_000 and answer.model == "emb-1"  # passed on whole
    (span,) = otlp.wait_for(lambda found: len(found) == 1)
    assert span.attributes["gen_ai.response.model"] == "emb-1"
    assert span.attributes["gen_ai.usage.input_tokens"] == 7
    assert TRUNCATED not in span.attributes.get("lineage.output.labels", ())


@pytest.mark.parametrize(
    ("outputs", "after", "read"),
    [
        ([], {"parameters": {"a": {"b": {"c": {"note": "bob@example.org"}}}}}, True),  # (nested four levels)
        ([], {"id": "r" * (1 << 17)}, True),  # (past the last 64 KiB the members after them are looked for in)
        ([{"data": [[[[1]]]]}], {"parameters": {"a": {"b": {"c": {"note": "bob@example.org"}}}}}, True),
        ([{"data": [[[[1]]]]}], {"id": "r" * (1 << 17)}, True),
    ],
    ids=["deep", "long", "deep-outputs", "deep-outputs-long"],
)
def test_an_oip_reply_cut_whose_members_after_its_outputs_are_not_found_from_its_end_is_not_parsed_whole(
    outputs: list[Any], after: dict[str, Any], read: bool
) -> None:
    """A reply whose members after its `outputs` are not found from its end (nested deeper than three levels, or
    longer than the bytes searched) was parsed whole from 2026-12-05 (d12bd55: a million tiny outputs, 12 MiB, 1.2 s of
    the loop's turn, where 0.08 s before it), then cut with those members unread (76f20ac), then read after its outputs
    walked from the cut, but for an output past those read nested four levels (its `model_name` unread: the walk read
    three): they are now found after the outputs' end, read from the cut at any depth (`oip._list_end`). Its output
    `scan:truncated`."""
    body = orjson.dumps({"outputs": [{"data": [1]}] * MILLION + outputs, "model_name": "m", **after})
    cut = oip.many_values(body, after_unread=True)[0]
    assert cut is not body and len(cut) < len(body) // 10
    assert len(orjson.loads(cut)["outputs"]) == MAX_STRINGS + 1
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.body(body)
    observer.finish()
    assert TRUNCATED in outcome.output_detected and outcome.output_digest is None
    assert (outcome.response_model == "m") is read
    assert ("pii:email" in outcome.output_detected) is (read and "parameters" in after)


# members after a cut list whose last value ends in `]` where the walk back from the reply's end stops: nested four
# levels, or longer than the bytes it searches (a list of 40,000 zeros, 80 KB)
_DEEP_AFTER = b',"x":[[[[1]]]]'
_LONG_AFTER = b',"x":[' + b",".join([b"0"] * 40_000) + b"]"


def _with_after(body: bytes, after: bytes) -> bytes:
    return body[:-1] + after + b"}"


@pytest.mark.parametrize("after", [_DEEP_AFTER, _LONG_AFTER], ids=["deep", "long"])
@pytest.mark.parametrize("pieces", [0, 7], ids=["sized", "kept"])
def test_an_embeddings_reply_cut_reads_its_model_and_usage_before_a_member_ending_in_a_bracket(
    after: bytes, pieces: int
) -> None:
    """Before this change the walk back from its end took the last `]` of such a member for the end of `data`: the
    reply read was its first 65,537 vectors and nothing after them, no model, no tokens recorded."""
    body = _with_after(_vectors(MAX_STRINGS + 10), after)
    outcome, cut = _embeddings(body, pieces)
    assert not cut
    assert outcome.response_model == "emb-1" and outcome.input_tokens == 7


@pytest.mark.parametrize("after", [_DEEP_AFTER, _LONG_AFTER], ids=["deep", "long"])
def test_an_oip_and_a_kserve_reply_cut_read_their_members_before_a_member_ending_in_a_bracket(after: bytes) -> None:
    outputs = [{"name": "o", "datatype": "FP32", "shape": [1], "data": [1.5]}] * (MAX_STRINGS + 5)
    body = orjson.dumps({"outputs": outputs, "model_name": "m", "model_version": "1", "id": "r1"})
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.body(_with_after(body, after))
    observer.finish()
    assert outcome.response_model == "m:1" and outcome.response_id == "r1"
    assert outcome.output_detected == {TRUNCATED}
    predictions = orjson.dumps({"predictions": [[0.5]] * (MAX_STRINGS + 5), "note": "bob@example.org"})
    assert _kserve(_with_after(predictions, after)).output_detected == {"pii:email"}
    event = orjson.loads(
        oip.many_values(_with_after(body, after), after_unread=True)[0]
    )  # (an MLServer `infer_stream` event's)
    assert event["model_name"] == "m" and len(event["outputs"]) == MAX_STRINGS + 1


@settings(max_examples=400, deadline=None)
@given(
    st.lists(JSON_VALUES, min_size=2, max_size=6)
    | st.tuples(JSON_VALUES, st.integers(2, 5)).map(lambda v: [v[0]] * v[1]),
    st.dictionaries(st.text(alphabet='ab":\\]', max_size=3), JSON_VALUES, max_size=3),
    st.lists(JSON_VALUES, max_size=3),
)
def test_a_cut_lists_end_is_where_it_ends(values: list[Any], members: dict[str, Any], last: Any) -> None:
    """Values and members written by hand, strings with quotes, brackets and backslashes in them, a member after the
    list that is a list itself last (where a walk from the end stopped): the list's end is found where it is, however
    deep its values and the members after it (until 2026-12-05 not at all where both were nested four levels)."""
    head = b'{"data":[' + orjson.dumps(values[0])
    cut = len(head)
    head += b"".join(b"," + orjson.dumps(value) for value in values[1:])
    closed = len(head)
    head += b"]," + orjson.dumps({**members, "x": last})[1:]
    assert orjson.loads(head)["data"] == values
    assert oip._list_end(head, cut) == closed
    assert oip._list_end(head[: closed - 1], cut) == -1  # (cut short: no end)


def _nested(value: Any, kinds: str) -> Any:
    """`value` in a list (`[`) or an object (`{`) for each of `kinds`, the first outermost."""
    for kind in reversed(kinds):
        value = [value] if kind == "[" else {"a": value}
    return value


@pytest.mark.parametrize("kinds", ["[" * 17, "[{" * 20, "{" * 100], ids=["17", "40-mixed", "100"])
def test_a_reply_cut_reads_its_members_after_a_value_nested_over_16_levels(kinds: str) -> None:
    """Before this change a value past those read nested over 16 levels (`oip._DEPTHS`) had the outputs' end found
    from the reply's end taken for none, and the walk from the cut did not find it either (values nested at most three
    levels): an OIP reply was cut with its members after its outputs unread, its `model_name` and `model_version` (the
    record's checkpoint) among them; an embeddings reply was parsed whole."""
    outputs = [{"data": [1]}] * (MAX_STRINGS + 9) + [_nested({"data": [ADDRESS]}, kinds), {"data": [2]}]
    body = orjson.dumps({"outputs": outputs, "model_name": "m", "model_version": "1", "id": "r1"})
    event = orjson.loads(oip.many_values(body, after_unread=True)[0])  # (an MLServer `infer_stream` event's)
    assert event["model_name"] == "m" and len(event["outputs"]) == MAX_STRINGS + 1
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.body(body)
    observer.finish()
    assert outcome.response_model == "m:1" and outcome.response_id == "r1"
    assert outcome.output_detected == {TRUNCATED}  # (the address unread)
    vectors = orjson.loads(_vectors(MAX_STRINGS + 9))
    vectors["data"].append(_nested({"embedding": [0.5]}, kinds))
    body = orjson.dumps(vectors)
    read = openai_protocol.many_values(body, openai_protocol._MANY_EMBEDDINGS, openai_protocol._DATA_NAMED)[0]
    assert read is not body  # (cut: parsed whole before)
    assert _embeddings(body)[0].response_model == "emb-1"


def test_values_whose_strings_hold_brackets_are_read_in_bounded_memory() -> None:
    """Their strings were taken out with one `split` of the whole list: 2 MiB of `["["]` held 41 MB of pieces (16 MiB,
    333 MB); now a piece at a time (`oip._piece_depths`)."""
    values = b",".join([b'["["]', b'{"]":"}"}'] * (1 << 17))  # 2 MiB, a pair of values repeated: no one value repeats
    head = b'{"data":[0,' + values + b'],"x":["]"]}'
    tracemalloc.start()
    try:
        found = oip._list_end(head, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == 11 + len(values)
    assert oip._list_end(head.replace(b'],"x"', b']],"x"'), 10) == 11 + len(values)  # (one more closed: at its first)
    assert peak < 4 * len(head), peak


def _geometric(size: int) -> bytes:
    """Values nested 1 to 59 levels, each level's count 16/17 of the one above it, in no order, to `size` bytes."""
    chains = [b"[" * depth + b"1" + b"]" * depth for depth in range(1, 60)]
    counts = [max(1, int(600 * (16 / 17) ** depth)) for depth in range(1, 60)]
    drawn = random.Random(0).choices(chains, counts, k=size // 20)
    return b",".join(drawn)


@pytest.mark.interpreted
@pytest.mark.parametrize("first", [b"", b'{"data":[1]},'], ids=["brackets", "a-brace-first"])
def test_a_cut_lists_end_reads_values_nested_ever_fewer_deeper_in_few_passes(first: bytes) -> None:
    """Each level of such values' innermost pairs took out just over 1/16 of what was left, so that it was taken out
    level by level, a pass over most of the list each: ~57 passes, 25 times its bytes (16 MiB: 1.2 s of CPU in one turn
    of the loop). The passes now read at most as many bytes as a valley they leave costs (`oip._VALLEY_COST`): under
    twice its bytes (0.3 s). Counted as the bytes `bytes.replace` is called on (`sys.setprofile`: interpreted). With a
    brace among them (an OIP reply's outputs, objects), read kind by kind (`oip._kinds_close`), they were taken out so
    again until the review of helper bigreply2's change, ~38 times its bytes (1.2 s): its passes now stop as many bytes
    before as a run of closing ones left for Python costs (`oip._RUN_COST`)."""
    values = first + _geometric(1 << 21)
    head = b'{"data":[0,' + values + b'],"model":"m"}'
    read = 0

    def counting(frame: Any, event: str, arg: Any) -> None:
        nonlocal read
        if event == "c_call" and getattr(arg, "__name__", "") == "replace" and isinstance(arg.__self__, bytes):
            read += len(arg.__self__)

    sys.setprofile(counting)
    try:
        found = oip._list_end(head, 10)
    finally:
        sys.setprofile(None)
    assert found == 11 + len(values)
    assert read < 4 * len(head), read / len(head)


_SHALLOW = st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='ab":\\ {}[],', max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(JSON_VALUES, st.text(alphabet="[{", max_size=60)), min_size=2, max_size=4),
    st.dictionaries(st.text(alphabet='ab":\\]', max_size=3), _SHALLOW | st.lists(_SHALLOW, max_size=3), max_size=3),
)
def test_a_cut_lists_end_is_found_whatever_the_depth_of_its_values(
    nested: list[tuple[Any, str]], members: dict[str, Any]
) -> None:
    """Values nested up to 60 levels or so (brackets and braces mixed), members after the list nested at most three
    levels, the last of them a list (where the walk back stops): the list's end is found where it is."""
    values = [_nested(value, kinds) for value, kinds in nested] + [[0]]  # (no one value's shape repeated)
    head = b'{"data":[' + orjson.dumps(values[0])
    cut = len(head)
    head += b"".join(b"," + orjson.dumps(value) for value in values[1:])
    closed = len(head)
    head += b"]," + orjson.dumps({**members, "x": [[0]]})[1:]
    assert oip._list_end(head, cut) == closed


@pytest.mark.interpreted
@settings(max_examples=300, deadline=None)
@given(
    st.lists(JSON_VALUES, min_size=1, max_size=6),
    st.lists(JSON_VALUES, max_size=2),
    st.sampled_from([1, 2, 5, 13]),
    st.sampled_from([1, 4]),
)
def test_a_cut_lists_end_is_found_across_the_pieces_it_is_read_in(
    values: list[Any], after: list[Any], piece: int, by_byte: int
) -> None:
    """The pieces `_list_end` reads (64 KiB) and the bytes it reads one by one in the piece holding the end made a few
    bytes, so that strings, escapes and nested values cross their bounds: the end is where it is, and none where the
    reply is cut short before it."""
    head = b'{"data":[0' + b"".join(b"," + orjson.dumps(value) for value in values)
    closed = len(head)
    head += b'],"x":' + orjson.dumps(after) + b"}"
    with mock.patch.object(oip, "_SCAN_PIECE", piece), mock.patch.object(oip, "_FOUND_BY_BYTE", by_byte):
        assert oip._list_end(head, 10) == closed
        assert oip._list_end(head[:closed], 10) == -1


@pytest.mark.interpreted  # (counts what a compiled module hands to a function it imported)
@pytest.mark.parametrize(
    "value", [b"[[[[1]]]]", b'{"data":[1]}', b'["[",{"a":[[2]]}]', b"[[[[1]]]],[[[[[2]]]]]"], ids=["4", "o", "s", "4-5"]
)
def test_a_cut_lists_end_reads_values_of_one_shape_without_their_valleys(
    monkeypatch: pytest.MonkeyPatch, value: bytes
) -> None:
    """Values of one shape nested four levels or more had each of their valleys (`][`, one a value) summed
    (`oip._lowest`: ~0.13 us each), 16 MiB of `[[[[]]]]` 0.53 s of CPU where main's check of one shape repeated
    took 36 ms: a piece whose structure repeats a block is now read as that block (review of helper bigreply)."""
    values = b",".join([value] * ((1 << 21) // len(value)))
    summed = _valleys_summed(monkeypatch, values)
    assert summed < len(values) // 100, summed  # (those of the piece holding the end, a few thousand: ~2 in 10 before)


def _valleys_summed(monkeypatch: pytest.MonkeyPatch, values: bytes) -> int:
    """The valleys `oip._lowest` sums finding the end of a list of `values` (its `accumulate` counted)."""
    summed = 0

    def counting(values: Any, *args: Any) -> Any:
        nonlocal summed
        found = list(oip_accumulate(values, *args))
        summed += len(found)
        return found

    oip_accumulate = oip.accumulate
    monkeypatch.setattr(oip, "accumulate", counting)
    head = b'{"data":[0,' + values + b'],"model":"m","x":[[[[0]]]]}'
    assert oip._list_end(head, 10) == 11 + len(values)
    return summed


@pytest.mark.interpreted  # (counts what a compiled module hands to a function it imported)
def test_a_cut_lists_end_takes_out_values_nested_a_few_levels_in_no_order_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Values nested 3 to 6 levels in no order had their pairs taken out two levels, then each value's valley summed
    (~0.13 us each, where a level's pass reads ~5 ns a byte): 16 MiB 0.49 s of CPU, 0.28 s before 2026-12-05 (levels
    to the last). The passes now go on while those left, shrinking as the last did, read less than the valleys cost:
    0.27 s (helper bigreply2)."""
    drawn = random.Random(0).choices([b"[" * depth + b"]" * depth for depth in range(3, 7)], k=1 << 18)
    values = b",".join(drawn)
    summed = _valleys_summed(monkeypatch, values)
    assert summed < len(values) // 100, summed  # (~1 a value before: 1 in 9 bytes)


@pytest.mark.parametrize("nested", [b"[1}", b'{"a":[[2]}}', b"[[[[[1]]]]}"], ids=["1", "3", "5"])
@pytest.mark.parametrize("count", [10, MAX_STRINGS + 9], ids=["few", "many"])
def test_a_reply_whose_outputs_past_those_read_close_a_bracket_with_a_brace_is_read_as_no_json(
    nested: bytes, count: int
) -> None:
    """A `}` closing a `[` among an OIP reply's outputs (no JSON: its client's `json.loads` fails) leaves it unread, its
    model unrecorded, as a reply of few outputs is, however many it has. Before this change one of more than 65,537,
    whose outputs past those read were told from their brackets and braces read alike, was read as its first 65,537,
    its `model_name` after them recorded (`m`)."""
    outputs = orjson.dumps({"outputs": [{"data": [1]}] * count})[:-2]
    body = outputs + b',{"data":' + nested + b'},{"data":[2]}],"model_name":"m","model_version":"1"}'
    outcome = oip_read(body)
    assert outcome.response_model is None
    assert outcome.output_detected == {TRUNCATED} and outcome.output_digest is None
    assert oip.many_values(body, after_unread=True)[0] is body  # (parsed whole: no JSON)
    vectors = _vectors(count)[:-1].replace(b'],"model"', b",[" + nested + b'],"model"') + b"}"
    read = openai_protocol.many_values(vectors, openai_protocol._MANY_EMBEDDINGS, openai_protocol._DATA_NAMED)[0]
    assert read is vectors


def _oip_read_framed_by_close(body: bytes, content_type: str) -> tuple[Outcome, bool]:
    """An OIP reply kept as it passed and read at its close: its outcome, and whether it was said cut short."""
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.head(200, {"content-type": content_type}.get)
    observer.chunk(body)
    cut = observer.cut_short()
    observer.finish()
    return outcome, cut


@pytest.mark.parametrize("charset", ["", "; charset=utf-7"], ids=["utf-8", "utf-7"])
def test_a_reply_of_many_outputs_whose_brackets_do_not_match_is_unread_unparsed(
    built: list[int],
    charset: str,
) -> None:
    """A reply of more than 65,537 outputs whose brackets and braces past those do not match (`_list_end`: `NO_JSON`)
    was parsed whole to be told no JSON (1.5 s of CPU for 12 MiB of tiny outputs, the bad brace near their end): it is
    now unread unparsed, as the same of few outputs is read (unread, not cut short, its model unrecorded), since
    the review of helper bigreply2's change. One whose type names a charset is parsed whole still (in it its rest may
    be other JSON)."""
    nested = b'{"data":[1}},{"data":[2]}],"model_name":"m","model_version":"1"}'
    few = orjson.dumps({"outputs": [{"data": [1]}] * 10})[:-2] + b"," + nested
    many = orjson.dumps({"outputs": [{"data": [1]}] * (MAX_STRINGS + 9)})[:-2] + b"," + nested
    read_few, cut_few = _oip_read_framed_by_close(few, "application/json" + charset)
    built.clear()
    read_many, cut_many = _oip_read_framed_by_close(many, "application/json" + charset)
    assert (
        (read_many.response_model, read_many.output_detected, read_many.output_digest, cut_many)
        == (
            read_few.response_model,
            read_few.output_detected,
            read_few.output_digest,
            cut_few,
        )
        == (None, {TRUNCATED}, None, False)
    )
    assert (len(many) in built) == bool(charset), built


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(JSON_VALUES, st.text(alphabet="[{", max_size=30)), min_size=1, max_size=4),
    st.integers(0, 10_000),
    st.sampled_from([5, 64, 1 << 16]),
)
def test_a_cut_lists_values_closing_a_bracket_with_a_brace_are_no_json(
    nested: list[tuple[Any, str]], where: int, piece: int
) -> None:
    """One closing bracket or brace among the values turned into the other kind: the list's end is `NO_JSON` where that
    one closes what it does not match (as a stack of them reads it), else where it is."""
    values = [_nested(value, kinds) for value, kinds in nested]
    written = b"".join(b"," + orjson.dumps(value) for value in values)
    closers = [at for at, byte in enumerate(written) if byte in b"]}"]
    if not closers:
        return
    at = closers[where % len(closers)]
    changed = written[:at] + (b"}" if written[at] == 93 else b"]") + written[at + 1 :]
    head = b'{"data":[0' + changed + b'],"x":[[0]]}'
    stack: list[int] = []
    quoted, escaped, want = False, False, 10 + len(changed)
    for index, byte in enumerate(head[10:], 10):  # (a stack of them, strings and escapes read)
        if quoted:
            quoted, escaped = (quoted, False) if escaped else (byte != 34, byte == 92)
        elif byte == 34:
            quoted = True
        elif byte in b"[{":
            stack.append(byte)
        elif byte in b"]}" and not stack:  # (the list's end)
            want = index if byte == 93 else oip.NO_JSON
            break
        elif byte in b"]}" and stack.pop() + 2 != byte:
            want = oip.NO_JSON
            break
    with mock.patch.object(oip, "_SCAN_PIECE", piece):
        assert oip._list_end(head, 10) == want


@pytest.mark.interpreted  # (counts what a compiled module hands to a pattern it holds)
@pytest.mark.parametrize("depths", [(8, 12), (12, 20)], ids=["8-12", "12-20"])
def test_a_cut_lists_end_takes_out_chains_of_brackets_a_brace_among_them_whole(
    monkeypatch: pytest.MonkeyPatch, depths: tuple[int, int]
) -> None:
    """Values nested 8 to 20 levels, an OIP output's brace among them (so their kinds are checked, `oip._kinds_close`),
    were left as two runs each after a pass (an opening one, a closing one), each stepped in Python: 16 MiB 0.37-0.58 s
    of CPU interpreted, where 0.26-0.32 s before the check of kinds. Their chains of brackets are now taken out whole
    first (`oip._CHAINS`), 0.15 s (helper bigreply3)."""
    drawn = random.Random(0).choices([b"[" * depth + b"]" * depth for depth in range(*depths)], k=1 << 16)
    values = b'{"data":[1]},' + b",".join(drawn)
    stepped = 0
    runs = oip._RUNS

    class Counting:
        def findall(self, shape: bytes) -> list[bytes]:
            nonlocal stepped
            found = runs.findall(shape)
            stepped += len(found)
            return found

    monkeypatch.setattr(oip, "_RUNS", Counting())
    head = b'{"data":[0,' + values + b'],"model":"m","x":[[[[0]]]]}'
    assert oip._list_end(head, 10) == 11 + len(values)
    assert stepped < len(values) // 100, stepped  # (~2 a value before: 1 in 8 to 1 in 16 bytes)


def _read_as(observer: Any, body: bytes, how: str) -> tuple[Outcome, bool | None]:
    """`body` read by `observer` (its outcome's): a sized reply's (`body`), one kept as it passed and read at its close
    (`kept`: whether it was said cut short too), or an event stream's one event (`event`)."""
    observer.head(200, {"content-type": "text/event-stream" if how == "event" else "application/json"}.get)
    cut = None
    if how == "body":
        observer.body(body)
    elif how == "kept":
        for at in range(0, len(body), 1 << 20):
            observer.chunk(body[at : at + (1 << 20)])
        cut = observer.cut_short()
    else:
        observer.chunk(b"data: " + body + b"\n\n")
    observer.finish()
    return observer.outcome, cut


_INVALID = {  # (a reply's start, a value, the value with a `}` closing a `[`, the reply's end)
    "kserve": (b'{"predictions":[', b"[0.5]", b"[1}", b'],"model_name":"m"}'),
    "embeddings": (
        b'{"object":"list","data":[',
        b'{"object":"embedding","index":0,"embedding":[0.5]}',
        b'{"embedding":[1}}',
        b'],"model":"emb-1","usage":{"prompt_tokens":7,"total_tokens":7}}',
    ),
    "infer_stream": (b'{"model_name":"m","outputs":[', b'{"data":[1]}', b'{"data":[1}}', b'],"id":"x"}'),
}


def _observer(api: str) -> Any:
    outcome = Outcome(started_ns=1)
    if api == "kserve":
        return kserve.ReplyObserver(outcome, EMAIL, False)
    if api == "embeddings":
        return openai_protocol.ReplyObserver(outcome, EMAIL, False, True)
    return oip_generate.GenerateObserver(outcome, EMAIL, False)


@pytest.mark.parametrize(
    ("api", "how"),
    [("kserve", "body"), ("kserve", "kept"), ("embeddings", "body"), ("embeddings", "kept"), ("infer_stream", "body"),
     ("infer_stream", "kept"), ("infer_stream", "event")],
)  # fmt: skip
def test_a_reply_of_many_values_whose_brackets_do_not_match_is_read_as_no_json_unparsed(
    built: list[int],
    api: str,
    how: str,
) -> None:
    """A KServe V1, embeddings or `/infer_stream` reply of more than 65,537 values whose brackets and braces past those
    do not match (`oip._list_end`: `NO_JSON`) was parsed whole to be told no JSON (12 MiB: 0.5-2 s of CPU interpreted,
    a kept one's parsed again to be told whether it was cut short), where an OIP `/infer` reply so written was not: it
    is now none unparsed, as OIP's is, its record the same as one of few values so written (helper bigreply3)."""
    start, value, bad, end = _INVALID[api]
    few = _read_as(_observer(api), start + b",".join([value] * 10 + [bad, value]) + end, how)
    many_body = start + b",".join([value] * (MAX_STRINGS + 9) + [bad, value]) + end
    built.clear()
    many = _read_as(_observer(api), many_body, how)
    assert (many[0].response_model, many[0].output_detected, many[0].output_digest, many[1]) == (
        few[0].response_model, few[0].output_detected, few[0].output_digest, few[1]
    ) == (None, {TRUNCATED}, None, None if how != "kept" else False)  # fmt: skip
    assert max(built, default=0) < len(many_body) // 10, built  # (orjson refuses it whole at most: `oip.whole_json`)


_NESTED = {  # (a value nested past three levels, as the reply's end in the shape matched is not)
    "embeddings": b'{"object":"embedding","index":1,"embedding":[[[0.5]]]}',
    "infer_stream": b'{"name":"o","data":[[[1]]]}',
}


@pytest.mark.interpreted  # (counts what a compiled module hands to a function of its own)
@pytest.mark.parametrize(("api", "how"), [("embeddings", "kept"), ("infer_stream", "body"), ("infer_stream", "kept")])
def test_a_whole_reply_of_many_values_nested_deeper_is_parsed_whole_without_its_lists_end_looked_for(
    monkeypatch: pytest.MonkeyPatch,
    built: list[int],
    api: str,
    how: str,
) -> None:
    """A whole `/infer_stream` reply, or an embeddings one kept as it passed, of more than 65,537 values, one past those
    nested deeper than the shape matched (`oip._OUTPUTS_END`), is parsed whole, as its JSON alone tells whether it was
    cut short: its list's end was looked for first (`oip._list_end`, 30-220 ms of 14 MiB), to be told no JSON, which
    orjson's parse tells where it refuses it. Now looked for only there (`oip.whole_json`), once, as before."""
    start, value, bad, end = _INVALID[api]
    looked: list[int] = []
    list_end = oip._list_end

    def counting(head: bytes, cut: int) -> int:
        looked.append(cut)
        return list_end(head, cut)

    monkeypatch.setattr(oip, "_list_end", counting)
    body = start + b",".join([value] * (MAX_STRINGS + 9) + [_NESTED[api], value]) + end
    outcome, cut = _read_as(_observer(api), body, how)
    assert (looked, built.count(len(body))) == ([], 1)
    assert (outcome.response_model, cut) == (
        "m" if api == "infer_stream" else "emb-1",
        None if how == "body" else False,
    )
    refused = start + b",".join([value] * (MAX_STRINGS + 9) + [_NESTED[api], bad, value]) + end
    built.clear()
    outcome, cut = _read_as(_observer(api), refused, how)
    assert (len(looked), built.count(len(refused)), outcome.output_detected) == (1, 0, {TRUNCATED})


@pytest.mark.parametrize(("api", "how"), [("embeddings", "kept"), ("infer_stream", "body"), ("infer_stream", "kept")])
def test_a_whole_reply_of_many_values_orjson_refuses_is_handed_to_it_once(
    monkeypatch: pytest.MonkeyPatch, api: str, how: str
) -> None:
    """Such a reply (a value nested deeper) that orjson refuses and a client's `json` reads (`NaN`), its brackets
    matched: read as that client reads it, orjson handed it once (`oip.whole_json`). Until the reread of 2026-12-06
    `whole_json` passed it to `reply_json`, which had orjson refuse it again (up to 70 ms of 14 MiB)."""
    start, value, _, end = _INVALID[api]
    nested = _NESTED[api].replace(b"[[[0.5]]]", b"[[[NaN]]]").replace(b"[[[1]]]", b"[[[NaN]]]")
    body = start + b",".join([value] * (MAX_STRINGS + 9) + [nested, value]) + end
    handed: list[int] = []
    orjson_loads = orjson.loads

    def counted(data: Any) -> Any:
        handed.append(len(data))
        return orjson_loads(data)

    monkeypatch.setattr(orjson, "loads", counted)
    outcome, cut = _read_as(_observer(api), body, how)
    assert (outcome.response_model, cut) == (
        "m" if api == "infer_stream" else "emb-1",
        None if how == "body" else False,
    )
    assert handed.count(len(body)) == 1
