"""A Messages API call whose beta `thread` continues a conversation the server holds (`{"type": "continue",
"previous_message_id": ...}`) carries the labels the proxy saw that conversation's earlier turns hold, as a Responses
call continuing a stored reply (`previous_response_id`) does: the server puts those turns before the messages. One
that begins a thread (`{"type": "create"}`) or continues one has its reply's id remembered with its labels (the next
turn continues from it); one continuing a reply the proxy did not see answered is `scan:truncated`
(tests/test_anthropic_unread_content.py). Until 2026-12-07 every continued thread was `scan:truncated`, whatever it
held, and carried no label of its earlier turns: a conversation begun with `x-data-labels: health` went on to a
purpose the health zone does not allow, labelled `scan:truncated` alone."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest

from proxy.protocols.anthropic import read_request
from tests.configs import ONE_UPSTREAM
from tests.conftest import KEYS, sha
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: health
    labels: [health]
    allow_purposes: [care]
  - name: contact
    labels: [pii:email]
    allow_purposes: [care]
detectors: [email]
"""
)


def _client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=10)


def _go_on(client: anthropic.Anthropic, previous: str, purpose: str, stream: bool = False) -> Any:
    """One turn continuing the thread from `previous`, as the SDK's thread sends it (only the new turn's messages)."""
    return client.beta.messages.with_raw_response.create(
        model=SERVED, max_tokens=8, messages=[{"role": "user", "content": "go on"}], stream=stream,
        thread={"type": "continue", "previous_message_id": previous}, extra_headers={"x-purpose": purpose},
    )  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_continued_thread_carries_its_earlier_turns_labels(vllm, make_proxy, stream: bool) -> None:  # type: ignore[no-untyped-def]
    """Through the SDK's own thread (`client.beta.messages.thread`): its first turn, labelled `health`, creates the
    thread; its second (a stream, or a whole reply) continues it, carrying `health`, and its reply's id is remembered
    with what it held: a call continuing from either is refused for `ads` (nothing forwarded), forwarded labelled
    `health` for `care`, never `scan:truncated` (the proxy saw every turn)."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = _client(proxy.url)
    try:
        thread = client.beta.messages.thread(model=SERVED, max_tokens=8)
        first = thread.send({"role": "user", "content": "the diagnosis: type 2 diabetes"},
                            extra_headers={"x-purpose": "care", "x-data-labels": "health"})  # fmt: skip
        assert thread.previous_message_id == first.id
        if stream:
            with thread.stream({"role": "user", "content": "and the plan"}, extra_headers={"x-purpose": "care"}) as s:
                second = s.get_final_message()
        else:
            second = thread.send({"role": "user", "content": "and the plan"}, extra_headers={"x-purpose": "care"})
        sent = server.data_requests()
        assert [orjson.loads(r.body)["thread"]["type"] for r in sent] == ["create", "continue"]
        assert orjson.loads(sent[1].body)["thread"]["previous_message_id"] == first.id
        for previous in (first.id, second.id):
            with pytest.raises(anthropic.PermissionDeniedError) as caught:
                _go_on(client, previous, "ads")
            assert "health" in caught.value.message
            assert len(server.data_requests()) == 2
        for previous in (first.id, second.id):
            reply = _go_on(client, previous, "care", stream=stream)
            assert reply.headers["x-data-labels"] == "health"
    finally:
        client.close()


def test_what_a_later_turn_found_goes_on_with_the_thread(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A label a continuing turn's own content adds (an address found) is the thread's from then on: its reply's id is
    remembered with the labels it carried and found, so the turn after it carries both."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = _client(proxy.url)
    try:
        thread = client.beta.messages.thread(model=SERVED, max_tokens=8)
        thread.send({"role": "user", "content": "a diagnosis"},
                    extra_headers={"x-purpose": "care", "x-data-labels": "health"})  # fmt: skip
        second = thread.send(
            {"role": "user", "content": "write to ana@example.org"}, extra_headers={"x-purpose": "care"}
        )
        assert _go_on(client, second.id, "care").headers["x-data-labels"] == "health,pii:email"
    finally:
        client.close()


def test_a_thread_begun_unlabelled_goes_on_unlabelled(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A thread whose turns the proxy saw and found nothing in goes on unlabelled for any purpose (before 2026-12-07
    `scan:truncated`, refused where that label's zone does not allow the purpose)."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = _client(proxy.url)
    try:
        thread = client.beta.messages.thread(model=SERVED, max_tokens=8)
        first = thread.send({"role": "user", "content": "hello"}, extra_headers={"x-purpose": "ads"})
        assert _go_on(client, first.id, "ads").headers["x-data-labels"] == ""
    finally:
        client.close()


def _body(thread: Any) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}],
                         "thread": thread})  # fmt: skip


@pytest.mark.parametrize(
    ("thread", "builds_on", "stored", "unread"),
    [
        (None, None, False, False),
        ({"type": "create"}, None, True, False),
        ({"type": "continue", "previous_message_id": "msg_1"}, "msg_1", True, False),
        ({"type": "continue", "previous_message_id": ""}, None, False, True),
        ({"type": "continue", "previous_message_id": 7}, None, False, True),
        ({"type": "continue"}, None, False, True),
        ({"type": "fork", "previous_message_id": "msg_1"}, None, False, True),
        ("continue", None, False, True),
    ],
    ids=["none", "create", "continue", "empty id", "id a number", "no id", "type not known", "a string"],
)
def test_a_thread_is_read_as_what_it_builds_on(thread: Any, builds_on: Any, stored: bool, unread: bool) -> None:
    """What `read_request` says of a thread: the reply it continues (`builds_on`, whose labels the pipeline carries, or
    `scan:truncated` where it saw none), whether this reply is kept (`stored`: its id and labels remembered), and a
    form the proxy does not know (no id to name what it continues) unread, fail-safe. Token counting stores nothing."""
    read = read_request(_body(thread))
    assert (read.builds_on, read.stored, read.unscanned) == (builds_on, stored, unread)
    counted = read_request(_body(thread), "count_tokens")
    assert (counted.builds_on, counted.stored, counted.unscanned) == (builds_on, False, unread)


CALLERS = (
    CONFIG
    + f"""
