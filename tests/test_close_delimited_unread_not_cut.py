"""A reply framed by its connection's close is recorded `upstream_reset` when its event stream closed before its end
(`SseObserver.cut_short`). A reply the observer stopped reading (a JSON reply past what is kept, 16 MiB; an event
stream past the line bound) says nothing of where it ended: its end, its finish reason, its `[DONE]` were never read.
Such a reply that arrived whole was recorded cut (`upstream_reset`, the call an error) although it ended as the
upstream meant: it is labelled `scan:truncated`, as before, and not recorded as a cut."""

from __future__ import annotations

from typing import Any

import orjson

from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import CHAT, TRUNCATED, Reply, pieces, setup_for  # noqa: F401  # (a fixture)


def test_a_close_delimited_json_reply_past_what_is_kept_is_not_recorded_cut(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    token = {"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}
    choice = {**CHAT["choices"][0], "logprobs": {"content": [token] * 200_000}}  # type: ignore[dict-item]
    body = orjson.dumps({**CHAT, "choices": [choice]}, option=orjson.OPT_INDENT_2)
    assert len(body) > 16 << 20
    response, got = setup.call("/v1/chat/completions", "flow-close-big", Reply(pieces(body, 1 << 20), framing="close"))
    assert response.status_code == 200 and got == body  # whole, as the upstream sent it
    span = span_of(setup, response.headers["x-trace-id"])
    assert list(span.attributes["lineage.output.labels"]) == ["flow-close-big", TRUNCATED]
    assert span.attributes.get("error.type") is None  # HEAD: upstream_reset
