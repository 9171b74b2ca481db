"""`user_strings` (a request's messages, prompts, inputs and unknown fields read for their texts) looks at no more
than `MAX_STRINGS` objects and lists a value, as the walk for keys Go takes for a field does (`nested_named_as_fields`,
cc5627f), and three more for each string taken: past them the value is not read further and the request is
`scan:truncated`. Before 2026-12-05 it looked at every one, counting only strings against the limit: 999,000 empty
blocks in one message, empty lists, or messages `{"a": 1}` took 1.2-3.1 s of the event loop in `user_strings` alone
(interpreted), now 0.05-0.17 s; a body of 999,000 empty objects in a field the proxy does not know was forwarded as read
whole after that (helper revollama2)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import MAX_STRINGS, anthropic, placed_strings, user_strings
from proxy.protocols import openai as openai_protocol
from proxy.protocols.oip import RestReplyObserver
from proxy.protocols.openai import ReplyObserver

ADDRESS = "alice@example.com"


@pytest.mark.parametrize("empty", [{}, []], ids=["objects", "lists"])
def test_no_more_objects_than_the_limit_are_looked_at(empty: Any) -> None:
    """The list and `MAX_STRINGS` - 2 empty ones before a text: all looked at, the text read; one more, and the text
    is past them: the value is said not read whole (`scan:truncated`)."""
    at_limit: list[Any] = [[empty] * (MAX_STRINGS - 2), ADDRESS]
    out: list[str] = []
    assert user_strings(at_limit, out) is True and out == [ADDRESS]
    past: list[Any] = [[empty] * (MAX_STRINGS - 1), ADDRESS]
    assert user_strings(past, []) is False  # before: True, every object looked at


def test_a_field_of_many_empty_objects_makes_the_request_unscanned() -> None:
    """A field the proxy does not know is read as user text (an engine's own may reach the model): its objects past
    the limit are not, and the request is `scan:truncated`, as one of more texts is."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "extra": [{}] * 999_000}
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole, 1.7-2.8 s
    few = {**body, "extra": [{}] * 1_000}
    assert not openai_protocol.read_request("chat", orjson.dumps(few)).unscanned


def test_a_messages_api_body_of_many_empty_blocks_is_unscanned() -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{}] * 999_000}]}
    assert anthropic.read_request(orjson.dumps(body)).unscanned  # (as it was: the key walk's bound)
    out: list[str] = []
    assert user_strings(body["messages"], out) is False  # before: True, after 999,000 objects looked at


def test_bodies_of_many_texts_under_the_strings_limit_are_read_whole() -> None:
    """Each string taken lets three objects more be looked at (a message, its blocks' list, a block): a body whose
    texts are all read is never past the objects (held before and after)."""
    blocks = [{"role": "user", "content": [{"type": "text", "text": f"t{n}"}]} for n in range(30_000)]
    body = {"model": "m", "max_tokens": 1, "messages": blocks}
    assert not anthropic.read_request(orjson.dumps(body)).unscanned
    calls = [{"role": "assistant", "tool_calls": [{"id": f"c{n}", "type": "function",
                                                   "function": {"name": "f", "arguments": "{}"}}]}
             for n in range(16_000)]  # fmt: skip
    assert not openai_protocol.read_request("chat", orjson.dumps({"model": "m", "messages": calls})).unscanned