callers:
  - {{name: clinic, api_key_sha256: {sha(KEYS["glasses"])}, purposes: [care], labels: [health]}}
  - {{name: marketing, api_key_sha256: {sha(KEYS["ads"])}, purposes: [ads, care]}}
"""
)


def test_another_caller_continuing_a_thread_carries_what_it_held(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A pin, as a Responses `previous_response_id` is: what a thread holds is remembered by its reply's id, whoever
    continues it. A caller whose every input is `health` (its key's labels) begins a thread; another caller, whose own
    calls carry nothing, continuing it carries `health`: refused for `ads` (nothing forwarded), forwarded labelled
    `health` for `care`; its own thread goes to `ads` unlabelled. The same for a Responses reply the first caller stored
    and the second goes on from. One caller cannot shed another's labels by continuing its conversation."""
    server, upstream = vllm
    proxy = make_proxy(CALLERS, UPSTREAM=upstream)
    clinic = anthropic.Anthropic(base_url=proxy.url, api_key=KEYS["glasses"], max_retries=0, timeout=10)
    marketing = anthropic.Anthropic(base_url=proxy.url, api_key=KEYS["ads"], max_retries=0, timeout=10)
    responses = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["ads"], max_retries=0, timeout=10)
    clinical = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["glasses"], max_retries=0, timeout=10)
    try:
        first = clinic.beta.messages.thread(model=SERVED, max_tokens=8).send(
            {"role": "user", "content": "the diagnosis"}, extra_headers={"x-purpose": "care"}
        )
        own = marketing.beta.messages.thread(model=SERVED, max_tokens=8).send(
            {"role": "user", "content": "hello"}, extra_headers={"x-purpose": "ads"}
        )
        stored = clinical.responses.create(model=SERVED, input="the diagnosis", extra_headers={"x-purpose": "care"})
        sent = len(server.data_requests())
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            _go_on(marketing, first.id, "ads")
        assert "health" in refused.value.message
        with pytest.raises(openai.PermissionDeniedError) as also:
            responses.responses.create(model=SERVED, previous_response_id=stored.id, input="go on",
                                       extra_headers={"x-purpose": "ads"})  # fmt: skip
        assert "health" in also.value.message
        assert len(server.data_requests()) == sent
        assert _go_on(marketing, first.id, "care").headers["x-data-labels"] == "health"
        went = responses.responses.with_raw_response.create(model=SERVED, previous_response_id=stored.id,
                                                             input="go on", extra_headers={"x-purpose": "care"})  # fmt: skip
        assert went.headers["x-data-labels"] == "health"
        assert _go_on(marketing, own.id, "ads").headers["x-data-labels"] == ""
    finally:
        for client in (clinic, marketing, responses, clinical):
            client.close()
