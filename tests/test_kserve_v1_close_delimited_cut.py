"""A KServe V1 reply framed by its connection's close (no Content-Length, not chunked) that closes before its JSON
ends was cut short as far as anyone can tell, as an OIP REST reply so cut is (tests/test_close_delimited_json_cut.py):
it was recorded as a call that ended well, no `error.type`, its span status unset. It is recorded `upstream_reset`, as
the OIP reply is; a whole close-delimited V1 reply is not."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import OUT, TRUNCATED, Reply, Setup, pieces, setup_for  # noqa: F401

STATUS_ERROR = 2
PATH = "/v1/models/iris:predict"  # routed by the model its path names (`iris`)


def call(setup: Setup, reply: Reply) -> tuple[httpx.Response, bytes]:
    setup.upstream.reply = reply
    with httpx.stream("POST", f"{setup.proxy.url}{PATH}", json={"instances": [["hi"]]}, timeout=30) as response:
        body = b"".join(response.iter_raw())
    return response, body


def test_a_close_delimited_v1_reply_closed_before_its_end_is_recorded_cut(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    body = orjson.dumps({"predictions": [[OUT, "setosa", "virginica"]]})
    sent = pieces(body, len(body) // 3)[:2]  # two thirds of it, then the connection's orderly close
    response, got = call(setup, Reply(sent, framing="close"))
    assert response.status_code == 200 and got == b"".join(sent)  # what came, and a clean end, as direct
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == "upstream_reset"
    assert span.status_code == STATUS_ERROR
    assert TRUNCATED in span.attributes["lineage.output.labels"]


def test_a_whole_close_delimited_v1_reply_is_not(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    body = orjson.dumps({"predictions": [[OUT]]}, option=orjson.OPT_APPEND_NEWLINE)
    response, got = call(setup, Reply(pieces(body, 7), framing="close"))
    assert response.status_code == 200 and got == body
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") is None
    assert list(span.attributes["lineage.output.labels"]) == ["pii:email"]
