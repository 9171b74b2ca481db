"""A KServe V1 body KServe's model server hands its model as raw bytes, whose `Content-Type` names a `charset` other
than UTF-8's: a model decodes it so (`text/plain; charset=utf-16`, `latin-1`, `shift_jis`). The proxy read it as UTF-8
all the same and labelled it `scan:truncated`: UTF-16's `é` read as UTF-8 is no letter, so `andré@example.com` was no
address to the detectors, and with a zone forbidding `pii:email` for the purpose the call reached the model (only
labelled). Now it is read in the charset it names, when Python has a codec for it: the text the model decodes."""

from __future__ import annotations

import codecs
import encodings
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from proxy.protocols import bytes_digest, charsets
from proxy.protocols.kserve import read_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_kserve_v1 import CONFIG, seen
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.real import kserve_model_server

ADDRESS = "andré@example.com"
FULLWIDTH = (
    "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"  # (an address to a model, and to the detectors, which read it in NFKC form)
)
# a custom KServe model that decodes the raw bytes it is handed by the charset their `Content-Type` names (UTF-8 for
# none), and writes down what it read (one JSON line a call)
DECODING = """
import codecs, json, sys
import kserve

MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)


class Decoding(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, bytes):
            fields = {name.lower(): value for name, value in (headers or {}).items()}
            charset = "utf-8"
            for parameter in fields.get("content-type", "").split(";")[1:]:
                name, _, value = parameter.partition("=")
                if name.strip().lower() == "charset":
                    charset = value.strip().strip('"')
            # RFC 2781 (Java, ICU, Go's x/text): UTF-16 or UTF-32 without a byte-order mark is big-endian
            if charset.lower().replace("-", "") in ("utf16", "utf32") and not payload.startswith(MARKS):
                charset += "-be"
            payload = payload.decode(charset, "replace")
        with open("seen.jsonl", "a") as log:
            log.write(json.dumps(payload) + "\\n")
        return {"predictions": [payload]}


if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Decoding("echo")])
"""


@pytest.fixture(scope="module")
def kserve_decoding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("kserve-charset")
    with kserve_model_server(workdir, DECODING, "echo") as url:
        yield url, workdir / "seen.jsonl"


CASES = [
    ("text/plain; charset=utf-16", f"write to {ADDRESS} today", "utf-16"),
    ("text/plain; charset=ISO-8859-1", f"write to {ADDRESS} today", "latin-1"),
    ("text/csv; charset=windows-1252", f"name,address\nAndré,{ADDRESS}\n", "cp1252"),
    ("text/plain; charset=Shift_JIS", f"write to {FULLWIDTH} today", "shift_jis"),
    ("application/json; charset=utf-16", f"write to {ADDRESS} today", "utf-16"),  # (no JSON: raw bytes too)
    # without a byte-order mark, big-endian to the model (RFC 2781), little-endian to Python: read both ways
    ("text/plain; charset=utf-16", f"write to {ADDRESS} today", "utf-16-be"),
    ("text/plain; charset=UTF-32", f"write to {ADDRESS} today", "utf-32-be"),
    ("application/json; charset=utf-16", f'{{"instances": ["{ADDRESS}"]}}', "utf-16-be"),
]


@pytest.mark.realserver
@pytest.mark.parametrize(("content_type", "text", "codec"), CASES, ids=[f"{case[0]}-{case[2]}" for case in CASES])
def test_an_address_in_a_text_of_another_charset_is_refused_where_its_zone_forbids_it(
    kserve_decoding: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], content_type: str, text: str, codec: str
) -> None:
    url, log = kserve_decoding
    body = text.encode(codec)
    headers = {"content-type": content_type}
    direct = httpx.post(f"{url}/v1/models/echo:predict", content=body, headers=headers, timeout=60)
    assert direct.status_code == 200 and seen(log)[-1] == text, direct.text  # the model decoded it by its charset
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="forward")
    before = len(seen(log))
    refused = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=body,
                         headers={**headers, "x-purpose": "ads"}, timeout=60)  # fmt: skip
    # before: 200, the address reaching the model, the call labelled `scan:truncated` alone
    assert refused.status_code == 403, refused.text
    error = proxy_error(refused)
    assert error["code"] == "purpose_denied" and "pii:email" in error["message"], error
    assert len(seen(log)) == before
    allowed = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=body, headers=headers, timeout=60)
    assert allowed.status_code == 200, allowed.text
    labels = allowed.headers["x-data-labels"].split(",")
    assert "pii:email" in labels and "scan:truncated" not in labels, labels
    assert seen(log)[-1] == text


