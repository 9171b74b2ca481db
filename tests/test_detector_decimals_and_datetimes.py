"""Decimal numbers and dates with times are no phones or cards. A double's fraction (`-0.07967057352398446`, 15-17
digits) passed Luhn 1 time in 10, so 57 % of 8-float embeddings, a tenth of logprobs and a fifth of coordinates were
`pii:credit_card`; a decimal of 9-15 digits (`-0.0870868541`, `36.717176205%`, `-124.203753`) was a `pii:phone`, as was
a date with its hour (`2024-01-15 12:30:45`: `2024-01-15 12`, ten digits) and a time's seconds, fraction and offset
(`…T09:31:48.218123-05:00`: `48.218123-05`), every SQL timestamp and Python log line, a fifth of RFC 3339 ones. Where a
zone forbids phones or cards, a tool result with a coordinate or a timestamp in it was refused 403. A card or a phone
written beside them, or as a number's integer part (`4111111111111111.0`, as servers print a tool call's arguments),
is still found. Unix times in milliseconds, microseconds and nanoseconds and Snowflake ids (13-19 digits beginning with
1 or 2) passed Luhn 1 time in 10 too: no card begins so but UATP's and enRoute's (15 digits), Mir's and Mastercard's."""

from __future__ import annotations

import datetime
import random

import orjson
import pytest

from proxy.config import DetectorSpec, parse
from proxy.detectors import Detectors
from proxy.protocols.openai import read_request
from tests.harness import offline_pipeline

PHONE_AND_CARD = Detectors([DetectorSpec("phone"), DetectorSpec("credit_card")])
DRAW_SEED = 20261204


def _floats(draw: random.Random) -> list[str]:
    """Doubles as Python and JSON encoders write them: embeddings' and logprobs' small ones, coordinates, fixed."""
    return [
        repr(draw.gauss(0, 0.05)),
        repr(draw.gauss(-2, 1)),
        repr(draw.uniform(-180, 180)),
        f"{draw.gauss(0, 0.05):.10f}",
        f"{draw.uniform(-90, 90):.6f},{draw.uniform(-180, 180):.6f}",
        f"({draw.gauss(0, 1):.10f}, {draw.gauss(0, 1):.10f})",
        f"{draw.uniform(0, 100):.9f}%",
    ]


def test_random_decimal_numbers_are_no_phones_or_cards() -> None:
    draw = random.Random(DRAW_SEED)
    numbers = [number for _ in range(3000) for number in _floats(draw)]
    labelled = [number for number in numbers if PHONE_AND_CARD.scan(f"value: {number} ok")]
    assert labelled == []  # before: 11,488 of 21,000 (880 cards), e.g. -0.07967057352398446 (a card), -2.12449313493861


def _datetimes(draw: random.Random) -> list[str]:
    when = datetime.datetime(2020, 1, 1) + datetime.timedelta(
        seconds=draw.randrange(2 * 10**8), microseconds=draw.randrange(10**6)
    )
    offset = draw.choice(["Z", "+00:00", "-05:00", "+05:30", "-0800"])
    return [
        str(when),
        when.strftime("%Y-%m-%d %H:%M:%S"),
        when.strftime("%Y-%m-%d %H:%M"),
        when.strftime("%d.%m.%Y %H:%M"),
        when.strftime("%Y-%m-%d %H:%M:%S,%f")[:-3] + " INFO worker started",
        when.isoformat() + offset,
    ]


def test_dates_with_times_are_no_phones() -> None:
    draw = random.Random(DRAW_SEED)
    stamps = [stamp for _ in range(3000) for stamp in _datetimes(draw)]
    labelled = [stamp for stamp in stamps if PHONE_AND_CARD.scan(f"at {stamp} ok")]
    assert labelled == []  # before: 16,203 of 18,000, e.g. 2020-03-06 09:47:50, 2025-08-23T03:15:38.240112-05:00


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("card 4111111111111111.0", "pii:credit_card"),  # a number's integer part, as a tool call's is printed
        ("rated 3.5 4111 1111 1111 1111", "pii:credit_card"),  # after a decimal, apart from it
        ("score 0.93, card 4111111111111111", "pii:credit_card"),
        ("card .4111111111111111", "pii:credit_card"),  # a dot, no decimal number before it
        ("call 415.555.2671", "pii:phone"),  # dotted, as phones are: more than one dot
        ("call +44.7911123456", "pii:phone"),  # a decimal led by a "+" is a phone's country code
        ("call 06.12.34.56.78", "pii:phone"),
        ("at 2024-01-15 12:30 call 415 555 2671", "pii:phone"),  # beside a date and time
        ("call 415-555-2671: ask for Bob", "pii:phone"),  # a colon after, no time
        ("at 12:30 415 555 2671", "pii:phone"),  # a time before a phone, that takes in its minutes
        ("tel:+14155552671", "pii:phone"),
    ],
)
def test_values_beside_decimals_and_datetimes_are_found(text: str, label: str) -> None:
    assert label in PHONE_AND_CARD.scan(text)