def test_the_objects_are_counted_across_a_requests_fields() -> None:
    """The objects looked at are a request's, its fields' together (`request_strings`): 16 fields the proxy does not
    know of 62,000 empty objects each were each under the bound, 1.6 s of the event loop read as whole (interpreted)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update({f"x{n}": [{}] * 62_000 for n in range(16)})
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned


@pytest.mark.parametrize("scalar", [None, True, False, 0, 1.5], ids=["null", "true", "false", "int", "float"])
def test_nulls_booleans_and_a_requests_numbers_are_counted_as_values_looked_at(scalar: Any) -> None:
    """null, true, false and a request's numbers hold no user text, but each is a value looked at: counted as an object
    is, as `rendered_strings` counts them, so lists of millions of them (one list, or lists of 60,000 each: under the
    strings and objects still taken, each list went over item by item) are not gone over to their end (before: 2-5 s
    of the event loop interpreted for a 60 MB body, every one, read whole) and an address after them is said not read
    (`scan:truncated`). Under the bound, the address is read (helper nullbound2)."""
    out: list[str] = []
    assert user_strings([[scalar] * (MAX_STRINGS - 2), ADDRESS], out) is True and out == [ADDRESS]
    assert user_strings([[scalar] * (MAX_STRINGS - 1), ADDRESS], []) is False  # before: True, all looked at
    assert user_strings([scalar] * 3_000_000 + [ADDRESS], []) is False  # before: True
    assert user_strings([[scalar] * 60_000] * 200 + [ADDRESS], []) is False  # before: True, 12,000,000 gone over
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "extra": [[scalar] * 60_000] * 200}
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole


def test_nulls_among_many_texts_under_the_limits_are_read_whole() -> None:
    """Each string taken lets three values more be looked at, nulls too: tool-call messages with a null content and
    texts among nulls are read whole (held before and after)."""
    calls = [{"role": "assistant", "content": None, "tool_calls": [{"id": f"c{n}", "type": "function",
                                                                    "function": {"name": "f", "arguments": "{}"}}]}
             for n in range(16_000)]  # fmt: skip
    assert not openai_protocol.read_request("chat", orjson.dumps({"model": "m", "messages": calls})).unscanned
    texts: list[Any] = [[f"t{n}", None, None] for n in range(20_000)]
    out: list[str] = []
    assert user_strings(texts, out) is True and len(out) == 20_000
    assert user_strings(["a"] * 30_000 + [None] * 60_000 + [ADDRESS], []) is True


def reply_labels(observer: Any, reply: Any) -> frozenset[str]:
    observer.head(200, lambda name: "application/json" if name == "content-type" else None)
    observer.body(orjson.dumps(reply))
    observer.finish()
    labels: frozenset[str] = observer.outcome.output_detected
    return labels


@pytest.mark.parametrize("tokens", [2, 64], ids=["pooled", "per-token"])
def test_a_replys_numbers_are_not_counted(tokens: int) -> None:
    """A reply's numbers are its vectors, read whole as before (held before and after): llama.cpp's native embeddings
    reply (2 x 4,096 floats; 64 token vectors of 4,096, pooling none), and an OIP or unknown reply of 1,000,000
    numbers (`aside_strings`, `add_unknown`: `numbers=False`), an address after them read."""
    detectors = Detectors((DetectorSpec("email"),), 100_000)
    native = [{"index": n, "embedding": [[0.125] * 4096] * (tokens // 2)} for n in range(2)]
    embeddings = ReplyObserver(Outcome(started_ns=0), detectors, False, embeddings=True)
    assert reply_labels(embeddings, native) == frozenset()
    unknown = {"result": [0.5] * 1_000_000, "note": ADDRESS}
    oip = RestReplyObserver(Outcome(started_ns=0), detectors, False, None)
    assert reply_labels(oip, unknown) == {"pii:email"}
    chat = ReplyObserver(Outcome(started_ns=0), detectors, False)
    assert reply_labels(chat, unknown) == {"pii:email"}


def test_a_replys_nulls_are_counted_as_a_requests_are() -> None:
    """An unknown reply's nulls are values looked at: a million of them before an address are not gone over, the
    reply `scan:truncated` (before: every one gone over, read whole)."""
    detectors = Detectors((DetectorSpec("email"),), 100_000)
    nulls = {"result": [None] * 1_000_000, "note": ADDRESS}
    assert "scan:truncated" in reply_labels(ReplyObserver(Outcome(started_ns=0), detectors, False), nulls)


def test_what_is_left_past_the_strings_is_looked_at_within_one_bound() -> None:
    """Past `MAX_STRINGS` strings, what is left is looked at for text in one walk, within one reading's values: each
    left value had a bound of its own, so 65,536 texts then 200 lists of 60,000 nulls went over every null (2 s
    interpreted) and were read whole (helper revnullbound2)."""
    left: list[Any] = ["t"] * MAX_STRINGS + [[None] * 60_000] * 200
    out: list[str] = []
    assert user_strings(left, out) is False and len(out) == MAX_STRINGS  # before: True, 12,000,000 gone over
    assert user_strings(["t"] * MAX_STRINGS + [[None] * 30_000] * 2, []) is True  # within the bound: read whole
    extra: list[Any] = ["t"] * (MAX_STRINGS - 1) + [[None] * 60_000] * 200
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "extra": extra}
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole


def test_an_unknown_replys_strings_are_placed_within_the_values_looked_at() -> None:
    """`add_unknown` places the strings it read (`placed_strings`, for a stream's pieces): within the values
    `user_strings` may look at, nulls counted, numbers gone over as there but not each made a place. Before, every
    value was placed: an unknown reply of a text and 200 lists of 60,000 nulls took 18 s interpreted there, after
    `user_strings` had stopped at 65,536 (helper revnullbound2)."""
    places: dict[tuple[Any, ...], list[str]] = {}
    placed_strings([ADDRESS] + [None] * 70_000 + ["past"], places, 1)
    assert places == {(0,): [ADDRESS]}  # before: "past" placed too, every null gone over
    places = {}
    placed_strings({"result": [[None] * 60_000] * 200, "note": ADDRESS}, places, 1)
    assert places == {("note",): [ADDRESS]}  # (read by `user_strings` too) now without going over 12,000,000 nulls
    places = {}
    placed_strings({"v": [0.5] * 100_000, "note": ADDRESS, "n": [None] * 1_000}, places, 1)
    assert places == {("note",): [ADDRESS]}  # (numbers not counted, as a reply's are not: held before and after)
    detectors = Detectors((DetectorSpec("email"),), 100_000)
    nulls = {"note": ADDRESS, "result": [[None] * 60_000] * 200}
    labels = reply_labels(ReplyObserver(Outcome(started_ns=0), detectors, False), nulls)
    assert labels == {"pii:email", "scan:truncated"}
