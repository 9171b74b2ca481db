"""An HTTP field whose bytes are not UTF-8 reaches MLServer's model as their Latin-1 decoding: Starlette's
`request.headers`, which MLServer hands the runtime (`payload.parameters.headers`). The proxy read such bytes as U+FFFD
alone (and labelled the call `scan:truncated`), so `X-Note: call 555\\xa0123\\xa04567` (a phone written with no-break
spaces, as the detectors read one in any text) reached the real MLServer's runtime for a purpose the zone of phones
forbids, recorded `scan:truncated` only. The value is now read also as that Latin-1 text, a line of its own beside it,
and so is any value that is not ASCII: one that is UTF-8 too reaches the model so as well (`call 555ಲ123 4567` as
`call 555à²²123 4567`, a phone to the detectors, where its UTF-8 reading holds none)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.ingress.http import _oip_header_text
from proxy.protocols.oip import header_labels
from tests.harness import ProxyHandle, proxy_error
from tests.servers.real import mlserver_echo, mlserver_runtime
from tests.test_oip_request_id_reaches_model import CONFIG as ADDRESSES_CONFIG

PHONE = b"call 555\xa0123\xa04567"  # no-break spaces, one byte each in Latin-1: no UTF-8
CONFIG = ADDRESSES_CONFIG.replace('labels: ["pii:email"]', 'labels: ["pii:phone"]').replace(
    "detectors: [email]", "detectors: [phone]"
)
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
PHONES = Detectors([DetectorSpec("phone")])
ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    echo = mlserver_echo("payload.parameters.headers.get('x-note')")
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo-latin1"), echo) as addresses:
        yield addresses


@pytest.mark.realserver
def test_a_phone_in_a_latin1_field_is_refused_before_the_real_mlserver(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=BODY, headers=[(b"x-note", PHONE)], timeout=60)
    assert direct.json()["outputs"][0]["data"][0] == '"call 555\\u00a0123\\u00a04567"'  # the runtime gets it so
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=BODY, headers=[(b"x-note", PHONE), (b"x-purpose", b"ads")], timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    assert "pii:phone" in proxy_error(refused)["message"]
    other = httpx.post(url, json=BODY, headers=[(b"x-note", b"caf\xe9 555"), (b"x-purpose", b"ads")], timeout=60)
    assert other.status_code == 200 and other.headers["x-data-labels"] == "scan:truncated", other.headers


def test_a_field_that_is_not_utf8_is_read_also_as_latin1() -> None:
    text = _oip_header_text([(b"X-Note", PHONE)])
    assert text is not None and text.endswith("\nx-note: call 555\xa0123\xa04567")
    assert header_labels(PHONES, text) == frozenset({"pii:phone", "scan:truncated"})


def test_an_ascii_field_is_read_once() -> None:
    assert _oip_header_text([(b"x-note", b"call 555 123 4567")]) == "x-note: call 555 123 4567"


# UTF-8 values the detectors find nothing in, whose bytes read as Latin-1, as MLServer hands them its model, hold a
# value: `×` (`\xc3\x97`) is `Ã` and a control character there; `ಲ` (`\xe0\xb2\xb2`) is `à²²`, two superscript twos
UTF8_HIDING = {"alice×@example.com": "pii:email", "call 555ಲ123 4567": "pii:phone"}


@pytest.mark.parametrize("value", list(UTF8_HIDING))
def test_a_utf8_field_that_is_not_ascii_is_read_also_as_latin1(value: str) -> None:
    """Before: read as UTF-8 alone, which holds no value, so the call went on unlabelled (and with no
    `scan:truncated`: the bytes are UTF-8)."""
    raw = value.encode()
    assert ALL.scan_all([value]) == frozenset()  # (what the proxy read before)
    text = _oip_header_text([(b"X-Note", raw)])
    assert text == f"x-note: {value}\nx-note: {raw.decode('latin-1')}"
    assert header_labels(ALL, text) == frozenset({UTF8_HIDING[value]})


@pytest.mark.realserver
def test_a_phone_in_a_utf8_fields_latin1_reading_is_refused_before_the_real_mlserver(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    raw = "call 555ಲ123 4567".encode()
    direct = httpx.post(f"{rest}/v2/models/echo/infer", json=BODY, headers=[(b"x-note", raw)], timeout=60)
    assert direct.json()["outputs"][0]["data"][0] == '"call 555\\u00e0\\u00b2\\u00b2123 4567"'  # as Latin-1
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    refused = httpx.post(url, json=BODY, headers=[(b"x-note", raw), (b"x-purpose", b"ads")], timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    assert "pii:phone" in proxy_error(refused)["message"]
    plain = httpx.post(url, json=BODY, headers=[(b"x-note", "café".encode()), (b"x-purpose", b"ads")], timeout=60)
    assert plain.status_code == 200 and plain.headers["x-data-labels"] == "", (
        plain.headers
    )  # no label, no `scan:truncated`


def test_a_field_its_connection_names_is_not_read_in_either_reading() -> None:
    assert _oip_header_text([(b"x-note", PHONE), (b"connection", b"x-note")]) is None
