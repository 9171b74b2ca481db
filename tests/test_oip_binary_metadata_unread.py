"""gRPC binary metadata whose bytes are not UTF-8. MLServer hands its model every metadata entry of a gRPC call, a
binary one (`x-note-bin`, `authorization-bin` where passed on) as its bytes, which the model may decode as it likes
(`alice@example.com` in EBCDIC, cp500). The proxy read such bytes as UTF-8 with each bad byte replaced, and said nothing of
what it could not read: the call went on as if the detectors had read all the model got. Such a call is now labelled
`scan:truncated`, as a body in a charset the proxy cannot decode is (`oip.binary_text`); valid UTF-8 is read as before."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import httpx
import pytest

from tests.harness import ProxyHandle
from tests.test_oip_client_address_and_binary_key import ADDRESS, BODY, CONFIG, echo_mlserver, grpc_handed

__all__ = ["echo_mlserver"]  # (the fixture, shared)

# the zones of `CONFIG`, and one over what the detectors could not read
UNREAD = CONFIG.replace("CALLERS", "[]").replace(
    "zones:\n", 'zones:\n  - {name: unread, labels: ["scan:truncated"], allow_purposes: [care]}\n'
)
ADS = [("x-purpose", "ads"), ("x-data-labels", "public")]  # a purpose both zones forbid, the data said public
# an address as a mainframe's client writes it (EBCDIC), which the model may decode so: b"\x81\x93\x89...", not UTF-8.
# (In UTF-16, `a\x00l\x00...`, the detectors read it: they read text without its control characters)
IN_EBCDIC = ADDRESS.encode("cp500")


@pytest.fixture
def proxy(echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(UNREAD, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])


@pytest.mark.realserver
@pytest.mark.parametrize("key", ["x-note-bin", "authorization-bin"])
def test_binary_metadata_not_utf8_is_scan_truncated(
    key: str, echo_mlserver: tuple[str, str], proxy: ProxyHandle
) -> None:
    code, direct = grpc_handed(echo_mlserver[1], [(key, IN_EBCDIC)])
    assert code == grpc.StatusCode.OK and direct[key] == "bytes:" + IN_EBCDIC.decode("latin-1")  # the model's bytes
    code, _ = grpc_handed(proxy.grpc, [(key, IN_EBCDIC), *ADS])
    assert code == grpc.StatusCode.PERMISSION_DENIED  # (it went to the model: OK)
    code, handed = grpc_handed(proxy.grpc, [(key, IN_EBCDIC)])  # for the purpose the zones allow: as it came
    assert code == grpc.StatusCode.OK and handed[key] == direct[key], handed


def rest_note(url: str, note: bytes, *more: tuple[str, str]) -> tuple[int, str]:
    """A REST inference call's status with `X-Note: <note>` (its bytes as they are), and the field its model was
    handed ('' when refused)."""
    fields = [(b"x-note", note), *((name.encode(), value.encode()) for name, value in more)]
    reply = httpx.post(f"{url}/v2/models/echo/infer", json=BODY, headers=fields, timeout=60)
    if reply.status_code != 200:
        return reply.status_code, ""
    return 200, json.loads(reply.json()["outputs"][0]["data"][0])["x-note"]


@pytest.mark.realserver
def test_an_http_field_not_utf8_is_scan_truncated(echo_mlserver: tuple[str, str], proxy: ProxyHandle) -> None:
    """Over HTTP too: MLServer hands its model a field's value decoded as Latin-1, which gives its bytes back (an
    address in EBCDIC). Read as UTF-8 with each bad byte replaced, the call went on unlabelled, as a gRPC one did."""
    status, direct = rest_note(echo_mlserver[0], IN_EBCDIC)
    assert status == 200 and direct.encode("latin-1") == IN_EBCDIC  # the model's bytes
    assert rest_note(proxy.url, IN_EBCDIC, *ADS)[0] == 403  # (it went to the model: 200)
    assert rest_note(proxy.url, IN_EBCDIC) == (200, direct)  # for the purpose the zones allow: as it came
    assert rest_note(proxy.url, "café ☕".encode(), *ADS)[0] == 200  # not ASCII, all read: no label


@pytest.mark.realserver
@pytest.mark.parametrize("key", ["x-note-bin", "authorization-bin"])
def test_binary_metadata_in_utf8_is_read(key: str, proxy: ProxyHandle) -> None:
    code, _ = grpc_handed(proxy.grpc, [(key, f"Bearer {ADDRESS}".encode()), *ADS])
    assert code == grpc.StatusCode.PERMISSION_DENIED  # an address in it is found (`personal`), as before
    code, handed = grpc_handed(proxy.grpc, [(key, "Bearer café ☕".encode()), *ADS])  # not ASCII, all read: no label
    assert code == grpc.StatusCode.OK and handed[key] == "bytes:" + "Bearer café ☕".encode().decode("latin-1"), handed


def test_binary_text_keeps_what_is_not_utf8_for_the_label() -> None:
    from proxy.config import DetectorSpec
    from proxy.detectors import TRUNCATED, Detectors
    from proxy.protocols.oip import binary_text, header_labels, header_text

    detectors = Detectors((DetectorSpec("email"),), 100_000)
    text = header_text([("x-note-bin", b"\xffbob@example.org"), ("x-a", "b")])
    assert text is not None and binary_text(b"\xff") in text
    assert header_labels(detectors, text) == {"pii:email", TRUNCATED}  # what could be read is read all the same
    assert header_labels(detectors, header_text([("x-note-bin", "é ☕".encode())]) or "") == frozenset()


def test_a_line_break_in_binary_metadata_starts_no_field() -> None:
    """A binary value's bytes may hold a line break, which the detectors' text (a field a line) took for the start of
    another field: `user-agent: App/...` there had its product version read as one, and a phone number written so
    reached MLServer's model unlabelled. It is read as a space: the value is one field, read as any other."""
    from proxy.config import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.protocols.oip import header_labels, header_text

    phone = Detectors((DetectorSpec("phone"),), 100_000)
    text = header_text([("x-note-bin", b"a\nuser-agent: App/415.555.2671")])
    assert text is not None and header_labels(phone, text) == {"pii:phone"}
    assert header_labels(phone, "user-agent: App/415.555.2671") == frozenset()  # (a User-Agent's own: a version)
