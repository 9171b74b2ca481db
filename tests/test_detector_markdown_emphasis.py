"""A value in Markdown's emphasis by underscores (`_alice@example.com_`, `__4111 1111 1111 1111__`) is found: an
underscore was read as a letter is, joining the value to a word, so any value between underscores went through
unlabelled, for any purpose (a hunt, 2026-12-04), while the same value between asterisks was found. An underscore
between the value and a word still joins them (`card_4111111111111111`, `x@self.weight_t`), as before."""

from __future__ import annotations

from typing import Any

import openai
import pytest

import proxy.detectors as detectors
from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.configs import EMAIL_ZONE_STORED
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED
from tests.test_scan_cost import python_lines

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])

CONFIG = EMAIL_ZONE_STORED


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("write to _alice@example.com_ today", "pii:email"),
        ("write to __alice@example.com__ today", "pii:email"),
        ("write to _alice@example.com_.", "pii:email"),
        ("alice@example.com_", "pii:email"),
        ("schreib _jörg@exämple.de_ bitte", "pii:email"),  # an address that is not ASCII
        ("_alice@exämple.de_", "pii:email"),
        ("card _4111 1111 1111 1111_ please", "pii:credit_card"),
        ("card __4111111111111111__", "pii:credit_card"),
        ("call _+1 415 555 2671_", "pii:phone"),
        ("call _415-555-2671_ now", "pii:phone"),
        ("host _8.8.8.8_", "pii:ip_address"),
        ("pay _DE89370400440532013000_", "pii:iban"),
        ("é _4111 1111 1111 1111_", "pii:credit_card"),  # in a text that is not ASCII
        # beside punctuation that is not ASCII, read as a letter before 2026-12-04 (an emphasis in quotation marks)
        ("“_8.8.8.8_”", "pii:ip_address"),
        ("«_+1 415 555 2671_»", "pii:phone"),
        ("「_4111 1111 1111 1111_」", "pii:credit_card"),
        ("write to _alice@example.com_🙂", "pii:email"),
    ],
)
def test_a_value_in_underscores_emphasis_is_found(text: str, label: str) -> None:
    assert label in ALL.scan(text)


@pytest.mark.parametrize(
    "text",
    [
        "card_4111111111111111",  # an underscore between a word and the value joins them, as before
        "y = x@self.weight_t",
        "client_8.8.8.8",
        "tel_415-555-2671",
        "straße_4111111111111111",  # a letter that is not ASCII beyond the underscore, or a mark, joins it as before
        "नमस्ते_4111111111111111",
        "_4111111111111111_é",
        "__init__ and _private_ names",
    ],
)
def test_an_underscore_beside_a_word_still_joins_it(text: str) -> None:
    assert ALL.scan(text) == frozenset()


def test_the_mask_covers_the_value_in_emphasis() -> None:
    assert ALL.mask("card _4111 1111 1111 1111_ please") == "card _[pii:credit_card]_ please"
    assert ALL.mask("call _+1 415 555 2671_") == "call _[pii:phone]_"


def test_an_address_in_emphasis_is_refused_where_its_zone_forbids_the_purpose(vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [{"role": "user", "content": "Draft a reply to _alice@example.com_ about the invoice."}]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:email" in allowed.http_response.headers["x-data-labels"].split(",")


@pytest.mark.interpreted  # (counts the lines of Python the module runs)
@pytest.mark.parametrize("value", ["4111111111111111", "415-555-2671", "é a@é.de"])
def test_a_long_run_of_underscores_beside_values_is_read_in_steps_that_do_not_grow_with_it(value: str) -> None:
    """Where a run of underscores beside a value starts and ends is found in C (`_run_start`): read a byte at a time in
    Python, ~8 times a card, 1,000 underscores beside each of 1,000 cards cost 1.6 s, ~2,000 lines of Python a card."""

    def lines(run: int) -> int:
        text = (value + "_" * run + " ") * 50
        return python_lines(lambda: ALL.scan(text), detectors.__file__)

    assert lines(4000) < 2 * lines(10) + 200
