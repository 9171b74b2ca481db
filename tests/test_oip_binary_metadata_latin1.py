"""A gRPC binary metadata value (`x-note-bin`) whose bytes are not UTF-8 reaches MLServer's model as those bytes
(`mlserver.grpc.utils.to_headers`), which a model decodes as it likes; the common way for bytes that are not UTF-8 is
Latin-1 (or Windows-1252, whose letters are Latin-1's). The proxy read them as UTF-8 alone, each bad byte U+FFFD, and
labelled the call `scan:truncated` only: `call 555\\xa0123\\xa04567` (a phone written with no-break spaces, one byte
each in Latin-1) reached the real MLServer's runtime for a purpose the zone of phones forbids. It is now read also as
Latin-1, a line of its own beside it, as a BYTES tensor element that is not UTF-8 is (`oip.not_utf8_element`) and an
HTTP field is (MLServer hands its model an HTTP field's value decoded as Latin-1); `scan:truncated` stays (EBCDIC, and
other charsets, stay unread). A binary value that is UTF-8 is read as before, once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import grpc
import httpx
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.protocols.oip import KEY_BIN, binary_text, header_labels, header_text, named_fields, passed_key_text
from tests.harness import ProxyHandle
from tests.test_oip_binary_metadata_unread import ADS, UNREAD
from tests.test_oip_client_address_and_binary_key import echo_mlserver, grpc_handed

__all__ = ["echo_mlserver"]  # (the fixture, shared)

PHONE = b"call 555\xa0123\xa04567"  # no-break spaces, one byte each in Latin-1: no UTF-8
PHONES = Detectors((DetectorSpec("phone"),), 100_000)
EMAILS = Detectors((DetectorSpec("email"),), 100_000)
# the zones of `UNREAD` but the one over what the detectors could not read: a call labelled `scan:truncated` only goes on
PHONE_ZONE = UNREAD.replace('  - {name: unread, labels: ["scan:truncated"], allow_purposes: [care]}\n', "")


@pytest.mark.realserver
@pytest.mark.parametrize("key", ["x-note-bin", "authorization-bin"])  # (the caller's key: passed on, no caller has one)
def test_a_phone_in_latin1_binary_metadata_is_refused_before_the_real_mlserver(
    key: str, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    assert PHONE_ZONE != UNREAD
    code, direct = grpc_handed(echo_mlserver[1], [(key, PHONE)])
    assert code == grpc.StatusCode.OK and direct[key] == "bytes:" + PHONE.decode("latin-1")  # the model's bytes
    proxy = make_proxy(PHONE_ZONE, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    code, handed = grpc_handed(proxy.grpc, [(key, PHONE), *ADS])
    assert code == grpc.StatusCode.PERMISSION_DENIED, handed  # (before: OK, the phone handed to the model)
    code, handed = grpc_handed(proxy.grpc, [(key, b"caf\xe9 555"), *ADS])  # no value in either reading
    assert code == grpc.StatusCode.OK and handed[key] == "bytes:caf\xe9 555", handed


def test_binary_metadata_not_utf8_is_read_also_as_latin1() -> None:
    text = header_text([("x-note-bin", PHONE), ("x-a", "b")])
    assert text is not None and "\nx-note-bin: call 555\xa0123\xa04567\n" in text
    assert header_labels(PHONES, text) == {"pii:phone", TRUNCATED}  # (before: `scan:truncated` alone)
    # the Latin-1 line is the field's, named as it is: a Triton's forward pattern keeps or drops both readings
    assert named_fields(text, re.compile("x-note")) == text.rpartition("\n")[0]
    assert named_fields(text, re.compile("^x-a$")) == "x-a: b"
    # a line break in its bytes is read as a space in this reading too: one field a line
    broken = header_text([("x-note-bin", b"\xff\nuser-agent: App/415.555.2671")])
    assert broken is not None and header_labels(PHONES, broken) == {"pii:phone", TRUNCATED}


def test_binary_metadata_in_utf8_is_read_once() -> None:
    assert header_text([("x-note-bin", "café ☕".encode())]) == "x-note-bin: café ☕"
    assert header_text([("x-note-bin", b"call 555 123 4567")]) == "x-note-bin: call 555 123 4567"


def test_a_passed_on_key_not_utf8_is_read_also_as_latin1() -> None:
    text = passed_key_text(None, binary_text(b"Bearer " + PHONE), KEY_BIN)
    assert text is not None and text.endswith("\nauthorization-bin: Bearer call 555\xa0123\xa04567")
    assert header_labels(PHONES, text) == {"pii:phone", TRUNCATED}
    assert passed_key_text("x-a: b", "Bearer café", KEY_BIN, False) == "x-a: b\nauthorization-bin: Bearer café"  # once
    # an HTTP field (`field`, the default) is handed to MLServer's model decoded as Latin-1 whatever its bytes, as the
    # other fields are read (`http._oip_header_text`): UTF-8 that is not ASCII is read so too
    assert passed_key_text(None, "Bearer café") == "authorization: Bearer café\nauthorization: Bearer cafÃ©"


@pytest.mark.realserver
def test_a_phone_in_a_latin1_authorization_field_is_refused_before_the_real_mlserver(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Over HTTP the caller's `Authorization`, passed on where no caller has a key, is handed to MLServer's model
    decoded as Latin-1 as any field is, and was read as U+FFFD alone (`passed_key_text`; the other fields are read
    by `http._oip_header_text`, which read them so already)."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    fields = [(b"authorization", b"Bearer " + PHONE), *((k.encode(), v.encode()) for k, v in ADS)]
    direct = httpx.post(f"{echo_mlserver[0]}/v2/models/echo/infer", json=body, headers=fields[:1], timeout=60)
    handed = json.loads(direct.json()["outputs"][0]["data"][0])["authorization"]
    assert handed == "Bearer " + PHONE.decode("latin-1")  # the model's text
    proxy = make_proxy(PHONE_ZONE, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    refused = httpx.post(f"{proxy.url}/v2/models/echo/infer", json=body, headers=fields, timeout=60)
    assert refused.status_code == 403 and "pii:phone" in refused.text, refused.text  # (before: 200)


@pytest.mark.realserver
@pytest.mark.parametrize("name", [b"authorization", b"authorization-bin"])
def test_an_address_in_a_utf8_authorization_field_read_as_latin1_is_refused_before_the_real_mlserver(
    name: bytes, echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """MLServer hands its model an HTTP field decoded as Latin-1 whatever its bytes: `alice×@example.com` in UTF-8
    holds no address, its Latin-1 reading, `aliceÃ\x97@example.com`, does. The other fields are read so
    (`http._oip_header_text`); the caller's key passed on was read so only where its bytes were not UTF-8
    (before: 200, the address handed to the model for a purpose the zone forbids)."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    key = "Bearer alice×@example.com".encode()
    direct = httpx.post(f"{echo_mlserver[0]}/v2/models/echo/infer", json=body, headers=[(name, key)], timeout=60)
    handed = json.loads(direct.json()["outputs"][0]["data"][0])[name.decode()]
    assert handed == key.decode("latin-1") and header_labels(EMAILS, handed) == {"pii:email"}  # the model's text
    proxy = make_proxy(PHONE_ZONE, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    fields = [(name, key), *((k.encode(), v.encode()) for k, v in ADS)]
    refused = httpx.post(f"{proxy.url}/v2/models/echo/infer", json=body, headers=fields, timeout=60)
    assert refused.status_code == 403 and "pii:email" in refused.text, refused.text
    code, _ = grpc_handed(proxy.grpc, [("authorization-bin", key), *ADS])  # gRPC: its bytes, UTF-8, read once
    assert code == grpc.StatusCode.OK
