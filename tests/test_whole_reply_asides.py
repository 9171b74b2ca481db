"""A whole chat reply's message is read for what the model wrote beside its content (`ReplyObserver._beside`)
only when it holds some of it: a key of `_BESIDE` whose value is not empty (vLLM writes `"tool_calls": []` and
nulls in every message). Differential, over messages of any JSON values under those keys: reading the message
beside its content as well, where it was left out, changes nothing recorded."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import _BESIDE, ReplyObserver, _writes_beside

DETECTORS = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")], 300)
TEXT = st.sampled_from(["", "ana@example.org", "call +1 (415) 555-2671", "plain words", "4111 1111 1111 1111"])
EMPTY = st.sampled_from([None, "", [], {}, 0, 0.0, False])
JSON = st.recursive(
    st.one_of(EMPTY, TEXT, st.integers(), st.booleans()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["name", "arguments", "x"]), inner),
    max_leaves=8,
)
CALL = st.fixed_dictionaries(
    {"function": st.fixed_dictionaries({}, optional={"name": TEXT | EMPTY, "arguments": TEXT | EMPTY})},
    optional={"index": st.integers(0, 2), "id": TEXT},
)
BESIDE_VALUE = st.one_of(EMPTY, TEXT, JSON, st.lists(CALL, max_size=2), CALL.map(lambda call: call["function"]))
MESSAGES = st.dictionaries(
    st.sampled_from(sorted(_BESIDE)) | st.sampled_from(["role", "audio", "annotations"]), BESIDE_VALUE, max_size=6
).map(lambda beside: {"role": "assistant", "content": "the answer, 1889", **beside})


def _recorded(message: dict[str, Any], again: bool) -> tuple[Any, ...]:
    observer = ReplyObserver(Outcome(started_ns=0), DETECTORS, True)
    observer.whole({"model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    if again and not _writes_beside(message):  # what `whole` left out, read all the same
        observer._beside(0, message)
    observer.finish()
    outcome = observer.outcome
    return outcome.output_detected, outcome.output_digest, outcome.content, outcome.finish_reasons


@settings(max_examples=500, deadline=None)
@given(MESSAGES)
def test_a_message_left_unread_beside_its_content_holds_nothing_there(message: dict[str, Any]) -> None:
    assert _recorded(message, again=True) == _recorded(message, again=False)


def test_what_is_beside_the_content_is_read_when_there() -> None:
    call = {"function": {"name": "send", "arguments": '{"to": "ana@example.org"}'}}
    assert not _writes_beside({"role": "assistant", "content": "x", "tool_calls": [], "refusal": None})
    assert _writes_beside({"role": "assistant", "content": "x", "tool_calls": [call]})
    for message in (
        {"role": "assistant", "content": "x", "tool_calls": [call], "refusal": None},
        {"role": "assistant", "content": None, "reasoning_content": "mail ana@example.org", "tool_calls": []},
        {"role": "assistant", "content": "x", "function_call": call["function"]},
    ):
        assert "pii:email" in _recorded(message, again=False)[0], message
