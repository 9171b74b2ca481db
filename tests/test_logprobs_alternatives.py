"""The tokens a reply's logprobs give as the model's alternatives (`top_logprobs`) are text the model produced that a
client shows and the content does not hold (the token it wrote is the content's): they are scanned for the output's
labels, each distinct one once, a line of its own, whole and streamed alike (a chat choice's `logprobs.content` and
`logprobs.refusal`, a completion choice's `logprobs.top_logprobs` maps, a Responses output text's `logprobs` and its
deltas'). They were not read: a codename a custom detector looks for, offered as an alternative, left the output
unlabelled. The content's digest is the content's still; past `_MOST_ALTERNATIVES` distinct tokens, the rest is not
read and the output says so."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver, ResponsesObserver
from proxy.protocols.sse import _MOST_ALTERNATIVES
from tests.harness import LLAMACPP_HEAD
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

DETECTORS = Detectors((DetectorSpec("email"), DetectorSpec("codename", r"\bFalcon\b")), 1_000_000)
CODENAME, EMAIL, TRUNCATED = "pii:codename", "pii:email", "scan:truncated"


def read(observer_type: Any, reply: dict[str, Any] | list[dict[str, Any]]) -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = observer_type(outcome, DETECTORS, False)
    kind = "text/event-stream" if isinstance(reply, list) else "application/json"
    observer.head(200, lambda name: kind if name == "content-type" else None)
    if isinstance(reply, list):
        for event in reply:
            observer.chunk(b"data: " + orjson.dumps(event) + b"\n\n")
        observer.chunk(b"data: [DONE]\n\n" if observer_type is ReplyObserver else b"")
    else:
        observer.body(orjson.dumps(reply))
    observer.finish()
    return outcome


def entry(token: str, *alternatives: str) -> dict[str, Any]:
    top = [{"token": token, "logprob": -0.1, "bytes": list(token.encode())}]
    top += [{"token": other, "logprob": -2.5, "bytes": list(other.encode())} for other in alternatives]
    return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": top}


# the model wrote "The project" and weighed " Falcon" against " project"
ENTRIES = [entry("The", "A"), entry(" project", " Falcon")]


def chat(logprobs: Any, field: str = "content") -> dict[str, Any]:
    message = {"role": "assistant", "content": "The project"}
    return {"id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "logprobs": logprobs and {"content": None, "refusal": None, field: logprobs},
                         "finish_reason": "stop"}]}  # fmt: skip


def chat_stream(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], logprobs: Any, reason: str | None = None) -> dict[str, Any]:
        return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": reason}]}  # fmt: skip

    chunks = [chunk({"role": "assistant", "content": ""}, None)]
    chunks += [chunk({"content": e["token"]}, {"content": [e], "refusal": None} if e else None) for e in entries]
    return [*chunks, chunk({}, None, "stop")]


COMPLETION = {"id": "c1", "object": "text_completion", "model": "m", "choices": [
    {"index": 0, "text": "The project", "finish_reason": "stop",
     "logprobs": {"tokens": ["The", " project"], "token_logprobs": [-0.1, -0.1], "text_offset": [0, 3],
                  "top_logprobs": [{"The": -0.1, "A": -2.5}, {" project": -0.1, " Falcon": -2.5}]}}]}  # fmt: skip


def part(logprobs: list[Any]) -> dict[str, Any]:
    return {"type": "output_text", "text": "The project", "annotations": [], "logprobs": logprobs}


def response(logprobs: list[Any]) -> dict[str, Any]:
    item = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [part(logprobs)]}
    return {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": [item]}


def response_stream(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    added = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
    events: list[dict[str, Any]] = [{"type": "response.output_item.added", "output_index": 0, "item": added}]
    events += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                "delta": e["token"], "logprobs": [e]} for e in entries]  # fmt: skip
    done = response(entries)
    events += [{"type": "response.output_item.done", "output_index": 0, "item": done["output"][0]},
               {"type": "response.completed", "response": done}]  # fmt: skip
    return events


PLAIN_COMPLETION = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "logprobs": None}]}
CASES = {
    "chat-whole": (ReplyObserver, chat(ENTRIES), chat(None)),
    "chat-whole-refusal": (ReplyObserver, chat(ENTRIES, "refusal"), chat(None)),
    "chat-streamed": (ReplyObserver, chat_stream(ENTRIES), chat(None)),
    "completion-whole": (ReplyObserver, COMPLETION, PLAIN_COMPLETION),
    "responses-whole": (ResponsesObserver, response(ENTRIES), response([])),
    "responses-streamed": (ResponsesObserver, response_stream(ENTRIES), response([])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_an_alternative_token_is_scanned(name: str) -> None:
    observer, reply, plain = CASES[name]
    weighed, wrote = read(observer, reply), read(observer, plain)
    assert weighed.output_detected == {CODENAME}
    assert wrote.output_detected == frozenset()
    assert weighed.output_digest is not None and weighed.output_digest == wrote.output_digest


def test_alternatives_are_each_read_as_a_token_of_their_own() -> None:
    """Alternatives at different places are no text together: `Fal` at one token and `con` at the next are not
    `Falcon`; nor is the token written one with its alternatives."""
    apart = [entry("The", "Fal"), entry(" project", "con"), entry("Fal", "x"), entry("con", "y")]
    assert read(ReplyObserver, chat(apart)).output_detected == frozenset()
    assert read(ResponsesObserver, response_stream(apart)).output_detected == frozenset()


def test_past_the_distinct_alternatives_read_the_rest_is_said_to_be_unread() -> None:
    many = [entry("t", f"w{n}") for n in range(_MOST_ALTERNATIVES)]
    assert read(ResponsesObserver, response(many)).output_detected == frozenset()
    past = read(ResponsesObserver, response_stream([*many[:2], entry("t", "w0", "w1"), *many[2:], ENTRIES[1]]))
    assert past.output_detected == {TRUNCATED}
    # one whole reply past them: the bound is the alternatives' own, not `MAX_STRINGS` (a reading of every string
    # bounded by it took the 10,001st of one reply's for content not read), and holds within a reply
    assert read(ResponsesObserver, response([*many, ENTRIES[1]])).output_detected == {TRUNCATED}


PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}


@pytest.mark.parametrize("name", ["chat-whole", "chat-streamed", "responses-whole", "responses-streamed"])
def test_through_the_proxy_an_address_offered_as_an_alternative_labels_the_output(setup_for: Any, name: str) -> None:  # noqa: F811
    _, reply, _ = CASES[name]
    address = [entry("The", "bob@example.org")]  # (the proxy's detectors here: email)
    reply = {"chat-whole": chat(address), "chat-streamed": chat_stream(address), "responses-whole": response(address),
             "responses-streamed": response_stream(address)}[name]  # fmt: skip
    setup = setup_for()
    if isinstance(reply, list):
        body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in reply)
        body += b"data: [DONE]\n\n" if name.startswith("chat") else b""
        sent = Reply([body], content_type="text/event-stream")
    else:
        body = orjson.dumps(reply)
        sent = Reply([body])
    flow = f"flow-{name}"
    got, answer = setup.call(PATHS[name.split("-")[0]], flow, sent)
    assert got.status_code == 200 and answer == body
    span, edge = setup.recorded(got, flow)
    assert set(span) == set(edge) == {flow, EMAIL}


REAL_CONFIG = (
    LLAMACPP_HEAD
    + """detectors: [{name: weighed, pattern: "${PATTERN}"}]
