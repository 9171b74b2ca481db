"""A JSON reply in UTF-16 or UTF-32 framed by its connection's close that closes before its JSON ends was cut short,
as one in UTF-8 is (tests/test_close_delimited_json_cut.py): its client's `json.loads` fails. `ends_early` read it as
UTF-8 (it broke off at its first byte, not at its end), so it was recorded as a call that ended well, no `error.type`
(only its output labelled `scan:truncated`). It is recorded `upstream_reset`, as one in UTF-8 is; a whole one is not."""

from __future__ import annotations

import codecs
from typing import Any

import orjson
import pytest

from tests.test_close_delimited_json_cut import STATUS_ERROR
from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import CHAT, TRUNCATED, Reply, pieces, setup_for  # noqa: F401

FORMS = [("utf-16-le", b""), ("utf-16-be", b""), ("utf-32-be", b""), ("utf-16-le", codecs.BOM_UTF16_LE),
         ("utf-32-le", codecs.BOM_UTF32_LE)]  # fmt: skip


@pytest.mark.parametrize(("encoding", "mark"), FORMS)
@pytest.mark.parametrize("cut", [0, 1])  # (closed after a whole character, or inside one)
def test_a_close_delimited_json_reply_in_utf16_or_utf32_closed_before_its_end_is_recorded_cut(
    setup_for: Any,  # noqa: F811
    encoding: str,
    mark: bytes,
    cut: int,
) -> None:
    setup = setup_for()
    body = mark + orjson.dumps(CHAT).decode().encode(encoding)
    flow = f"flow-wide-cut-{encoding}-{len(mark)}-{cut}"
    at = len(body) * 2 // 3 // 4 * 4 + cut  # two thirds of it, then the connection's orderly close
    sent = pieces(body[:at], 50)
    response, got = setup.call("/v1/chat/completions", flow, Reply(sent, framing="close"))
    assert response.status_code == 200 and got == body[:at]
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == "upstream_reset"  # before: None
    assert span.status_code == STATUS_ERROR
    assert TRUNCATED in span.attributes["lineage.output.labels"]


@pytest.mark.parametrize(("encoding", "mark"), FORMS)
def test_a_whole_close_delimited_json_reply_in_utf16_or_utf32_is_not(
    setup_for: Any,  # noqa: F811
    encoding: str,
    mark: bytes,
) -> None:
    setup = setup_for()
    body = mark + orjson.dumps(CHAT).decode().encode(encoding)
    flow = f"flow-wide-whole-{encoding}-{len(mark)}"
    response, got = setup.call("/v1/chat/completions", flow, Reply(pieces(body, 50), framing="close"))
    assert response.status_code == 200 and got == body
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") is None
    assert list(span.attributes["lineage.output.labels"]) == [flow, "pii:email"]
