"""Detector misses left by helper det17 (2026-12-07, helper det18): a phone in brackets beside another number
(`(+1 555-123-4567) 555-987-6543`, `(+44 20 7946 0958) 12`), its closing bracket read as an area code's, so both
phones were left in clear, the second found from the first's last digits, or the number after taken in; and a `+`
phone right after a word's stop (`Tel.+44 20 7946 0958`), never read as a phone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import VllmLike
from tests.test_detector_residuals16 import _masked_whole, captured

CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # before: no phone found, both in clear
        ("(+1 555-123-4567) 555-987-6543", "[pii:phone] [pii:phone]"),
        ("(555-123-4567) 555-987-6543", "[pii:phone] [pii:phone]"),
        ("(5551234567) 555-987-6543", "[pii:phone] [pii:phone]"),
        # before: one phone from the first's last group, `(+44 20 7946 [pii:phone]`
        ("(+44 20 7946 0958) 555-987-6543", "[pii:phone] [pii:phone]"),
        ("(+44 (0)20 7946 0958) 555-987-6543", "[pii:phone] [pii:phone]"),
        # before: the number after the bracket taken into the phone, `[pii:phone]`
        ("(+44 20 7946 0958) 12", "[pii:phone] 12"),
        ("(555-123-4567) 12", "[pii:phone] 12"),
        # before: the closing bracket left after the mask, `[pii:phone])`, where its opening one was taken in
        ("(555-123-4567), or", "[pii:phone], or"),
        ("(+1 555-123-4567) 555-987-6543 " + CARD, "[pii:phone] [pii:phone] [pii:credit_card]"),
        # (as before: brackets of an area code or a country's code, a phone after them)
        ("(555) 987-6543", "[pii:phone]"),
        ("+1 (555) 987-6543", "[pii:phone]"),
        ("(+44) 20 7946 0958", "[pii:phone]"),
        ("+44 (0)20 7946 0958", "[pii:phone]"),
        ("(+1 555) 123-4567", "[pii:phone]"),
        ("(+44 20 7946 0958) " + CARD, "[pii:phone] [pii:credit_card]"),
        ("a(+44 20 7946 0958) " + CARD, "a(+44 20 7946 0958) [pii:credit_card]"),
    ],
)
def test_a_phone_in_brackets_beside_another_number_is_found_whole(text: str, masked: str) -> None:
    _masked_whole(text, masked)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # before: in clear
        ("Tel.+44 20 7946 0958", "Tel.[pii:phone]"),
        ("Tel.+1 555-123-4567", "Tel.[pii:phone]"),
        ("e.g.+44 20 7946 0958 or", "e.g.[pii:phone] or"),
        # (as before: a dot after a number joins the `+` to it; a phone with no `+` after a word's dot is the word's)
        ("v1.+44 20 7946 0958", "v1.+44 20 7946 0958"),
        ("x.555-123-4567", "x.555-123-4567"),
        ("Tel. +44 20 7946 0958", "Tel. [pii:phone]"),
    ],
)
def test_a_plus_phone_right_after_a_word_s_stop_is_found(text: str, masked: str) -> None:
    _masked_whole(text, masked)


def test_the_captured_content_hides_a_phone_in_brackets_beside_another(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    text = "call (+1 555-123-4567) 555-987-6543 or Tel.+44 20 7946 0958"
    a = captured(vllm, make_proxy, otlp, text)
    assert sorted(a["lineage.input.labels"]) == ["pii:phone"]
    # before: all three in clear
    assert "call [pii:phone] [pii:phone] or Tel.[pii:phone]" in a["gen_ai.input.messages"]
    assert "555" not in a["gen_ai.input.messages"] and "7946" not in a["gen_ai.input.messages"]