def test_a_text_is_read_in_the_charset_its_type_names() -> None:
    """Decoded by Python's codec for the charset (any name `codecs.lookup` knows), the digest that of the bytes; bytes
    that are not text in it read as U+FFFD and the call labelled `scan:truncated`, as is a text in a charset Python
    has no codec for (read as UTF-8), or a slow one (`punycode`), or under two charsets that differ."""
    for content_type, codec in (("text/plain; charset=utf-16le", "utf-16-le"), ('text/plain;charset="UTF-16LE"',
                                "utf-16-le"), ("text/plain; charset=latin1", "latin-1"),
                                ("text/plain; charset=utf-32", "utf-32"), ("text/plain; charset=EUC-JP", "euc-jp"),
                                ("application/json; charset=utf-16le", "utf-16-le")):  # fmt: skip
        body = ADDRESS.encode(codec)
        read = read_request("m", "predict", body, content_type, {}.get)
        assert read.texts == (ADDRESS,) and not read.unscanned, content_type
        assert not read.opaque and read.digest == bytes_digest(body), content_type
    broken = read_request("m", "predict", ADDRESS.encode("utf-16-le") + b"\x00", "text/plain; charset=utf-16le", {}.get)
    assert broken.texts == (ADDRESS + "\ufffd",) and broken.unscanned
    for content_type in ("text/plain; charset=x-unknown", "text/plain; charset=punycode", "text/plain; charset=zlib",
                         "text/plain; charset=latin1; charset=utf-16"):  # fmt: skip
        read = read_request("m", "predict", ADDRESS.encode(), content_type, {}.get)
        assert read.texts == (ADDRESS,) and read.unscanned, content_type


def test_json_in_another_charset_is_read_as_the_model_decodes_it() -> None:
    """A JSON-typed body KServe hands over raw is read as the JSON it is in the charset its type names: a UTF-16
    body's strings with their escapes decoded (the digest the bytes'), and a body that is JSON in UTF-8 as well as in
    its charset, other text in each (`charset=utf-7`, where `+AEA-` is `@`), read both ways."""
    utf16 = '{"instances": ["alice\\u0040example.com"]}'.encode("utf-16")
    read = read_request("m", "predict", utf16, "application/json; charset=utf-16", {}.get)
    assert read.texts == ("alice@example.com",) and not read.unscanned and read.digest == bytes_digest(utf16)
    utf7 = read_request("m", "predict", b'{"instances": ["alice+AEA-example.com"]}', "application/json; charset=utf-7")
    assert utf7.texts == ("alice+AEA-example.com",) and "alice@example.com" in utf7.decoded
    plain = read_request("m", "predict", b'{"instances": ["alice@example.com"]}', "application/json; charset=latin-1")
    assert plain.texts == ("alice@example.com",) and plain.decoded == ()  # the same text either way: read once
    kserve_parses = read_request("m", "predict", b'{"instances": ["alice+AEA-example.com"]}', "application/json")
    assert kserve_parses.decoded == ()  # a type KServe parses: the model gets the JSON, whatever charset


@pytest.mark.parametrize(
    ("content_type", "codec", "unit"),
    [
        ("text/plain; charset=windows-1252", "cp1252", b"\x81"),
        ("text/plain; charset=utf-7", "utf-7", b"\x80"),
        ("text/plain; charset=utf-16le", "utf-16-le", b"\x00\xd8"),
        ("application/json; charset=utf-16le", "utf-16-le", b"\x00\xd8"),
    ],
)
def test_bytes_not_text_in_the_charset_are_replaced_up_to_a_bound(content_type: str, codec: str, unit: bytes) -> None:
    """Bytes that are no text in the charset read as U+FFFD, each a call of Python's error handler in these codecs:
    past 65,536 of them (`charsets.MOST_REPLACED`) the rest of the body is not read (the call `scan:truncated` already). Before, 16 MB
    of `\\x81` in windows-1252 (or `\\x80` in UTF-7, lone surrogates in UTF-16) held the event loop 7 s: here, the text
    read was as long as the body's bad bytes."""
    few = ADDRESS.encode(codec) + unit * 3 + ADDRESS.encode(codec)
    read = read_request("m", "predict", few, content_type, {}.get)
    assert read.texts == (ADDRESS + "\ufffd" * 3 + ADDRESS,) and read.unscanned  # (as "replace" reads them)
    body = ADDRESS.encode(codec) + unit * (65_536 * 4) + ADDRESS.encode(codec)
    read = read_request("m", "predict", body, content_type, {}.get)
    # before: ADDRESS, 262,144 U+FFFD and ADDRESS again
    assert read.texts == (ADDRESS + "\ufffd" * (65_536 + 1),), len(read.texts[0])
    assert read.unscanned and read.digest == bytes_digest(body)


