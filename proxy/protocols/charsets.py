"""A body's text in the `charset` its `Content-Type` names, as the peer that reads it decodes it: a KServe V1 request
body its model gets raw (`kserve`), a whole reply a client reads by its charset (`requests`' `.json()` and `.text`:
`reply_json`). One reading, or both byte orders of UTF-16 and UTF-32 without a byte-order mark; only codecs Python's
`encodings` has, looked up once a `Content-Type` (`codec_of`), bytes that are no text in it replaced up to
`MOST_REPLACED`."""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import pkgutil
import sys
import urllib.parse
from typing import Final


def codec_of(content_type: str | None) -> str | None:
    """The codec the `charset` this `Content-Type` names is in Python (`codecs.lookup`'s name: `iso8859-1` for
    `latin-1`), for a peer that decodes the body by it: None for none, or UTF-8's or ASCII's (the body is read as
    UTF-8); "" for one Python has no text codec for, a slow one (`_SLOW_CODECS`), or several charsets that differ."""
    if content_type is None:
        return None
    if content_type in CHARSETS:
        found = CHARSETS.pop(content_type)  # (put back last: the latest used)
    else:
        found = _parsed(content_type)
        if len(CHARSETS) >= MOST_CHARSETS:
            del CHARSETS[next(iter(CHARSETS))]
    CHARSETS[content_type] = found
    return found


# `codec_of`'s answers by `Content-Type`, as clients send a few (`application/json; charset=utf-8`): the
# `MOST_CHARSETS` used last, the least lately used dropped (the key is the caller's: before 2026-12-04 none was once
# 256 types of a caller's own were kept, and every other type was parsed on each call)
CHARSETS: Final[dict[str, str | None]] = {}
MOST_CHARSETS: Final = 256


def _parsed(content_type: str) -> str | None:
    """`codec_of`, parsed from the `Content-Type`."""
    if "charset" not in content_type.lower():
        return None
    found: str | None = None
    # whether a `charset` came before (UTF-8's is None too: `charset=utf-8; charset=utf-16` was read as UTF-16 alone)
    named = False
    plain = False  # whether one was a `charset`, not RFC 2231's `charset*` alone
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        if name == "charset*":
            # RFC 2231's `charset*=utf-8'en'utf-16`, which Python's `email` reads, where HTTP's parsers see no
            # charset: a model may read either (before 2026-12-04 it was not read)
            value = urllib.parse.unquote(value.split("'", 2)[-1])
        elif name.startswith("charset*"):
            return ""  # (RFC 2231's continuations, `charset*0`: not joined here)
        elif name != "charset":
            continue
        else:
            plain = True
        value = value.lower()
        codec = None if value in _UTF8_NAMES else _codec(value)
        if codec is not None and codec in _UTF8_CODECS:
            codec = None
        if named and codec != found:
            return ""
        found, named = codec, True
    return "" if found is not None and not plain else found  # (`charset*` alone: UTF-8 to a model that skips it)


def _codec(charset: str) -> str:
    """Python's name for the text codec `charset` names; "" for none, or a slow one (`_SLOW_CODECS`). Only a name
    Python's `encodings` knows is looked up, and in its normal form (`_CODEC_NAMES`): `codecs.lookup` keeps every name
    it did not find for good (`encodings.search_function`'s cache), each after an import tried along `sys.path`, so
    callers naming a charset of their own each call took a process's memory without bound. A name over 40 characters,
    IANA's longest, is none (`normalize_encoding` reads it a character at a time)."""
    if len(charset) > 40:
        return ""
    name = encodings.normalize_encoding(charset)
    if name not in _CODEC_NAMES and name.replace(".", "_") not in _CODEC_NAMES:
        return ""
    try:
        info = codecs.lookup(name)
    except LookupError:  # (a module of `encodings` that is no codec: `aliases`; `mbcs` off Windows)
        return ""
    return info.name if info._is_text_encoding and info.name not in _SLOW_CODECS else ""


# the `charset` values a body is read by as it is (UTF-8's names, and ASCII's, a part of it), and their codecs' names
_UTF8_NAMES: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_UTF8_CODECS: Final = frozenset({"utf-8", "ascii"})
# codecs Python decodes in Python, in time quadratic in the text (`punycode`; `idna` decodes by it), that decode
# nothing (`undefined`), or Python's literal escapes, no text a client sends (`unicode-escape` warns of an escape it
# does not know, an error under `-W error`: before 2026-12-04 the call answered 500): a body in them is read as one in
# a charset Python does not know
_SLOW_CODECS: Final = frozenset({"punycode", "idna", "undefined", "unicode-escape", "raw-unicode-escape"})
# the charset names `encodings` has a codec for, in `encodings.normalize_encoding`'s form: its aliases and modules
_CODEC_NAMES: Final = frozenset(encodings.aliases.aliases) | frozenset(
    module.name for module in pkgutil.iter_modules(encodings.__path__)
)


