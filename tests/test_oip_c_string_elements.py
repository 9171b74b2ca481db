"""A BYTES element holding a NUL is read as a C string is too (0da842a read it as Latin-1, and in UTF-16/32 to its
last whole unit, only where the whole reading held no control character but NULs at its end): one byte after the NUL
(`jörg@exämple.de\\0\\1`, `...\\0x`), or a lone surrogate after a UTF-16 string's NUL, made the reading none, and the
address a model reading the element as a C string reads reached it over gRPC unlabelled. Each reading is now taken to
its first NUL, where that holds no control character."""

from __future__ import annotations

import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.protocols.oip import not_utf8_element
from tests.test_oip_latin1_elements import ADDRESS, LATIN1, ZONED, _element

ENDED = (
    LATIN1 + b"\x00\x01",
    LATIN1 + b"\x00x",
    b"write to " + LATIN1 + b"\x00\x00\x7f\x02\x03",
    ADDRESS.encode("utf-16-le") + b"\x00\x00\x01\x00",
    ADDRESS.encode("utf-16-le") + b"\x00\x00\x00\xd8",  # (a lone surrogate after the NUL: no UTF-16 text whole)
    ADDRESS.encode("utf-32-be") + b"\x00\x00\x00\x00\x00\x00\x00\x01",
)


def test_an_address_before_a_c_strings_nul_is_read_whatever_follows() -> None:
    for element in ENDED:
        beside: list[str] = []
        not_utf8_element(element, [], beside)
        assert any(ADDRESS in text for text in beside), (element, beside)
    beside = []  # binary data's reading before its NUL holds controls: not taken
    not_utf8_element(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + LATIN1, [], beside)
    assert not any(ADDRESS in text for text in beside), beside


def test_an_address_before_a_c_strings_nul_is_refused_before_the_model(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    proxy = make_proxy(ZONED, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    client = triton.InferenceServerClient(proxy.grpc)
    for value in ENDED:
        with pytest.raises(InferenceServerException) as caught:
            client.infer("echo", _element(value), headers={"x-purpose": "ads"})
        assert caught.value.status() == "StatusCode.PERMISSION_DENIED", (value, caught.value)
        assert "pii:email" in (caught.value.message() or "")
    assert log.read_text() == ""  # nothing reached the model
