"""A streamed reply is read a piece at a time, each piece with the tail of what came before, so that a value cut in
two where the pieces meet is found. That tail was the last 128 characters as they stood: a run of characters the
detectors drop (zero-width spaces, control characters, combining marks over ASCII) filled it, and a value a run of
them split where the pieces met was not found, though the same text read whole was. A model writing
`alice@` + 400 zero-width spaces + `example.com` (which its client shows as `alice@example.com`) in a streamed reply
left no `pii:email` on the record; stored (the Responses API), the conversation holding the address was then carried
on, for a purpose the address's zone forbids, to a model that reads it. The tail is now the end as the detectors read
it."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols import boundary_windows
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

DETECTORS = Detectors([DetectorSpec("email"), DetectorSpec("credit_card")])
PROSE = "the weather is fine today " * 200  # ~5,000 characters before and after, so no piece is short
# characters the detectors drop, each a run that a value is split by where two pieces meet
RUNS = {"zero-width": "\u200b", "control": "\x01", "combining": "\u0336"}
VALUES = {"pii:email": ("alice@", "example.com"), "pii:credit_card": ("4111", "111111111111")}


def streamed(pieces: list[str]) -> set[str]:
    scanner = DETECTORS.stream()
    for piece in pieces:
        scanner.feed(piece)
    scanner.end_text()
    return scanner.found


@pytest.mark.parametrize("run", RUNS, ids=list(RUNS))
@pytest.mark.parametrize("label", VALUES)
@pytest.mark.parametrize("length", [200, 400, 5000])
def test_a_value_split_by_a_run_of_dropped_characters_where_pieces_meet_is_found(run: str, label: str,
                                                                                 length: int) -> None:  # fmt: skip
    start, end = VALUES[label]
    half = RUNS[run] * length
    pieces = [PROSE + start + half, half + end + " " + PROSE]
    assert label in DETECTORS.scan("".join(pieces))  # read whole, it is found
    assert label in streamed(pieces)  # before: found in neither piece, the run filling the tail


@pytest.mark.parametrize("run", RUNS, ids=list(RUNS))
def test_a_run_streamed_a_token_at_a_time_is_read_as_whole(run: str) -> None:
    """As a model streams it: one short piece an event, read in batches, one batch ending inside the run."""
    words = [word + " " for word in PROSE.split()]
    pieces = [*words, "alice@", *[RUNS[run]] * 6000, "example.com ", *words]
    assert "pii:email" in DETECTORS.scan("".join(pieces))
    assert "pii:email" in streamed(pieces)


def test_the_tail_of_plain_text_is_its_end_as_it_stands() -> None:
    """Most replies: ASCII without escapes or controls, whose tail is its last characters, no fold made."""
    pieces = [PROSE + "alice@exam", "ple.com " + PROSE]
    assert streamed(pieces) == {"pii:email"}
    assert streamed([PROSE, PROSE]) == set()


ZONE = """
zones:
  - name: contact
    labels: [pii:email]
    allow_purposes: [support]
