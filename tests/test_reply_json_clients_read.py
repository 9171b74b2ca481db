"""A whole reply's JSON that orjson refuses but clients read has its output read, or labelled `scan:truncated`:
never left unread without a word. A UTF-8 byte order mark before it (a browser's `fetch().json()`, `requests`'
`.json()` drop it); an integer of more digits than Python's `int` reads from text (4,300: `JSON.parse` reads it as
a number, Infinity)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_unsized_replies_output import CHAT, EMAIL, TRUNCATED, Reply, setup_for  # noqa: F401  # (a fixture)

ODD = {
    "bom": lambda body: b"\xef\xbb\xbf" + body,
    "long_int": lambda body: body[:-1] + b',"n":' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("framing", ["sized", "chunked"])
@pytest.mark.parametrize("odd", sorted(ODD))
def test_json_clients_read_is_read_or_labelled_unread(setup_for: Any, odd: str, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    body = ODD[odd](orjson.dumps(CHAT))
    flow = f"flow-{odd}-{framing}"
    response, got = setup.call("/v1/chat/completions", flow, Reply([body], framing=framing))
    assert response.status_code == 200 and got == body  # passed on as it came
    span, edge = setup.recorded(response, flow)
    assert set(span) == set(edge)
    assert EMAIL in span or TRUNCATED in span, span  # the address it holds found, or the output said unread
