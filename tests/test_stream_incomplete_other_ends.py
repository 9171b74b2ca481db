"""The neighbours of `test_stream_chunked_incomplete.py`: an event stream that ends in good order before its API's last
event, any finish or stop reason and any error in band gave its client a reply cut short, its client's SDK ending it
without an error; recorded `upstream_incomplete`, where it was recorded as a call that ended well (before
2026-12-05). A stream sized by its `Content-Length` that ends so at its last byte; Ollama's native stream of JSON lines
ended before its `"done": true` line (the `ollama` client's iteration just ends); TGI's native `generate_stream` ended
before its last event, the one whose `generated_text` is set (huggingface_hub's iteration just ends). A stream that
ended at its end is not, TGI's last event without `details` (`details: false`) too, also when its connection's close
framed it (it was `upstream_reset`)."""

from __future__ import annotations

from typing import Any

import huggingface_hub
import ollama
import orjson
import pytest

from tests.event_streams import chat, chat_call, generate_pieces, post_stream, span_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)


@pytest.mark.parametrize("ended", [False, True], ids=["before-its-end", "at-its-end"])
def test_a_sized_chat_stream_ended_before_its_end_is_recorded_incomplete(setup_for: Any, ended: bool) -> None:  # noqa: F811
    setup = setup_for()
    pieces = [chat("hello"), chat(" there", "stop") + b"data: [DONE]\n\n" if ended else chat(" there")]
    got, span = chat_call(setup, pieces, f"flow-sized-{ended}", "sized")
    assert got == ["hello", " there"]  # every event, and a clean end: no error from the SDK
    assert span.attributes.get("error.type") == (None if ended else "upstream_incomplete")
    assert span.attributes["http.response.status_code"] == 200


def _line(text: str, done: bool = False) -> bytes:
    line: dict[str, Any] = {"model": "m", "created_at": "2026-12-05T00:00:00Z",
                            "message": {"role": "assistant", "content": text}, "done": done}  # fmt: skip
    if done:
        line.update(done_reason="stop", prompt_eval_count=1, eval_count=2)
    return orjson.dumps(line) + b"\n"


@pytest.mark.parametrize("ended", [False, True], ids=["before-its-end", "at-its-end"])
def test_an_ollama_stream_ended_before_its_done_line_is_recorded_incomplete(setup_for: Any, ended: bool) -> None:  # noqa: F811
    setup = setup_for()
    pieces = [_line("hello"), _line(" there")] + ([_line("", done=True)] if ended else [])
    setup.upstream.reply = Reply(pieces, framing="chunked", content_type="application/x-ndjson")
    client = ollama.Client(host=setup.proxy.url, headers={"x-data-labels": f"flow-ollama-{ended}"})
    got = [part.message.content for part in client.chat(model="m", messages=[{"role": "user", "content": "hi"}],
                                                         stream=True)]  # fmt: skip
    assert got == ["hello", " there"] + ([""] if ended else [])  # the client's iteration ends cleanly either way
    span = _last_span(setup)
    assert span.attributes.get("error.type") == (None if ended else "upstream_incomplete")


def _event(text: str, last: bool = False, details: bool = False) -> bytes:
    event: dict[str, Any] = {"index": 1, "token": {"id": 1, "text": text, "logprob": -0.1, "special": False},
                             "generated_text": "hello there" if last else None, "details": None}  # fmt: skip
    if last and details:
        event["details"] = {"finish_reason": "length", "generated_tokens": 2, "seed": None}
    return b"data:" + orjson.dumps(event) + b"\n\n"


@pytest.mark.parametrize(
    ("ended", "details", "framing"),
    [
        pytest.param(False, False, "chunked", id="before-its-end"),
        pytest.param(True, False, "chunked", id="at-its-end"),
        pytest.param(True, True, "chunked", id="at-its-end-with-details"),
        pytest.param(True, False, "close", id="at-its-end-closed"),
    ],
)
def test_a_tgi_stream_ended_before_its_last_event_is_recorded_incomplete(
    setup_for: Any,  # noqa: F811
    ended: bool,
    details: bool,
    framing: str,
) -> None:
    setup = setup_for()
    pieces = [_event("hello"), _event(" there", last=ended, details=details)]
    setup.upstream.reply = Reply(pieces, framing=framing, content_type="text/event-stream")
    client = huggingface_hub.InferenceClient(base_url=setup.proxy.url, timeout=10,
                                             headers={"x-data-labels": f"flow-tgi-{ended}-{details}"})  # fmt: skip
    got = [token for token in client.text_generation("hi", stream=True, max_new_tokens=2, details=details)]
    assert len(got) == 2  # the client's iteration ends cleanly either way
    span = _last_span(setup)
    assert span.attributes["gen_ai.operation.name"] == "generate"  # read as TGI's stream
    assert span.attributes.get("error.type") == (None if ended else "upstream_incomplete")


def _last_span(setup: Any) -> Any:
    """The one call's span (these clients do not hand back the reply's headers)."""
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    calls = [span for span in setup.otlp.wait_for(lambda got: any("lineage.decision" in s.attributes for s in got))]
    spans = [span for span in calls if "lineage.decision" in span.attributes]
    assert len(spans) == 1, [span.attributes for span in spans]
    return spans[0]


def test_a_generate_stream_framed_by_its_close_is_not_said_cut(setup_for: Any) -> None:  # noqa: F811
    """Triton's `generate_stream` has no last event: framed by its connection's close, its end is that close, and a
    stream that ended well looks as one cut (it was recorded `upstream_reset`, every such call); as chunked, it is not
    said to end early."""
    setup = setup_for()
    pieces = generate_pieces()
    setup.upstream.reply = Reply(pieces, framing="close", content_type="text/event-stream")
    response, got = post_stream(setup, "/v2/models/m/generate_stream", {"text_input": "hi"}, "flow-closed-generate")
    assert response.status_code == 200 and got == b"".join(pieces)
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes["gen_ai.operation.name"] == "generate"  # read as a generate stream
    assert span.attributes.get("error.type") is None
