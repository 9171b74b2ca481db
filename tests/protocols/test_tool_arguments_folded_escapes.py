"""JSON escapes of characters the detectors read folded: a tool call's arguments (JSON in a string, which its client
parses) holding `bob\\uff20example.org` are `bob＠example.org` to the client, an address as the fullwidth `＠` is
read anywhere else; `bob@\\ud835\\udc1e\\ud835\\udc31ample.org` (a surrogate pair each) is `bob@𝐞𝐱ample.org`,
mathematical bold letters NFKC reads as `ex`. The detectors decoded an escape only to the character it names, not
folding it after, and left a surrogate pair's halves as written: an address or a card so written in a reply's tool
call was left unlabelled. Now what escapes decode to is folded as the rest of a text is, and a surrogate pair is its
character."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.protocols.test_stream_tool_arguments_json_escapes import streams
from tests.test_unsized_replies_output import BODIES, EMAIL, Reply, setup_for  # noqa: F401  # (a fixture)

FULLWIDTH = ['{"to": "bob\\uff20exa', 'mple\\uff0eorg", "body": "hi"}']
BOLD = ['{"to": "bob@\\ud835\\udc1e\\ud835', '\\udc31ample.org", "body": "hi"}']
ALL = Detectors([DetectorSpec(name) for name in ("email", "credit_card")])
CARD = "".join(f"\\uff1{digit}" for digit in "4111111111111111")


def test_what_the_client_parses() -> None:
    assert json.loads("".join(FULLWIDTH))["to"] == "bob＠example．org"
    assert json.loads("".join(BOLD))["to"] == "bob@𝐞𝐱ample.org"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ('{"to": "bob\\uff20example.org"}', "pii:email"),
        ('{"to": "j\\u00f6rg\\uff20ex\\u00e4mple.de"}', "pii:email"),
        ('{"to": "jörg\\uff20exämple.de"}', "pii:email"),  # in a text that is not ASCII
        ('{"card": "' + CARD + '"}', "pii:credit_card"),
        (
            "card " + "".join("\\ud835\\u%04x" % (0xDFCE + int(digit)) for digit in "4111111111111111"),
            "pii:credit_card",
        ),
    ],
)
def test_escapes_are_read_folded(text: str, label: str) -> None:
    assert label in ALL.scan(text) and label in ALL.scan_output(text)
    assert f"[{label}]" in ALL.mask(text)


def test_half_a_pair_stays_as_written() -> None:
    assert ALL.mask("x \\ud835 y \\udc1b") == "x \\ud835 y \\udc1b"
    assert ALL.scan("card \\ud835\\udfd2 4111") == frozenset()


@pytest.mark.parametrize("pieces", [FULLWIDTH, BOLD], ids=["fullwidth", "bold"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/messages"])
def test_through_the_proxy_a_folded_escape_in_tool_arguments_labels_the_output(
    setup_for: Any,  # noqa: F811
    path: str,
    pieces: list[str],
) -> None:
    setup = setup_for()
    sent = streams(pieces)[path]
    setup.upstream.reply = Reply([sent], content_type="text/event-stream")
    flow = f"flow-folded-{len(pieces[0])}-" + path.rsplit("/", 1)[1]
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == sent
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])