lineage:
  store: ${STORE}
"""
)


@pytest.mark.realserver
def test_a_real_servers_alternative_token_labels_the_output(llama: str, make_proxy, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """llama.cpp (SmolLM2) answers with `top_logprobs`: a word it weighed and did not write, looked for by a detector,
    labels the output through the proxy, whole and streamed; the reply passes as it came."""
    import httpx

    from tests.test_unsized_replies_output import stored_output_labels

    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Name one colour."}], "temperature": 0,
            "max_tokens": 8, "seed": 7, "logprobs": True, "top_logprobs": 5}  # fmt: skip
    direct = httpx.post(f"{llama}/v1/chat/completions", json=body, timeout=120).json()
    content = direct["choices"][0]["message"]["content"]
    weighed = [alternative["token"].strip() for position in direct["choices"][0]["logprobs"]["content"]
               for alternative in position["top_logprobs"]]  # fmt: skip
    said = (content + " " + body["messages"][0]["content"]).lower()  # (a word in neither the reply nor the prompt)
    word = next(w for w in weighed if len(w) >= 3 and w.isalpha() and w.lower() not in said)
    proxy = make_proxy(REAL_CONFIG, UPSTREAM=llama, PATTERN=f"(?i)(?<![a-z]){word}(?![a-z])")
    for flow, stream in (("whole", False), ("streamed", True)):
        via = httpx.post(f"{proxy.url}/v1/chat/completions", json={**body, "stream": stream}, timeout=120,
                         headers={"x-data-labels": flow})  # fmt: skip
        assert via.status_code == 200, via.text
        assert word in via.text
    loop_thread.run(proxy.process.runtime.sinks.flush())
    stored = stored_output_labels(tmp_path / "lineage.db")
    assert (stored["whole"], stored["streamed"]) == (["pii:weighed", "whole"], ["pii:weighed", "streamed"])
