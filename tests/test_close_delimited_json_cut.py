"""A JSON reply framed by its connection's close (no Content-Length, not chunked) that closes before its JSON ends
was cut short as far as anyone can tell, as an event stream closed before its last event is
(tests/test_stream_close_delimited_cut.py): the client's JSON does not parse, the model's output was never whole. It
was recorded as a call that ended well, no `error.type`, its span status unset (only its output labelled
`scan:truncated`). It is recorded `upstream_reset`, as that stream is; a whole close-delimited reply is not."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import CHAT, INFER, MESSAGE, TRUNCATED, Reply, pieces, setup_for  # noqa: F401

STATUS_ERROR = 2


@pytest.mark.parametrize(
    ("path", "reply"),
    [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGE), ("/v2/models/iris/infer", INFER)],
    ids=["chat", "messages", "oip"],
)
def test_a_close_delimited_json_reply_closed_before_its_end_is_recorded_cut(
    setup_for: Any,  # noqa: F811
    path: str,
    reply: dict[str, Any],
) -> None:
    setup = setup_for()
    body = orjson.dumps(reply)
    flow = f"flow-json-cut-{path.rsplit('/', 1)[1]}"
    sent = pieces(body, len(body) // 3)[:2]  # two thirds of it, then the connection's orderly close
    response, got = setup.call(path, flow, Reply(sent, framing="close"))
    assert response.status_code == 200 and got == b"".join(sent)  # what came, and a clean end, as direct
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == "upstream_reset"
    assert span.status_code == STATUS_ERROR
    assert TRUNCATED in span.attributes["lineage.output.labels"]


@pytest.mark.parametrize(
    ("path", "reply"),
    [("/v1/chat/completions", CHAT), ("/v2/models/iris/infer", INFER)],
    ids=["chat", "oip"],
)
def test_a_whole_close_delimited_json_reply_is_not(setup_for: Any, path: str, reply: dict[str, Any]) -> None:  # noqa: F811
    setup = setup_for()
    body = orjson.dumps(reply, option=orjson.OPT_APPEND_NEWLINE)
    flow = f"flow-json-whole-{path.rsplit('/', 1)[1]}"
    response, got = setup.call(path, flow, Reply(pieces(body, 7), framing="close"))
    assert response.status_code == 200 and got == body
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") is None
    assert TRUNCATED not in span.attributes["lineage.output.labels"]