def decoded(body: bytes, charset: str) -> tuple[str, bool]:
    """`body` decoded by the codec `charset` (`codec_of`), and whether it was text in it: bytes that are not read as
    U+FFFD (False). No more characters than bytes: a codec decodes a byte to a character at most."""
    try:
        return body.decode(charset), True
    except UnicodeError:
        pass
    try:
        return body.decode(charset, _REPLACING), False
    except UnicodeError:  # (a codec that fails whatever its error handler)
        return body.decode("utf-8", "replace"), False


def readings(body: bytes, charset: str) -> tuple[tuple[str, bool], ...]:
    """`body` as a peer may decode it by the codec `charset` (`codec_of`), each reading with whether it is read whole:
    one (`decoded`), but UTF-16's or UTF-32's without a byte-order mark, read both ways: Python's codec reads it in its
    machine's order (little-endian), RFC 2781 big-endian (Java, ICU, Go's x/text); before 2026-12-04 `alice@...` in
    big-endian was read as CJK alone, clean. Bytes that are no text in one order are whole while they are text in the
    other and that reading ran to its end (no more than `MOST_REPLACED` of them, as a model that decodes it so reads
    them: U+FFFD); one reading where both are the same text. At most twice the work of one."""
    first, whole = decoded(body, charset)
    other = _OTHER_ORDER.get(charset)
    if other is None or body.startswith(_MARKS[charset]):
        return ((first, whole),)
    second, other_whole = decoded(body, other)
    if second == first:
        return ((first, whole and other_whole),)
    either = whole or other_whole
    return (
        (first, either and (whole or not _cut(first))),
        (second, either and (other_whole or not _cut(second))),
    )


def _cut(read: str) -> bool:
    """Whether a reading `decoded` replaced bytes of may have stopped short (`MOST_REPLACED` U+FFFD and more)."""
    return read.count("\ufffd") > MOST_REPLACED


# the codecs Python reads a body without a byte-order mark in its machine's order (`readings`): the other order's, and
# the marks that say which
_OTHER_ORDER: Final = {
    "utf-16": "utf-16-be" if sys.byteorder == "little" else "utf-16-le",
    "utf-32": "utf-32-be" if sys.byteorder == "little" else "utf-32-le",
}
_MARKS: Final = {
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
}


# what `_replaced` leaves in its variable once it has raised an error it does not replace
_UNREPLACED: Final = UnicodeError("not replaced")


def _replaced(error: UnicodeError) -> tuple[str, int]:
    """`decoded`'s error handler: "replace"'s, U+FFFD for bytes that are no text, for a body's first `MOST_REPLACED`;
    past them the rest of it is not read (one U+FFFD; the call is `scan:truncated` already). Every codec but UTF-8's,
    ASCII's and Latin-1's calls its handler once for each, at a third of a microsecond: 16 MB of them (`\\x81` in
    windows-1252, `\\x80` in UTF-7, lone surrogates in UTF-16) held the event loop 5-7 s. The count is kept on the
    error, which a codec makes once for a body and hands over each time (one that made a new one each time would have
    all replaced, as "replace" does)."""
    if not isinstance(error, UnicodeDecodeError):
        try:
            raise error
        finally:  # not kept by this frame, which its traceback holds (a reference cycle); not `del error`, which
            # mypyc compiles wrong for a parameter (a crash here, and every other use of `error` an UnboundLocalError)
            error = _UNREPLACED
    count: int = getattr(error, _REPLACED_COUNT, 0) + 1
    setattr(error, _REPLACED_COUNT, count)
    return "\ufffd", error.end if count <= MOST_REPLACED else len(error.object)


# `_replaced`'s name among Python's error handlers, the attribute it counts in, and the most bytes (or runs of them) it
# replaces
_REPLACING: Final = "lineage-proxy-replace"
_REPLACED_COUNT: Final = "lineage_proxy_replaced"
MOST_REPLACED: Final = 65_536
codecs.register_error(_REPLACING, _replaced)
