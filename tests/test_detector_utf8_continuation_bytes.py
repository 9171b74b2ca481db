"""The detectors' class table is applied to a text's UTF-8 bytes. Byte 0x85 is NEL's code point, but in UTF-8 it is
only ever a continuation byte: the second byte of `х` (Cyrillic, D1 85), `Å` (C3 85), `Ņ`, `ѕ`, and of many more
letters. Classed as a control character (a break inside a value), it cut an address written with such a letter in
two: `алексх@пример.рф` and `ÅÅÅ@example.com` were found by no detector, so they reached the model for a purpose their
zone forbids, and `хан@example.com` was captured with its `х` left unmasked beside `[pii:email]`."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED
from tests.test_detector_control_characters import CONFIG

DETECTORS = Detectors([DetectorSpec(name) for name in ("email", "credit_card", "ip_address")])


@pytest.mark.parametrize(
    "text",
    [
        "пиши на почту алексх@пример.рф",  # х: D1 85
        "ÅÅÅ@example.com",  # Å: C3 85
        "почта: хан@example.com",
        "Ņikolajs: ņх@example.lv",
    ],
)
def test_address_with_a_letter_ending_in_0x85_is_found(text: str) -> None:
    assert "х".encode()[-1] == 0x85 and "Å".encode()[-1] == 0x85
    assert DETECTORS.scan(text) == frozenset({"pii:email"})


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("хан@example.com", "[pii:email]"),
        ("Åsa@example.se, call me", "[pii:email], call me"),
        ("пиши на почту алексх@пример.рф", "пиши на почту [pii:email]"),
    ],
)
def test_address_with_a_letter_ending_in_0x85_is_masked_whole(text: str, masked: str) -> None:
    assert DETECTORS.mask(text) == masked


def test_control_characters_still_dropped() -> None:
    """What the table's control class is for (`alice\\x00@example.com`, a card's groups parted by \\x1f) still holds."""
    assert DETECTORS.scan("alice\x00@example.com") == frozenset({"pii:email"})
    assert DETECTORS.scan("4111\x1f1111\x1f1111\x1f1111") == frozenset({"pii:credit_card"})
    assert DETECTORS.mask("mail alice\x00@example.com now") == "mail [pii:email] now"


def test_such_an_address_is_refused_where_its_zone_forbids_the_purpose(vllm: Any, make_proxy: Any) -> None:
    """End to end: the address reached the model for a purpose its zone forbids."""
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [{"role": "user", "content": "Отправь счёт на алексх@пример.рф"}]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
