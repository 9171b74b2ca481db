"""llama.cpp's native completion reply (`POST /completions`, which is its `/completion`; the proxy reads it with the
openai adapter) asked for `n_probs` carries `completion_probabilities`: for each token written, the tokens the model
weighed beside it (`top_logprobs`, or `top_probs` with `post_sampling_probs`; `probs` of `tok_str` from servers before
2025), each with its text and `bytes`. They are text the model produced that the client has and the content does not
hold, so they are scanned for the output's labels, as an OpenAI reply's `top_logprobs` are; they were not read: an
address among them left the output unlabelled. The token written is the content's (read there)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.protocols.openai import ReplyObserver
from tests.protocols.test_tool_call_output_shapes import EMAIL, OUT, read
from tests.test_unsized_replies_output import Reply, setup_for, stored_output_labels  # noqa: F401  # (a fixture)


def entry(written: str, other: str, kind: str) -> dict[str, Any]:
    """One token's entry in llama.cpp's `completion_probabilities`, as its server writes it."""
    if kind == "old":  # before the 2025 format (llama.cpp b4500 and earlier)
        return {"content": written, "probs": [{"tok_str": written, "prob": 0.9}, {"tok_str": other, "prob": 0.1}]}
    top, score = ("top_probs", "prob") if kind == "post" else ("top_logprobs", "logprob")
    alternatives = [{"id": 1, "token": written, "bytes": list(written.encode()), score: -0.1},
                    {"id": 2, "token": other, "bytes": list(other.encode()), score: -2.3}]  # fmt: skip
    return {"id": 1, "token": written, "bytes": list(written.encode()), score: -0.1, top: alternatives}


def whole(kind: str) -> dict[str, Any]:
    return {"index": 0, "content": "Hello there", "id_slot": 0, "stop": True, "model": "m", "tokens_predicted": 2,
            "tokens_evaluated": 3, "stop_type": "limit", "stopping_word": "", "tokens_cached": 0, "truncated": False,
            "prompt": "<s>hi", "completion_probabilities": [entry("Hello", OUT, kind), entry(" there", "x", kind)]}  # fmt: skip


def streamed(kind: str) -> list[dict[str, Any]]:
    return [{"index": 0, "content": "Hello", "tokens": [1], "stop": False, "id_slot": 0, "tokens_predicted": 1,
             "tokens_evaluated": 3, "completion_probabilities": [entry("Hello", OUT, kind)]},
            {"index": 0, "content": " there", "tokens": [2], "stop": False, "id_slot": 0, "tokens_predicted": 2,
             "tokens_evaluated": 3, "completion_probabilities": [entry(" there", "x", kind)]},
            {"index": 0, "content": "", "tokens": [], "stop": True, "model": "m", "tokens_predicted": 2,
             "tokens_evaluated": 3, "stop_type": "limit"}]  # fmt: skip


KINDS = ["logprob", "post", "old"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
def test_an_alternative_token_labels_the_output_through_the_proxy(setup_for: Any, kind: str, stream: bool) -> None:  # noqa: F811
    setup = setup_for()
    if stream:
        body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in streamed(kind))
        setup.upstream.reply = Reply([body], content_type="text/event-stream")
    else:
        body = orjson.dumps(whole(kind))
        setup.upstream.reply = Reply([body], framing="sized")
    flow = f"flow-{kind}-{int(stream)}"
    request = {"model": "m", "prompt": "hi", "n_predict": 2, "n_probs": 2, "stream": stream,
               "post_sampling_probs": kind == "post"}  # fmt: skip
    got = httpx.post(f"{setup.proxy.url}/completions", json=request, headers={"x-data-labels": flow}, timeout=30)
    assert got.status_code == 200 and got.content == body and OUT in got.text  # the client has it
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    assert EMAIL in stored_output_labels(setup.store)[flow]


@pytest.mark.parametrize("kind", KINDS)
def test_the_written_token_is_the_contents_and_not_read_again(kind: str) -> None:
    """The alternatives are beside the content: the digest is the content's, with or without them."""
    with_probabilities = read(ReplyObserver, whole(kind))
    plain = {key: value for key, value in whole(kind).items() if key != "completion_probabilities"}
    without = read(ReplyObserver, plain)
    assert with_probabilities.output_detected == {EMAIL} and without.output_detected == frozenset()
    assert with_probabilities.output_digest == without.output_digest