def test_a_charset_python_does_not_know_is_not_kept_by_python() -> None:
    """`codecs.lookup` keeps each name it does not find for good (`encodings`' cache), after an import tried along
    `sys.path`: a caller naming a new charset each call took the proxy's memory without bound (20,000 calls with
    4 KB names: 76 MB). Only the names `encodings` has are looked up, in their normal form; one over 40 characters is
    none (read as UTF-8, `scan:truncated`)."""
    cache: dict[str, object] = encodings._cache  # type: ignore[attr-defined]
    before = len(cache)
    for number in range(300):  # (past the 256 `Content-Type`s `charsets.codec_of` keeps answers for)
        read = read_request("m", "predict", b"hi", f"text/plain; charset=x-{number}-{'a' * 1000}", {}.get)
        assert read.texts == ("hi",) and read.unscanned
    assert len(cache) == before  # before: 300 more
    for number in range(50):
        read = read_request("m", "predict", b"hi", f"text/plain; charset=UTF{'-' * number}8", {}.get)
        assert read.texts == ("hi",) and read.unscanned == (number > 36), number  # (UTF-8 in 40 characters or less)
    for content_type, codec in (("text/plain; charset=ISO_8859-1:1987", "latin-1"), ("text/plain; charset=csKOI8R",
                                "koi8-r"), ("text/plain; charset=ANSI_X3.4-1968", "ascii")):  # fmt: skip
        body = (ADDRESS if codec == "latin-1" else "andrey@example.com").encode(codec)
        read = read_request("m", "predict", body, content_type, {}.get)
        assert read.texts == (body.decode(codec),) and not read.unscanned, content_type


def test_utf8_then_another_charset_is_two_charsets_that_differ() -> None:
    """A type naming two charsets that differ is read as UTF-8 and labelled `scan:truncated` (a model may take either):
    UTF-8's (or ASCII's) first too. Before, `charset=utf-8; charset=utf-16` was read as UTF-16 alone, clean, where the
    UTF-8 text (to a model that takes the first) was an address: the call reached a model whose zone forbids it."""
    body = b"write to alice@example.com now!!"  # (an even length: no U+FFFD in UTF-16)
    for content_type in ("text/plain; charset=utf-8; charset=utf-16", "text/plain; charset=US-ASCII;charset=utf-16le",
                         "text/plain; charset=utf-16; charset=utf-8"):  # fmt: skip
        read = read_request("m", "predict", body, content_type, {}.get)
        assert read.texts == (body.decode(),) and read.unscanned, content_type  # before: the first two, CJK, clean
    read = read_request("m", "predict", body, "text/plain; charset=utf-8; charset=UTF8", {}.get)
    assert read.texts == (body.decode(),) and not read.unscanned  # (the same charset twice)


def test_json_under_a_charset_python_does_not_know_is_labelled_unscanned() -> None:
    """A JSON body KServe hands over raw, under a charset Python has no codec for (or two that differ), is read as
    the JSON it is in UTF-8 and labelled `scan:truncated`, as a text in such a charset is: the model may decode it
    into other text. Before, it was called clean. A binary CloudEvent's JSON KServe parses as UTF-8 itself."""
    body = b'{"instances": ["alice@example.com"]}'
    for content_type in ("application/json; charset=x-unknown", "application/json; charset=utf-8; charset=utf-16"):
        read = read_request("m", "predict", body, content_type, {}.get)
        assert read.texts == ("alice@example.com",) and read.unscanned, content_type  # before: not unscanned
    for content_type in ("application/json; charset=utf-8", "application/json; charset=latin-1"):
        read = read_request("m", "predict", body, content_type, {}.get)
        assert read.texts == ("alice@example.com",) and not read.unscanned, content_type
    event = {"ce-specversion": "1.0", "ce-source": "s", "ce-type": "t", "ce-id": "1"}.get
    read = read_request("m", "predict", body, "application/json; charset=x-unknown", event)
    assert read.texts == ("alice@example.com",) and not read.unscanned