CONFIG = """
listen: {http: 127.0.0.1:8080}
upstreams: [{name: u, url: http://127.0.0.1:1, protocol: openai}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email, phone, credit_card, ip_address, iban]
"""


def test_a_tool_result_with_coordinates_and_a_time_is_read_clean() -> None:
    """The whole request read, as a chat's tool result with a weather API's answer reaches the pipeline's scan."""
    weather = {"lat": -33.868820357, "lon": 151.20929941, "observed": "2026-12-04 15:30:00", "temp_c": 21.43}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Sydney?"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "weather", "arguments": '{"lat": -33.868820357, "lon": 151.20929941}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": orjson.dumps(weather).decode()},
        ],
    }  # fmt: skip
    pipe = offline_pipeline(parse(CONFIG))
    assert pipe._detected(read_request("chat", orjson.dumps(body))) == frozenset()  # before: {pii:phone}
    weather["note"] = "call 415 555 2671"
    body["messages"][2]["content"] = orjson.dumps(weather).decode()  # type: ignore[index]
    assert pipe._detected(read_request("chat", orjson.dumps(body))) == {"pii:phone"}


CARD = Detectors([DetectorSpec("credit_card")])


def _times_and_ids(draw: random.Random) -> list[str]:
    """Unix times in milliseconds, microseconds and nanoseconds (2020-2033) and Snowflake ids of 2023-2026 (Discord's
    were 18 digits before 2022-07, 6... to 9..., which still pass as cards 1 time in 10)."""
    ms = draw.randrange(1_577_836_800_000, 2_000_000_000_000)
    now = draw.randrange(1_672_531_200_000, 1_798_761_600_000)
    return [
        str(ms),
        str(ms * 1000 + draw.randrange(1000)),
        str(ms * 1_000_000 + draw.randrange(1_000_000)),
        str((now - 1_288_834_974_657) << 22 | draw.getrandbits(22)),  # X's
        str((now - 1_420_070_400_000) << 22 | draw.getrandbits(22)),  # Discord's
    ]


def test_unix_times_and_snowflake_ids_are_no_cards() -> None:
    draw = random.Random(DRAW_SEED)
    numbers = [number for _ in range(4000) for number in _times_and_ids(draw)]
    labelled = [number for number in numbers if CARD.scan(f'{{"id": {number}}}')]
    assert labelled == []  # before: 2,028 of 20,000, e.g. 1691912253197, 1155671849245890420


def _luhn_completed(digits: str) -> str:
    """`digits` and the check digit that makes them pass Luhn."""
    doubled = [int(d) * (2 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits))]
    return digits + str(-sum(d - 9 if d > 9 else d for d in doubled) % 10)


@pytest.mark.parametrize(
    "start",
    ["13541234567890", "2200" + "1234" * 3, "2204" + "1234" * 3, "2221" + "0000" * 2 + "123",
     "2720" + "9999" * 2 + "123", "2014" + "1234567890", "2149" + "1234567890", "4111" + "1111" * 2 + "111",
     "6200" + "0000" * 3 + "00", "8100" + "1234" * 3],
)  # fmt: skip
def test_cards_beginning_with_1_or_2_that_are_issued_are_found(start: str) -> None:
    """UATP (15 digits, 1...), enRoute (15, 2014 and 2149), Mir (2200-2204), Mastercard (2221-2720); and others."""
    card = _luhn_completed(start)
    assert CARD.scan(f"card {card}") == {"pii:credit_card"}, card


def _streamed(detectors: Detectors, text: str, draw: random.Random) -> set[str]:
    scanner = detectors.stream()
    at = 0
    while at < len(text):
        size = draw.randrange(1, 400)
        scanner.feed(text[at : at + size])
        at += size
    scanner.end_text()
    return scanner.found


def test_a_reply_streaming_decimals_is_read_as_whole() -> None:
    """A stream scanner reads each piece with the tail of what it read before: a tail cut inside a decimal read its
    fraction alone (`…0.|0123456789`: a phone). It starts after white space now, as the reply read whole is read."""
    draw = random.Random(DRAW_SEED)
    replies = [
        orjson.dumps([round(draw.gauss(0, 0.05), 10) for _ in range(300)]).decode().replace(",", ", ")
        + " and "
        + ", ".join(repr(draw.gauss(0, 1)) for _ in range(100))
        for _ in range(200)
    ]
    assert [reply for reply in replies if PHONE_AND_CARD.scan(reply)] == []
    labelled = [reply for reply in replies if _streamed(PHONE_AND_CARD, reply, draw)]
    assert labelled == []  # before: 123 of 200
    with_phone = replies[0][:2000] + " call 415 555 2671 " + replies[1][:2000]
    assert _streamed(PHONE_AND_CARD, with_phone, draw) == {"pii:phone"}
