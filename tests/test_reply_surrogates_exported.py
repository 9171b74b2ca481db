"""A reply's JSON that orjson refuses for a lone surrogate escape is read as Python's `json` reads it; its strings
then reach the record beside its text (the reply's model, id, finish reason): the call's span, and the spans
exported with it, still reach the collector (an OTLP string is UTF-8: a lone surrogate encoded as it stands is
not, and the whole export is refused)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_unsized_replies_output import CHAT, EMAIL, Reply, setup_for  # noqa: F401  # (a fixture)

# where in the reply the escape is: the field as orjson writes it, and as sent
WHERE = {
    "model": (b'"model":"m"', b'"model":"m\\ud800"'),
    "id": (b'"id":"c1"', b'"id":"c1\\udfff"'),
    "finish_reason": (b'"finish_reason":"stop"', b'"finish_reason":"st\\ud83d"'),
}


@pytest.mark.parametrize("where", sorted(WHERE))
def test_a_lone_surrogate_in_a_replys_strings_loses_no_span(setup_for: Any, where: str) -> None:  # noqa: F811
    setup = setup_for()
    plain, odd = WHERE[where]
    body = orjson.dumps(CHAT)
    assert plain in body
    body = body.replace(plain, odd)
    flow = f"flow-{where}"
    response, got = setup.call("/v1/chat/completions", flow, Reply([body], framing="sized"))
    assert response.status_code == 200 and got == body  # passed on as it came
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])  # its span is exported
    # and a call after it is too
    response, _ = setup.call("/v1/chat/completions", "flow-after", Reply([orjson.dumps(CHAT)], framing="sized"))
    assert setup.recorded(response, "flow-after") == (["flow-after", EMAIL], ["flow-after", EMAIL])