@pytest.mark.parametrize(("content_type", "codec"), [("text/plain; charset=utf-16", "utf-16-be"),
                         ("text/plain; charset=utf-32", "utf-32-be"), ("application/json; charset=UTF-16",
                         "utf-16-be"), ("application/json; charset=utf-32", "utf-32-be")])  # fmt: skip
def test_utf16_without_a_byte_order_mark_is_read_in_both_byte_orders(content_type: str, codec: str) -> None:
    """UTF-16 (or UTF-32) without a byte-order mark is little-endian to Python's codec, big-endian to a model that
    follows RFC 2781 (Java, ICU, Go's x/text): read both ways, so a value either would read is found. Before, it was
    read little-endian alone: `write to alice@example.com` in big-endian was CJK to the proxy, clean (UTF-32's
    code points past U+10FFFF, U+FFFD), and the address reached a model whose zone forbids it."""
    text = "write to alice@example.com now"
    body = (f'{{"instances": ["{text}"]}}' if content_type.startswith("application/") else text).encode(codec)
    read = read_request("m", "predict", body, content_type, {}.get)
    # before: CJK alone (U+FFFD, unscanned); the other order's reading beside the texts (`decoded`: never captured)
    assert text in read.decoded and not read.unscanned, read
    assert read.digest == bytes_digest(body)
    little = read_request("m", "predict", body.decode(codec).encode(codec[:6] + "-le"), content_type, {}.get)
    assert little.texts[0] == text and not little.unscanned  # (Python's reading first)
    mark = codecs.BOM_UTF16_BE if codec == "utf-16-be" else codecs.BOM_UTF32_BE
    for marked in (mark + body, body.decode(codec).encode(codec[:6])):  # a mark says which: read one way
        read = read_request("m", "predict", marked, content_type, {}.get)
        assert len(read.texts) == 1 and text in read.texts[0] and not read.unscanned, read.texts


def test_a_reading_cut_short_in_one_byte_order_is_unscanned() -> None:
    """A body that is text in one byte order and not in the other is whole while the other reading is read to its
    end (its bytes that are no text as U+FFFD, as a model decoding it so reads them); past `charsets.MOST_REPLACED`
    of them the rest of that reading is unread: labelled `scan:truncated`, the text read being an address after them."""
    # `\xd8\x00`: a lone surrogate big-endian (U+FFFD to a model), `Ø` little-endian
    few = b"\xd8\x00" * 3 + "alice@example.com".encode("utf-16-be")
    read = read_request("m", "predict", few, "text/plain; charset=utf-16", {}.get)
    assert "\ufffd" * 3 + "alice@example.com" in read.decoded and not read.unscanned, read
    many = b"\xd8\x00" * 70_000 + "alice@example.com".encode("utf-16-be")
    read = read_request("m", "predict", many, "text/plain; charset=utf-16", {}.get)
    # before: read little-endian alone, `Ø` and CJK, clean
    assert read.unscanned and not any("alice" in text for text in read.texts + read.decoded)


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_the_other_reading_of_a_json_body_decodes_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A UTF-8 JSON body under another charset is decoded in it once (compared with its UTF-8 and read from that),
    not twice: before, `_other_reading` decoded it to compare and `_raw` decoded it again."""
    calls: list[str] = []
    decoded = charsets.decoded

    def counted(body: bytes, charset: str) -> tuple[str, bool]:
        calls.append(charset)
        return decoded(body, charset)

    monkeypatch.setattr(charsets, "decoded", counted)
    read = read_request("m", "predict", b'{"instances": ["alice+AEA-example.com"]}', "application/json; charset=utf-7")
    assert "alice@example.com" in read.decoded and calls == ["utf-7"], calls  # before: ["utf-7", "utf-7"]


def test_the_charsets_kept_are_the_latest_used() -> None:
    """`charsets.codec_of` keeps its answers for the `Content-Type`s used last (256 of them): once 256 types of a caller's own
    filled it, every other type was parsed on each call, for good. Now the least lately used goes."""
    for number in range(300):
        read_request("m", "predict", b"hi", f"text/plain; charset=utf-8; x={number}", {}.get)
    kept = "text/plain; charset=utf-16; kept=yes"  # (a type no other test sends)
    for number in range(1_000):
        read_request("m", "predict", ADDRESS.encode("utf-16"), kept, {}.get)
        read_request("m", "predict", b"hi", f"text/plain; charset=latin-1; y={number}", {}.get)
        assert kept in charsets.CHARSETS, number  # before: never kept
        assert len(charsets.CHARSETS) <= charsets.MOST_CHARSETS
    assert charsets.CHARSETS[kept] == "utf-16"


@pytest.mark.parametrize("codec", ["unicode-escape", "raw-unicode-escape", "Unicode_Escape"])
def test_python_escape_codecs_are_no_charset(codec: str) -> None:
    """`unicode-escape` and `raw-unicode-escape` are Python's literal escapes, no text any client sends: read as UTF-8,
    labelled `scan:truncated`, as a charset Python has no codec for. Before, `\\q` in `unicode-escape` raised a
    DeprecationWarning from the codec, an error under `-W error`: the call answered 500."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read = read_request("m", "predict", b"write \\q to alice\\x40example.com", f"text/plain; charset={codec}")
    assert read.texts == ("write \\q to alice\\x40example.com",) and read.unscanned


