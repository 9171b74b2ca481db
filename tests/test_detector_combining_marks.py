"""Combining marks drawn over ASCII characters hid the value beneath: a strikethrough (`4̶1̶1̶1̶…`, U+0336 after each
digit), a keycap (`4️⃣`, U+FE0F then U+20E3), "zalgo" text (`b̵o̵b̵@̵…`). NFKC composes none of these with an ASCII
character, so they stayed between the digits or letters, and no card or address was found, though a model reads the
characters beneath as they are. They are dropped where they stand on an ASCII character (the text is read as the
model reads it); after a letter that is not ASCII they stay its own (`jö̶rg`), and an accent NFKC composes is the
letter it makes (`é`)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors, folded
from tests.test_unsized_replies_output import CHAT, Reply, setup_for  # noqa: F401  # (a fixture)

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


def over(text: str, marks: str) -> str:
    return "".join(char + marks for char in text)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("card " + over("4111 1111 1111 1111", "\u0336"), "pii:credit_card"),  # strikethrough
        ("card " + over("4111111111111111", "\ufe0f\u20e3"), "pii:credit_card"),  # keycaps
        ("card " + over("4111111111111111", "\u20dd"), "pii:credit_card"),  # enclosing circles
        ("call " + over("+1 415 555 2671", "\u0332"), "pii:phone"),  # underlined
        ("mail " + over("bob@example.org", "\u0335"), "pii:email"),  # zalgo
        ("mail bob@example.\u0301org", "pii:email"),
        ("mail " + over("bob", "\u0489\u1dc4") + "@example.org", "pii:email"),
        ("host " + over("10.20.30.40", "\u0338"), "pii:ip_address"),
        ("iban " + over("DE89 3704 0044 0532 0130 00", "\u0336"), "pii:iban"),
    ],
)
def test_a_value_under_combining_marks_is_found(text: str, label: str) -> None:
    assert label in ALL.scan(text)
    assert label in ALL.scan_output(text)
    assert f"[{label}]" in ALL.mask(text)  # masked whole


def test_marks_on_other_letters_stay() -> None:
    assert folded("jö\u0336rg café\u0301 e\u0301", 100) == ("jö\u0336rg café\u0301 é", False)
    assert folded("\u0915\u093f 4\u0336", 100) == ("\u0915\u093f 4", False)  # a script's own marks are not these
    assert ALL.scan("version 4\u03361.2") == frozenset()


def test_through_the_proxy_a_struck_through_address_is_refused(setup_for: Any) -> None:  # noqa: F811
    """The zone of addresses allows `assistant` only: for `ads`, a request holding one under marks is refused."""
    setup = setup_for()
    setup.upstream.reply = Reply([orjson.dumps(CHAT)], framing="sized")
    body = {"model": "m", "messages": [{"role": "user", "content": "mail " + over("bob@example.org", "\u0336")}]}
    refused = httpx.post(f"{setup.proxy.url}/v1/chat/completions", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert refused.status_code == 403, refused.text
    assert "pii:email" in refused.text
    assert setup.upstream.reply is not None  # never forwarded
