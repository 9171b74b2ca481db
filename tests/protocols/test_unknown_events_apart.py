"""The strings of streamed events of a shape no adapter reads are scanned as the texts they are: the last string of
one event and the first of the next are separate JSON values, which a client shows apart, not one word. Run
together, an address that ends an event and a string that begins the next (`bob@example.org`, then `end_turn`)
read `bob@example.orgend_turn`, whose top-level domain runs on into a word: no address. A value an upstream
streams in pieces, an event each (`bob@exa`, `mple.org`), is still found where the pieces meet."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.flow import Outcome
from tests.protocols.test_unknown_reply_shapes import DETECTORS, observers, sse
from tests.test_unsized_replies_output import EMAIL, Reply, setup_for  # noqa: F401  # (a fixture)

ENDED = sse([{"text": "write to bob@example.org"}, {"stop": "end_turn"}]) + b"data: [DONE]\n\n"
SPLIT = sse([{"text": "write to bob@exa"}, {"text": "mple.org"}, {"stop": "end_turn"}]) + b"data: [DONE]\n\n"
NESTED = sse([{"result": {"text": "mail 4 bob@example.org"}}, {"result": {"note": "2 more"}}]) + b"data: [DONE]\n\n"


def labels(kind: str, data: bytes) -> frozenset[str]:
    outcome = Outcome(started_ns=1)
    observer = observers()[kind](outcome, DETECTORS, False)
    observer.head(200, lambda name: "text/event-stream")
    for at in range(0, len(data), 7):
        observer.chunk(data[at : at + 7])
    observer.finish()
    return outcome.output_detected


@pytest.mark.parametrize("data", [ENDED, SPLIT, NESTED], ids=["ended", "split", "nested"])
@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_an_address_that_ends_an_unknown_event_is_found(kind: str, data: bytes) -> None:
    assert labels(kind, data) == {EMAIL}


def test_a_whole_reply_of_many_strings_is_read_within_its_bounds() -> None:
    """Strings are read by place only once a second event comes: a whole reply's thousands of places are no
    thousands of texts, each counted against the room of what is kept (which they outgrew: `scan:truncated`)."""
    outcome = Outcome(started_ns=1)
    observer = observers()["chat"](outcome, DETECTORS, False)
    observer.head(200, lambda name: "application/json")
    observer.body(orjson.dumps({"items": [f"s{i}" for i in range(6000)] + ["write to bob@example.org"]}))
    observer.finish()
    assert outcome.output_detected == {EMAIL}


def test_clean_unknown_events_stay_clean() -> None:
    assert labels("chat", sse([{"text": "bob"}, {"text": "example.org"}]) + b"data: [DONE]\n\n") == frozenset()


def test_through_the_proxy_an_address_before_another_event_is_labelled(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([ENDED[:25], ENDED[25:]], content_type="text/event-stream")
    flow = "flow-unknown-events"
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", max_retries=0,
                           default_headers={"x-data-labels": flow})  # fmt: skip
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    got = [chunk.model_dump() for chunk in raw.parse()]
    assert [event.get("text") for event in got] == ["write to bob@example.org", None]  # what the caller is shown
    assert setup.recorded(raw, flow) == ([flow, EMAIL], [flow, EMAIL])