def test_an_rfc2231_charset_is_a_charset_that_differs() -> None:
    """RFC 2231's `charset*=utf-8''utf-16` is a charset to a model that reads it (Python's `email`) and none to one
    that does not (HTTP's parsers: UTF-8): one that names another than UTF-8's, or than the `charset` beside it, is
    two charsets that differ, read as UTF-8 and labelled `scan:truncated`. Before, it was ignored: read as UTF-8,
    clean, where the model read UTF-16. Continuations (`charset*0`) are not joined: the same."""
    body = "write to alice@example.com".encode("utf-16-le")  # (UTF-8 too, NULs between its letters)
    for content_type in ("text/plain; charset*=utf-8''utf-16le", "text/plain; charset*=''UTF%2D16LE",
                         "text/plain; charset=latin-1; charset*=utf-8'en'utf-16le", "text/plain; charset*0=utf-16le"):  # fmt: skip
        read = read_request("m", "predict", body, content_type, {}.get)
        assert read.unscanned, content_type  # before: clean
    same = read_request("m", "predict", body, "text/plain; charset=utf-16le; charset*=utf-8''utf-16le", {}.get)
    assert same.texts == ("write to alice@example.com",) and not same.unscanned
    utf8 = read_request("m", "predict", b"alice@example.com", "text/plain; charset*=utf-8''utf-8", {}.get)
    assert utf8.texts == ("alice@example.com",) and not utf8.unscanned


def _swapped(text: str) -> str:
    """`text`'s UTF-16 read in the other byte order: what a reading in the wrong order holds, back as it was written."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-be", "replace")


@pytest.mark.realserver
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_the_reading_in_the_other_byte_order_is_not_captured_unmasked(
    kserve_decoding: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, codec: str
) -> None:
    """UTF-16 without a byte-order mark is read both ways; the reading in the order it was not written in holds its
    address byte-swapped (`andré@example.com` as CJK), which no detector reads, so none masks it there. With
    `capture_content`, the span had that reading beside the masked one: the address, a byte swap away. The reading in
    the other order is read beside the text, as one with JSON escapes decoded is: an address in it withholds the
    content, and it is not captured."""
    url, _ = kserve_decoding
    telemetry = 'telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}", capture_content: true}'
    config = CONFIG.replace("telemetry: {exporter: none}", telemetry)
    proxy = make_proxy(config, wait="probed", KSERVE=url, PASSTHROUGH="forward", OTLP=str(otlp.port))
    body = f"write to {ADDRESS} today".encode(codec)
    sent = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=body,
                      headers={"content-type": "text/plain; charset=utf-16"}, timeout=60)  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert "pii:email" in sent.headers["x-data-labels"].split(","), sent.headers
    messages = json.loads(otlp.by_trace(sent.headers["x-trace-id"]).attributes["gen_ai.input.messages"])
    captured = [part["content"] for message in messages for part in message["parts"]]
    for text in captured:  # before: the other reading captured whole, the address in it byte-swapped
        assert ADDRESS not in text and ADDRESS not in _swapped(text), captured
    if codec == "utf-16-le":  # (Python's reading: masked as ever)
        assert captured == ["write to [pii:email] today"], captured
