"""An upstream reply's media type is read case-insensitively (RFC 9110 §8.3.1) wherever the proxy reads it: an
event stream sent whole with a Content-Length under `Text/Event-Stream` has its output read for the record as the
same stream under `text/event-stream` does; so is one sent whole under another media type, as one passed on as it
arrives is (`sse.SseObserver._keep`: a reply whose first byte is not `{` is read as an event stream)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_unsized_replies_output import EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)

EVENTS = b"".join(
    b"data: %s\n\n" % orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                     "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
    for text in ("write to ", OUT, " today")
) + b"data: [DONE]\n\n"  # fmt: skip


@pytest.mark.parametrize(
    "content_type", ["text/event-stream", "Text/Event-Stream", "TEXT/EVENT-STREAM; charset=utf-8", "application/json"]
)
def test_a_sized_event_stream_has_its_output_read_whatever_the_case_of_its_media_type(
    setup_for: Any,  # noqa: F811
    content_type: str,
) -> None:
    setup = setup_for()
    flow = "flow-" + content_type.split(";")[0].replace("/", "-").lower()
    response, got = setup.call(
        "/v1/chat/completions", flow, Reply([EVENTS], framing="sized", content_type=content_type)
    )
    assert response.status_code == 200 and got == EVENTS
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])
