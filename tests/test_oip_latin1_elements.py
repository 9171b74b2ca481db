"""An OIP BYTES element reaches the model as bytes, which it may decode in another charset: an address with letters
that are not ASCII written in Latin-1 (or Windows-1252, whose letters are Latin-1's), UTF-16 or UTF-32 was read as
UTF-8 with U+FFFD for them, no address, and `jörg@exämple.de` reached the model over gRPC for a purpose its zone
forbids. An element that is not UTF-8 is now read as Latin-1 too, or, holding a NUL, in UTF-16's and UTF-32's byte
orders it is text in (binary data, an image, is text in none)."""

from __future__ import annotations

import base64
import random

import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols.kserve import read_request
from proxy.protocols.oip import BYTES_SCANNED, not_utf8_element, read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.protocols.test_oip_grpc import infer_request, raw_bytes
from tests.test_oip_sequences import CONFIG

ADDRESS = "jörg@exämple.de"
LATIN1 = ADDRESS.encode("latin-1")
# the zone of the sequences' tests, holding addresses too
ZONED = CONFIG.replace("labels: [health]", 'labels: [health, "pii:email"]') + "detectors: [email]\n"


def _element(value: bytes) -> list[triton.InferInput]:
    tensor = triton.InferInput("TEXT", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value], dtype=np.object_))
    return [tensor]


