"""The openai adapter reads `POST /completions`, which on llama.cpp's server is its *native* completion
(`post_completions`, the legacy `/completion`'s twin; the OpenAI one is `/v1/completions`). Its reply is
`{"content": ..., "stop": true, "prompt": ..., "tokens_evaluated": ..., "tokens_predicted": ...}`, streamed as
`data: {"content": ..., "stop": false}` events: no `choices`. The observer took it for an unknown shape, so the
record had no output digest (nor captured output, nor usage) for what the model wrote: the record of the call held
its labels only. Read as the same text in OpenAI's shape is, it has the same digest."""

from __future__ import annotations

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver

TEXT = ["Write to bob@", "example.org today."]
FINAL = {"index": 0, "content": "", "tokens": [], "id_slot": 0, "stop": True, "model": "smollm", "tokens_predicted": 6,
         "tokens_evaluated": 4, "generation_settings": {"n_predict": 8}, "prompt": "<|im_start|>user hi",
         "has_new_line": False, "truncated": False, "stop_type": "eos", "stopping_word": "", "tokens_cached": 9}  # fmt: skip


def observe(body: bytes, kind: str, streamed: bool) -> Outcome:
    observer = ReplyObserver(Outcome(started_ns=0), Detectors([DetectorSpec("email")]), True)
    observer.head(200, lambda name: kind)
    if streamed:
        observer.chunk(body)
    else:
        observer.body(body)
    observer.finish()
    return observer.outcome


def openai_digest() -> str | None:
    choice = {"index": 0, "text": "".join(TEXT), "finish_reason": "stop"}
    return observe(orjson.dumps({"model": "smollm", "choices": [choice]}), "application/json", False).output_digest


@pytest.mark.parametrize("streamed", [False, True])
def test_a_native_completion_reply_is_read_as_output(streamed: bool) -> None:
    if streamed:
        events = [{"index": 0, "content": piece, "tokens": [1], "stop": False, "id_slot": 0} for piece in TEXT]
        body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in [*events, FINAL])
        outcome = observe(body, "text/event-stream", True)
        assert outcome.first_token_ns
    else:
        outcome = observe(orjson.dumps({**FINAL, "content": "".join(TEXT)}), "application/json", False)
    assert outcome.output_detected == {"pii:email"}
    assert outcome.output_digest is not None and outcome.output_digest == openai_digest()
    assert (outcome.input_tokens, outcome.output_tokens) == (4, 6)
    assert outcome.response_model == "smollm"
