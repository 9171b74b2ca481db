"""The short ways a request and a reply are read give what the plain ways gave: a purpose or label as given
(`given_label`, memoised), a request parameter as recorded (`openai._param`), and a whole reply's choices read
in index order."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome
from proxy.labels import check_labels, given_label, is_label, normalize
from proxy.protocols.openai import ReplyObserver, _param


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ09._:/- \t\u00ad\u200b\uff41\u0430,")), max_size=12))
def test_given_label_is_normalize_then_the_grammar(text: str) -> None:
    expected = normalize(text) if is_label(normalize(text)) else None
    assert given_label(text) == expected
    assert given_label(text) == expected  # memoised: the same the second time


def test_a_long_spelling_of_a_label_is_read_but_not_kept() -> None:
    from proxy import labels

    spelling = " " * 5000 + "Assistant" + "\u200b"
    assert given_label(spelling) == "assistant"
    assert spelling not in labels._GIVEN
    assert given_label(" " * 300) is None


def test_spellings_sent_once_each_never_turn_the_memo_off() -> None:
    """Past `_KEPT` distinct spellings the memo begins again: the purposes sent on every call are kept after
    a client sent thousands of others first (it was full for good, and each call normalised its purpose)."""
    from proxy import labels

    for n in range(labels._KEPT + 1):
        assert given_label(f"purpose-{n}") == f"purpose-{n}"
    assert len(labels._GIVEN) <= labels._KEPT
    assert given_label("Assistant") == "assistant"
    assert "Assistant" in labels._GIVEN


def test_check_labels_still_skips_empty_entries_and_refuses_bad_ones() -> None:
    assert check_labels(["PII:Email", " ", "", "a"], source="x") == frozenset({"pii:email", "a"})
    with pytest.raises(InvalidRequest, match="invalid label 'Bad Label'"):
        check_labels(["ok", " Bad Label "], source="x")


def _old_param(name: str, value: Any) -> Any:
    if name in ("stop_sequences", "encoding_formats"):
        values = value if isinstance(value, list) else [value]
        return [v if isinstance(v, str) else orjson.dumps(v).decode() for v in values if v is not None]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return orjson.dumps(value).decode()
    return value


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["temperature", "max_tokens", "stop_sequences", "seed"]), JSON)
def test_param_is_recorded_as_before(name: str, value: Any) -> None:
    value = orjson.loads(orjson.dumps(value))  # as read from a body
    assert _param(name, value) == _old_param(name, value)
    assert type(_param(name, value)) is type(_old_param(name, value))


@pytest.mark.parametrize(
    "choices",
    [
        [{"index": 0, "message": {"role": "assistant", "content": "one"}, "finish_reason": "stop"}],
        ["not a choice"],
        [None],
        [{"index": 1, "message": {"content": "b"}}, {"index": 0, "message": {"content": "a"}}, "x"],
        [{"index": 0, "text": "a completion", "finish_reason": "length"}],
        [{"index": 0, "message": {"content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}}],
    ],
)
def test_a_whole_reply_reads_as_its_choices_sorted(choices: list[Any]) -> None:
    """One choice is read without sorting; what it reads is what the sorted choices read."""
    detectors = Detectors([])
    reply = {"id": "r", "model": "m", "choices": choices, "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    observer = ReplyObserver(Outcome(started_ns=0), detectors, True)
    observer.whole(reply)
    observer.finish()
    outcome = observer.outcome
    expected_texts = []
    reasons = []
    for choice in sorted((c for c in choices if isinstance(c, dict)), key=lambda c: c.get("index", 0)):
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(text, str):
            expected_texts.append(text)
        elif choice.get("index", 0) == 0:
            expected_texts.append("")
        if isinstance(choice.get("finish_reason"), str):
            reasons.append(choice["finish_reason"])
    digest = hashlib.sha256("".join(t + "\n" for t in expected_texts).encode()).hexdigest()
    assert outcome.output_digest == (f"sha256:{digest}" if any(expected_texts) else None)
    assert outcome.finish_reasons == tuple(reasons)
    assert outcome.content == (("".join(expected_texts),) if any(expected_texts) else ())
    assert (outcome.input_tokens, outcome.output_tokens, outcome.response_id) == (1, 2, "r")