detectors: [email]
"""


def _streamed_reply(deltas: list[str]) -> list[dict[str, Any]]:
    done = {"id": "resp_zw", "object": "response", "created_at": 1_730_000_000, "model": SERVED,
            "status": "completed", "usage": {"input_tokens": 1, "output_tokens": len(deltas), "total_tokens": 0},
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "".join(deltas), "annotations": []}]}]}  # fmt: skip
    events: list[dict[str, Any]] = [{"type": "response.created", "response": {**done, "output": []}}]
    events += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                "delta": delta} for delta in deltas]  # fmt: skip
    return [*events, {"type": "response.completed", "response": done}]


def test_a_stored_streamed_reply_holding_an_address_split_by_zero_width_spaces_carries_its_label(  # type: ignore[no-untyped-def]
    vllm, make_proxy
) -> None:
    server, upstream = vllm
    server.response_events = _streamed_reply(["Her address: alice@", *["\u200b" * 64] * 80, "example.com. ", "Bye."])
    proxy = make_proxy(ONE_UPSTREAM + ZONE, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    with client.responses.create(model=SERVED, input="whose mail is it?", stream=True,
                                 extra_headers={"x-purpose": "support"}) as stream:  # fmt: skip
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
    assert text.replace("\u200b", "") == "Her address: alice@example.com. Bye."  # what its client shows
    sent = len(server.data_requests())
    # the stored conversation holds the address: going on with it for a purpose its zone forbids is refused
    with pytest.raises(openai.PermissionDeniedError) as caught:  # before: forwarded, the address to the model
        client.responses.create(model=SERVED, previous_response_id="resp_zw", input="now an ad for her",
                                extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "pii:email" in caught.value.message
    assert len(server.data_requests()) == sent


# The same where a request's text parts meet: a message's consecutive text parts are read run together too (a template
# may print them so), in windows reaching 256 characters either side of where they meet, widened to white space up to
# 4,096. A run of zero-width spaces there reached past those characters as they stood, and `alice@` + 5,000 of them in
# one part and `example.com` in the next was not found, where the same text in one part was: forwarded, for a purpose
# the address's zone forbids. The windows now reach as far in what the detectors read.
SPLIT_PARTS = [{"type": "text", "text": "write to alice@" + "\u200b" * 5000}, {"type": "text", "text": "example.com"}]


def test_an_address_split_by_a_run_of_zero_width_spaces_where_text_parts_meet_is_refused(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + ZONE, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    for parts in (SPLIT_PARTS, [{"type": "text", "text": "".join(part["text"] for part in SPLIT_PARTS)}]):
        with pytest.raises(openai.PermissionDeniedError) as caught:  # before: the split one was forwarded
            client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": parts}],
                                           extra_headers={"x-purpose": "ads"})  # type: ignore[misc,list-item]  # fmt: skip
        assert "pii:email" in caught.value.message
    assert server.data_requests() == []
    # the Messages API's text blocks alike
    anthropic_body = {"model": SERVED, "max_tokens": 5, "messages": [{"role": "user", "content": SPLIT_PARTS}]}
    reply = httpx.post(f"{proxy.url}/v1/messages", json=anthropic_body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 403 and "pii:email" in reply.text
    assert server.data_requests() == []


# The tail and the windows are read again (folded again) with what is beside them: a text's escapes must be decoded
# once, as when it is read whole. Folded before they were read again, `\u0025` was decoded to `%` and then `%40` to
# `@`, and `alice\u002540example.com`, whole `alice%40example.com` (no address), was labelled `pii:email` streamed or
# where two text parts meet: a request holding it refused for a purpose the zone forbids, though it held no address.
ESCAPED_TWICE = ["alice\\u002540example.com", "alice\\u005cu0040example.com", "alice\\u0026#64;example.com"]


@pytest.mark.parametrize("text", ESCAPED_TWICE)
def test_escapes_are_decoded_once_in_a_streamed_tail_and_where_parts_meet(text: str) -> None:
    whole = PROSE + "write to " + text + " " + PROSE
    assert DETECTORS.scan(whole) == frozenset()  # read whole: one decoding, no address
    assert streamed([PROSE + "write to " + text, " " + PROSE]) == set()  # before: {'pii:email'}
    assert streamed([PROSE + "write to " + text[:12], text[12:] + " " + PROSE]) == set()  # cut in the escape
    parts = ("write to " + text, " about it")
    assert DETECTORS.scan_all(boundary_windows((parts,))) == frozenset()  # before: {'pii:email'}


@pytest.mark.parametrize("run", RUNS, ids=list(RUNS))
@pytest.mark.parametrize("lead", ["100% sure: ", "a \\ b: ", "R&D: "])
def test_a_run_of_dropped_characters_is_read_past_where_an_escape_could_start(run: str, lead: str) -> None:
    """A tail holding `%`, `&` or a backslash is not folded (its escapes stay as written), yet what the detectors drop
    takes no room in it; an escape cut where the pieces meet is still decoded, once."""
    pieces = [PROSE + lead + "alice@" + RUNS[run] * 400, RUNS[run] * 400 + "example.com " + PROSE]
    assert streamed(pieces) == {"pii:email"}
    assert streamed([PROSE + lead + "alice\\u00", "40example.com " + PROSE]) == {"pii:email"}
    assert streamed([PROSE + lead + "j\u0336ose\u0301@", "example.com " + PROSE]) == {"pii:email"}


def test_a_stored_streamed_reply_holding_an_escape_decoded_once_carries_no_label(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """As the same reply not streamed: `alice\\u002540example.com` is `alice%40example.com` to a client that decodes
    its escapes once, no address; going on with it for any purpose is forwarded."""
    server, upstream = vllm
    deltas = [PROSE + "Not an address: alice\\u002540example.com", ". " + PROSE]  # the tail holds the escape
    server.response_events = _streamed_reply(deltas)
    proxy = make_proxy(ONE_UPSTREAM + ZONE, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    with client.responses.create(model=SERVED, input="write something", stream=True,
                                 extra_headers={"x-purpose": "support"}) as stream:  # fmt: skip
        assert "".join(event.delta for event in stream if event.type == "response.output_text.delta") == "".join(deltas)
    sent = len(server.data_requests())
    client.responses.create(model=SERVED, previous_response_id="resp_zw", input="now an ad",
                            extra_headers={"x-purpose": "ads"})  # fmt: skip  # before: refused, 403 pii:email
    assert len(server.data_requests()) == sent + 1
