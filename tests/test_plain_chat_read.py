"""A chat of a few messages of scalars, at most one of them a system text (`openai._plain_messages`), is read without
the three walks that find nothing in it (Go's key folding below the messages, parts run together, parts the proxy
cannot read): the read is the walked one's, field for field, whatever the messages."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.run import BODY
from proxy import protocols
from proxy.protocols import openai

# those counting the walks replace what the compiled modules call (tests/conftest.py: run with the modules interpreted)
interpreted = pytest.mark.interpreted

_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=8))
_PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "file", "prompt_embeds"]), "text": st.text(max_size=6)})
_MESSAGE = st.dictionaries(
    st.sampled_from(["role", "content", "name", "tool_call_id", "Content", "extra", "tool_calls"]),
    st.one_of(_SCALAR, st.sampled_from(["system", "user", "assistant"]), st.lists(_PART, max_size=2)),
    max_size=4,
)


def _walked(body: bytes, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The read with every walk made (as before 2026-12-06): the request, or the refusal's message."""
    with monkeypatch.context() as patch:
        patch.setattr(openai, "_plain_messages", lambda messages: False)
        return _read(body)


def _read(body: bytes) -> Any:
    try:
        return openai.read_request("chat", body)
    except protocols.InvalidRequest as refused:
        return refused.message


@interpreted
@settings(max_examples=300, deadline=None)
@given(messages=st.lists(st.one_of(_MESSAGE, _SCALAR), max_size=10))
def test_a_chat_reads_the_same_with_or_without_the_walks(messages: list[Any]) -> None:
    body = orjson.dumps({"model": "m", "messages": messages})
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _read(body) == _walked(body, monkeypatch)


@interpreted
@pytest.mark.parametrize(
    ("messages", "runs"),
    [
        ([{"role": "system", "content": "a@b"}, {"role": "user", "content": ".com"}], ()),
        # two system texts: vLLM and llama.cpp join them, so they are read run together (walked)
        ([{"role": "system", "content": "a@b"}, {"role": "system", "content": ".com"}], (("a@b", ".com"),)),
    ],
)
def test_two_system_texts_are_still_run_together(messages: list[Any], runs: tuple[Any, ...]) -> None:
    assert openai.read_request("chat", orjson.dumps({"model": "m", "messages": messages})).joined == runs


@interpreted
def test_the_benchmarks_chat_is_read_without_the_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before 2026-12-06 (helper hot) each of the three ran for every chat: 12-15 µs of the read after an idle spell,
    compiled (`benchmarks/README.md`, admission)."""
    walked: list[str] = []
    for name in ("nested_named_as_fields", "join_text_parts", "unread_parts"):
        real = getattr(openai, name)

        def counted(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            walked.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(openai, name, counted)
    read = openai.read_request("chat", BODY)
    assert read.texts and not read.unscanned and read.joined == ()
    assert walked == []
