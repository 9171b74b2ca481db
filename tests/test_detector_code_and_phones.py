"""What code, configs and phone numbers hold that was taken for another kind of value. An extended slice (`arr[100::200]`,
`x[::1000]`) is a valid IPv6 address, and was a `pii:ip_address`; so were the loopback and unspecified addresses every
server snippet holds (`127.0.0.1:8080`, `--host 0.0.0.0`), which are no one's. An IPv4 address of nine digits or more
(`192.168.10.254`, `10.96.36.188 443` with its port) was a `pii:phone` too, where only phones were looked for,
and so was a US address's ZIP+4 (`Springfield, IL 62704-1234`) and a book's ISBN-13 (`978-0-306-40615-7`, a card
too 1 time in 10). And an international phone of 13-15 digits
(`+49 151 12345678`) passed Luhn 1 time in 10: a tenth of German, Brazilian, Chinese mobiles were `pii:credit_card`
too, refused where cards are forbidden and phones allowed. IPv6 addresses in brackets in URLs, addresses that are
someone's, dotted phones and cards are still found."""

from __future__ import annotations

import random

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors

IP = Detectors([DetectorSpec("ip_address")])
PHONE = Detectors([DetectorSpec("phone")])
PHONE_AND_CARD = Detectors([DetectorSpec("phone"), DetectorSpec("credit_card")])
DRAW_SEED = 20261204


@pytest.mark.parametrize(
    "text",
    [
        "arr[100::200]",
        "x[::1000]",
        "df.iloc[10::100]",
        "frames = video[1000::2000]",
        "f(x)[1000::]",
        "grid[0][500::500]",
        "uvicorn.run(app, host='127.0.0.1', port=8080)",
        "curl http://127.0.0.1:8000/v1/models",
        "--host 0.0.0.0 --port 8000",
        "netmask 255.255.255.255",
    ],
)
def test_code_holds_no_ip_address(text: str) -> None:
    assert IP.scan(text) == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "curl http://[2001::1]:8080/",  # an address in a URL's brackets
        "ssh alice@[2001::1]",
        "at [2001:db8::8a2e:370:7334]",
        "v6 2001:db8::8a2e:370:7334 seen",
        "from 192.168.10.254 yesterday",
        "client 10.0.0.12 and 128.0.0.1",  # (not 127.0.0.0/8)
        "at 1.2.3.4",
        "dns 0.0.0.1",
    ],
)
def test_addresses_are_found(text: str) -> None:
    assert IP.scan(text) == {"pii:ip_address"}


def test_ipv4_addresses_are_no_phones() -> None:
    draw = random.Random(DRAW_SEED)
    addresses = [".".join(str(draw.randrange(100, 256)) for _ in range(4)) for _ in range(5000)]
    labelled = [address for address in addresses if PHONE.scan(f"from {address} yesterday")]
    assert labelled == []  # before: all 5,000


@pytest.mark.parametrize(
    "text", ["ClusterIP 10.96.36.188 443/TCP", "listening on 192.168.10.254 8080", "(192.168.100.200)"]
)
def test_an_ipv4_address_and_a_port_are_no_phone(text: str) -> None:
    assert PHONE.scan(text) == frozenset()  # before: pii:phone (`10.96.36.188 443`: 13 digits)


STATES = ["CA", "IL", "NY", "TX", "WA", "PA", "MA", "DC"]


def test_us_addresses_with_zip_plus_four_are_no_phones() -> None:
    draw = random.Random(DRAW_SEED)
    addresses = [
        f"{draw.randrange(1, 9999)} Main St, Springfield, {draw.choice(STATES)} {draw.randrange(10**5):05d}-"
        f"{draw.randrange(10**4):04d}"
        for _ in range(5000)
    ]
    labelled = [address for address in addresses if PHONE.scan(f"ship to {address}, USA")]
    assert labelled == []  # before: all 5,000


def _international_mobiles(draw: random.Random) -> list[str]:
    def digits(count: int) -> str:
        return "".join(draw.choice("0123456789") for _ in range(count))

    return [
        f"+49 15{draw.randrange(10)} {digits(8)}",
        f"+4917{digits(9)}",
        f"+55 11 9{digits(4)} {digits(4)}",
        f"+86 13{digits(9)}",
        f"+62 812-{digits(4)}-{digits(4)}",
    ]


def test_international_phones_are_no_cards() -> None:
    draw = random.Random(DRAW_SEED)
    phones = [phone for _ in range(2000) for phone in _international_mobiles(draw)]
    labels = [PHONE_AND_CARD.scan(f"call {phone} today") for phone in phones]
    assert [phone for phone, found in zip(phones, labels, strict=True) if found != {"pii:phone"}] == []  # before: 992


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("card 4111111111111111", {"pii:credit_card"}),
        ("card +4111111111111111", {"pii:credit_card"}),  # 16 digits: no phone
        ("call 415.555.2671", {"pii:phone"}),  # dotted, three groups
        ("call 06.12.34.56.78", {"pii:phone"}),  # five
        ("call 10.247.156.263", {"pii:phone"}),  # four, that are no address (263)
        ("call +49 151 12345678, card 5555 5555 5555 4444", {"pii:phone", "pii:credit_card"}),
        ("host 1.2.3.4 415 555 2671", {"pii:phone"}),  # a phone after an address
        ("ligue 98765-4321", {"pii:phone"}),  # a Brazilian mobile, written as a ZIP+4 is
        ("SP 98765-4321", {"pii:phone"}),  # after a Brazilian state's code
        ("call 62704-1234 now", {"pii:phone"}),
    ],
)
def test_phones_and_cards_beside_them_are_found(text: str, labels: set[str]) -> None:
    assert PHONE_AND_CARD.scan(text) == labels


def _isbn(draw: random.Random) -> str:
    """An ISBN-13 as books print it, 978 or 979, its check digit computed (weights 1, 3, 1, ...)."""
    body = draw.choice(["978", "979"]) + "".join(draw.choice("0123456789") for _ in range(9))
    check = -sum(int(digit) * (3 if i % 2 else 1) for i, digit in enumerate(body)) % 10
    return f"{body[:3]}-{body[3]}-{body[4:8]}-{body[8:]}-{check}"


def test_isbns_are_no_phones_or_cards() -> None:
    draw = random.Random(DRAW_SEED)
    isbns = [_isbn(draw) for _ in range(5000)]
    labelled = [isbn for isbn in isbns if PHONE_AND_CARD.scan(f"ISBN {isbn}")]
    assert labelled == []  # before: all 5,000 phones, 496 cards too
    assert PHONE_AND_CARD.scan("ISBN 978-0-306-40615-7") == frozenset()  # a book's, as printed
    assert PHONE_AND_CARD.scan("ISBN 9780306406157") == frozenset()
    assert PHONE_AND_CARD.scan("ISBN 978-0-306-40615-8") == {"pii:phone"}  # its check digit wrong: no ISBN
    assert PHONE_AND_CARD.scan("call +9780306406157") == {"pii:phone"}  # after a `+`