def test_a_latin1_address_in_an_element_is_refused_before_the_model(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    proxy = make_proxy(ZONED, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    client = triton.InferenceServerClient(proxy.grpc)
    wide = [ADDRESS.encode(codec) for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be")]
    for value in (
        LATIN1,
        LATIN1 + b"\x00",  # (a C string's NUL after it: read in UTF-16's orders alone, before 2026-12-05 let through)
        ADDRESS.encode("utf-16-le") + b"\xff",  # (one odd byte: text in no wide codec whole, before let through)
        ADDRESS.encode("cp1252"),
        b"Gr\xfc\xdfe an " + LATIN1,
        *wide,
        "用户@例子.中国".encode("utf-16"),
    ):
        with pytest.raises(InferenceServerException) as caught:
            client.infer("echo", _element(value), headers={"x-purpose": "ads"})
        assert caught.value.status() == "StatusCode.PERMISSION_DENIED", caught.value
        assert "pii:email" in (caught.value.message() or "")
    assert log.read_text() == ""  # nothing reached the model
    allowed = client.infer("echo", _element(LATIN1), headers={"x-purpose": "care"})
    assert allowed.as_numpy("TEXT").tolist() == [LATIN1]  # the model gets the bytes as sent
    plain = client.infer("echo", _element("Grüße".encode("latin-1")), headers={"x-purpose": "ads"})
    assert plain.as_numpy("TEXT").tolist() == ["Grüße".encode("latin-1")]  # text holding no address goes through


def test_an_element_that_is_not_utf8_is_read_as_latin1_too() -> None:
    request = infer_request(model_name="echo")
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(LATIN1)
    assert read_infer_request(request.SerializeToString()).decoded == (ADDRESS,)  # (read beside the texts)
    request = infer_request(model_name="echo")
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[2])
    request.raw_input_contents.append(raw_bytes(b"plain", LATIN1))
    read = read_infer_request(request.SerializeToString())
    assert (read.texts, read.decoded) == (("plain", "j\ufffdrg@ex\ufffdmple.de"), (ADDRESS,))
    # REST's binary tensor data, the same elements
    head = orjson.dumps({"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(LATIN1) + 4}}]})  # fmt: skip
    rest = read_rest_request("echo", None, head + raw_bytes(LATIN1), str(len(head)))
    assert ADDRESS in rest.decoded


def test_an_element_in_utf16_or_utf32_is_read_so_too() -> None:
    for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        request = infer_request(model_name="echo")
        request.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
            ADDRESS.encode(codec)
        )
        assert ADDRESS in read_infer_request(request.SerializeToString()).decoded, codec


def test_binary_and_utf8_elements_are_read_once() -> None:
    image = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(7).randbytes(4096)  # text in no charset
    request = infer_request(model_name="echo")
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend([image, ADDRESS.encode()])
    assert read_infer_request(request.SerializeToString()).texts == (image.decode("utf-8", "replace"), ADDRESS)


def test_an_element_with_a_nul_is_read_as_latin1_or_to_its_last_whole_unit_too() -> None:
    """An element holding a NUL was read in UTF-16's and UTF-32's orders alone: Latin-1 text ended by a C string's NUL
    (`jörg@exämple.de\\0`, CJK in UTF-16, no address) and UTF-16 text with one odd byte after it (no UTF-16 reading:
    truncated data) were read as nothing but U+FFFD. Now read as Latin-1 too where that reading holds no control
    character (but NULs at its end), and in the wide codecs to their last whole unit."""
    for element in (LATIN1 + b"\x00", LATIN1 + b"\x00\x00\x00", ADDRESS.encode("utf-16-le") + b"\xff",
                    ADDRESS.encode("utf-16-be") + b"\x00", ADDRESS.encode("utf-32-le") + b"\x00\x00"):  # fmt: skip
        out: list[str] = []
        beside: list[str] = []
        not_utf8_element(element, out, beside)
        assert any(ADDRESS in text for text in beside), (element, beside)
    # Latin-1 text with a NUL among its letters is read as a C string, to the NUL (`jörg`, since 2026-12-05): no address
    beside = []
    not_utf8_element(b"j\xf6rg\x00@ex\xe4mple.de\x01", [], beside)
    assert not any(ADDRESS in text for text in beside) and "j\xf6rg" in beside, beside


def _quiet_audio() -> bytes:
    """Half a second of quiet 16-bit PCM, a 200 Hz tone under noise: binary data with NULs that is UTF-16 without
    errors (no sample falls among the surrogates), as which its samples near 64 read as `@` and those near 0x660,
    0xff10 as Arabic-Indic and fullwidth digits, an address here."""
    rng = np.random.default_rng(198)
    noise = rng.normal(0, 30, 16000)
    tone = 400 * np.sin(np.arange(16000) * 2 * np.pi * 200 / 16000) * rng.random()
    return (noise + tone).astype("<i2")[12288:].tobytes()


def _string_table() -> bytes:
    """A string table's lengths and offsets (uint32), as a `.mo` file's: read as UTF-16, each offset near 0x2470 an
    enclosed number (`⑲`, NFKC's `(19)`), a phone number here. 18 of 38,980 files holding NULs under /usr/share and
    site-packages (`.mo` catalogs) gained `pii:phone` so."""
    rng = np.random.default_rng(183)
    offsets = 9000 + np.cumsum(rng.integers(2, 30, 64))
    return np.stack([rng.integers(2, 30, 64), offsets], 1).astype("<u4").tobytes()


def test_binary_elements_read_as_utf16_gain_no_labels() -> None:
    """Binary data holding NULs is UTF-16 or UTF-32 without errors often enough (any 16-bit samples away from the
    surrogates), and read so has control characters (its small numbers), which text in them has none of: such a
    reading is not taken, and the data gained `pii:` labels that refused ordinary calls."""
    detectors = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])
    # (odd lengths too: read to their last whole unit, since 2026-12-05, and as Latin-1, each with control characters)
    for binary in (_quiet_audio(), _string_table(), _quiet_audio() + b"\x00", _string_table()[:-1]):
        request = infer_request(model_name="echo")
        request.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(binary)
        read = read_infer_request(request.SerializeToString())
        texts = read.texts + read.decoded
        assert detectors.scan_all(texts) == detectors.scan_all((binary.decode("utf-8", "replace"),)) == frozenset()
    # text in UTF-16 ended by a NUL (a C string's) is still read so
    out: list[str] = []
    beside: list[str] = []
    not_utf8_element((ADDRESS + "\x00").encode("utf-16-le"), out, beside)
    assert ADDRESS in beside  # (to its NUL, as a C string is read)


def test_quiet_audio_goes_through(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    proxy = make_proxy(ZONED, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    client = triton.InferenceServerClient(proxy.grpc)
    audio = _quiet_audio()
    reply = client.infer("echo", _element(audio), headers={"x-purpose": "ads"})  # was PERMISSION_DENIED, pii:email
    assert reply.as_numpy("TEXT").tolist() == [audio.rstrip(b"\x00")]  # (numpy's bytes drop their trailing NULs)


def test_an_element_is_read_again_up_to_its_first_mib() -> None:
    """A gRPC `bytes_contents` element is read up to its first MiB, replaced and in its other readings, as a raw
    tensor's elements are (`BYTES_SCANNED`), the rest `scan:truncated`: a 64 MB element that is not UTF-8 was read two
    or three times more whole, 0.8 -> 2.5 s and 64 -> 224 MB more held for one with NULs; and, until 2026-12-05,
    replaced whole (336 MB held at once)."""
    for element in (b"a" * (3 << 20) + b"\xff", b"A\x00" * (3 << 19) + b"\xff\x00"):
        request = infer_request(model_name="echo")
        request.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(element)
        read = read_infer_request(request.SerializeToString())
        assert len(read.texts) == 1 and len(read.texts[0]) <= BYTES_SCANNED and read.unscanned  # (whole before)
        assert read.decoded
        assert all(len(text) <= BYTES_SCANNED for text in read.decoded)


def test_a_base64_element_decoding_to_latin1_is_read_as_latin1_too() -> None:
    """MLServer's base64 codec hands the model an element declared `content_type: base64` as the bytes it decodes to,
    as a BYTES element sent so: bytes that are not UTF-8 were read replaced only (`unbase64`), and `jörg@exämple.de`
    in Latin-1 (or UTF-16) so sent reached the model, over REST's JSON and over gRPC."""
    for raw in (LATIN1, ADDRESS.encode("utf-16")):
        encoded = base64.b64encode(raw).decode()
        head = orjson.dumps({"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": [encoded],
                                         "parameters": {"content_type": "base64"}}]})  # fmt: skip
        assert ADDRESS in read_rest_request("echo", None, head, None).decoded
        request = infer_request(model_name="echo")
        tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
        tensor.parameters["content_type"].string_param = "base64"
        tensor.contents.bytes_contents.append(encoded.encode())
        assert ADDRESS in read_infer_request(request.SerializeToString()).decoded


def test_a_base64_value_read_decoded_as_text_is_read_as_latin1_too() -> None:
    """A base64 value read decoded because it is text (`add_decoded_texts`: UTF-8 but for at most one character in 8):
    a KServe V1 instance's `b64`, an OIP element MLServer's codec would decode. One that is not UTF-8 was read
    replaced only: `write to jörg@exämple.de` in Latin-1 had no address, as a BYTES element so sent had."""
    for raw in (b"write to " + LATIN1, ("write to " + ADDRESS).encode("utf-16-le")):
        encoded = base64.b64encode(raw).decode()
        body = orjson.dumps({"instances": [{"b64": encoded}]})
        assert "write to " + ADDRESS in read_request("echo", "predict", body, "application/json").decoded
        head = orjson.dumps({"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": [encoded]}]})
        assert "write to " + ADDRESS in read_rest_request("echo", None, head, None).decoded
