"""Content detectors: find personal data in request and reply text and name it with `pii:<kind>` labels.

Each detector is a candidate pattern plus a validator (Luhn, IBAN mod-97, address ranges, boundaries),
so near-misses such as version numbers or invalid card numbers are not labelled.

Speed: Python's `re` only skips quickly through text when a pattern starts with a literal. So the
text is first translated, byte for byte and at C speed, into a *class string* (every digit becomes `0`,
hex letters `x`/`X`, other letters `a`/`A`, separators kept, every byte of a character that is not ASCII `~`,
anything else `#`), and the built-in
candidate patterns run on that, each starting with a literal (`0`, `@`, `:`). Offsets are byte offsets
into the UTF-8 text, so validators read the real characters at the same positions. A 1 KB prompt with
no personal data costs a few microseconds instead of ~200. Every finder is linear in the text (an address
is looked for only near an `@`, once however many there are; a value that starts with a digit only from the
text's first digit to its last: prose with a year in it is not searched end to end four times), and at most
`limits.scan_max_chars` characters are scanned per call and direction, all the readings of a request's
content together (`Reading`); what is longer gets the label `scan:truncated` so nobody mistakes "not scanned" for
"clean". User-defined patterns run on the text itself: their cost is theirs.

A text that is not ASCII is scanned as the model reads it: in NFKC form (a fullwidth `＠` or digit is the
ASCII one), without Unicode's default-ignorable characters (zero-width spaces, bidi controls, variation
selectors, tags, Hangul fillers: no gap inside an address) and control characters (`\\x00`, `\\x1f`; white space
stays: a tab or a line break parts a value), with every decimal digit as its ASCII one
(Arabic-Indic `٤` and Devanagari `४` are `4`), dashes as `-` (prose's em dash no digit is before as `--`:
`_PROSE_DASH`) and ideographic full stops as `.` (IDNA reads them so in a domain), and without the combining
marks drawn over an ASCII character (a strikethrough's `4̶`, a
keycap's `4️⃣`: the model reads the `4`). In any text, `@` written as `%40`, `&#64;`, `&#x40;` or `&commat;` is read as `@`, `.`
written as `%2E`, `&#46;`, `&#x2E;` or `&period;` as `.` (`%2540`, `%252E`: escaped again for a URL, too), and any character JSON escapes (`\\u0040`, `\\u00f6`, `\\n`) as
that character, a surrogate pair as its one character, then read as the rest of a text is (a tool call's arguments
are JSON in a string, which its client parses: `alice\\u0040example.com` and `alice\\uff20example.com` are addresses to
it). Only a text that is not
ASCII or holds such an escape pays for this. An address may have letters that are not ASCII in its local part and
domain (`jörg@exämple.de`, `用户@例子.中国`): found where the class string shows one, then read again in its own
characters (`_address`); and a quoted local part (`"john doe"@example.com`) or an IP address for a domain
(`user@[192.168.0.1]`): `_odd_addresses`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from proxy.config import DetectorSpec
from proxy.memo import Memo

TRUNCATED: Final = "scan:truncated"
_ONLY_TRUNCATED: Final = frozenset({TRUNCATED})
_NOTHING: Final[frozenset[str]] = frozenset()
# `Detectors.finds_nothing`: the longest text it remembers, how many it keeps, and the characters they hold together
# (about: a text, and `_REMEMBERED_ENTRY` for its slot): 1,024 texts of up to 256 KiB together
_REMEMBERED_TEXT: Final = 256
_REMEMBERED_KEPT: Final = 1024
_REMEMBERED_BYTES_KEPT: Final = 1 << 18
_REMEMBERED_ENTRY: Final = 100
_OVERLAP: Final = 128  # characters of a text a stream scanner reads again with the next piece (`StreamScanner`)


# control characters but white space (C0 but TAB, LF, VT, FF, CR; DEL): no font draws them, and each is one more token
# between a value's pieces to the model, as a zero-width space is. Dropped where they stand inside a text (`scan`); in
# a text that is not ASCII with the C1 controls but NEL, a line break (`_FOLD`). Every line break reads as an LF (VT,
# FF, NEL, U+2028, U+2029), as a card on lines of its own is found
_CONTROL_BYTES: Final = frozenset([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_CONTROL_CLASS: Final = 0  # their class byte, and the line breaks' but LF and CR: found in a class string by one memchr
# what an ASCII text holding one is read as: without the controls, VT and FF as the line breaks they are (LF: `_FOLD`)
_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS: Final = {0x0B: "\n", 0x0C: "\n", 0x85: "\n", 0x2028: "\n", 0x2029: "\n"}


def _without_controls(text: str) -> str:
    """An ASCII text as the detectors read it: without its control characters, each line break an LF."""
    return text.translate(_FOLD) if _CONTROL.search(text) is not None else text


def _class_table() -> bytes:
    table = bytearray(b"#" * 256)
    for byte in range(256):
        char = chr(byte)
        if "0" <= char <= "9":
            table[byte] = ord("0")
        elif "a" <= char <= "f":
            table[byte] = ord("x")
        elif "A" <= char <= "F":
            table[byte] = ord("X")
        elif "g" <= char <= "z":
            table[byte] = ord("a")
        elif "G" <= char <= "Z":
            table[byte] = ord("A")
        elif char in " .-+():@_%/,|\t\r\n":
            table[byte] = byte
        elif byte < 0x80 and (byte in _CONTROL_BYTES or byte in _LINE_BREAKS):  # ASCII's: 0x85 (NEL's code) is a
            table[byte] = _CONTROL_CLASS  # UTF-8 continuation byte here (`х`, `Å`), the rest of a letter, no break
        elif byte >= 128:
            table[byte] = ord("~")
    return bytes(table)


# (`Final`, here and below: compiled, each constant read per call is a C static, not a lookup in the module's dict)
_CLASSES: Final = _class_table()
_WORDISH: Final = frozenset(b"0aAxX_")
# what, beyond a run of underscores, makes it part of a word (`snake_case`, `card_4111...`): a digit, a letter, one
# that is not ASCII. A run with none of them on one side is Markdown's emphasis (`_alice@example.com_`, `__4111 1111
# 1111 1111__`), which a model reads past as it reads past `*`: `_Text.before` and `after` read it as punctuation
_WORD: Final = frozenset(b"0aAxX~")  # (`~`: if a letter, a mark or a digit, `_a_letter_at`)
_LETTERS: Final = frozenset(b"aAxX")
# what joins a run of digits to more of a number or a word, so the run is no card: a digit, a dash, an ASCII letter or
# an underscore (as a phone's neighbours are read)
_CARD_JOINED: Final = _WORDISH | {45}


# the most letters an id's label before a dash and a card has (`_card_joined_before`): a longer word's card is in it
_ID_LABEL_MOST: Final = 24


def _card_joined_before(t: _Text, start: int) -> bool:
    """Whether a card candidate at `start` is joined to a word or a longer number before it (`_CARD_JOINED`): not so
    after a word's ASCII letters and a dash, an id's label (`ID-4111 1111 1111 1111`, `INV-4111111111111111`: a
    Luhn-valid card there is most likely one, as word-boundary recognizers such as Presidio's read it), where after a
    digit and a dash (`2024-`, `a1234567-`: a longer number, a UUID's groups), a sign (` -4111…`), or letters with a
    digit or a character not ASCII before them (`a1b-`, a hex id's), or more than `_ID_LABEL_MOST` letters, it is.
    A stream scanner's window that starts in those letters (its tail cut in a long token) reads them by the character
    before it (`_Text.ahead`), and a word longer than a window's tail holds of it is no label: read to its start
    alone, `…1` + 130 letters + `-4111 …` was a card streamed, none whole. Since 2026-12-06: before, a card after `ID-`
    was none, and `mask` left it in clear."""
    before = t.before(start)
    if before != 45:
        return before in _CARD_JOINED
    classes, dash = t.classes, start - 1
    if (dash > 0 and classes[dash - 1] == 45) or _iban_ends_at(t, dash):
        # (a double dash, prose's, `x --4111 1111 1111 1111`, as `_value_joined_after` reads one; an IBAN's end,
        # `DE89 3704 0044 0532 0130 00-4111-1111-1111-1111`: no longer number's groups, `_iban_ends_at`)
        return False
    pos, first = dash, max(0, dash - _ID_LABEL_MOST - 1)
    while pos > first and classes[pos - 1] in _LETTERS:
        pos -= 1
    if pos == dash or dash - pos > _ID_LABEL_MOST or t.before(pos) in _WORD:
        return True
    # (a stream scanner's window starting in the word: the character before it, `_Text.ahead`, as `t.before` reads it)
    ahead = t.ahead
    return pos == 0 and ahead != "" and (ahead.isalnum() or not ahead.isascii())


def _luhn(digits: bytes) -> bool:
    """The Luhn check of ASCII digits, in C: every second digit from the right doubled (`_DOUBLED`)."""
    kept, doubled = digits[::-1][::2], digits[::-1][1::2]
    return (sum(kept) - 48 * len(kept) + sum(doubled.translate(_DOUBLED))) % 10 == 0


_DOUBLED: Final = bytes(
    (2 * (byte - 48) - 9 if byte >= 53 else 2 * (byte - 48)) if 48 <= byte <= 57 else 0 for byte in range(256)
)


@dataclass(frozen=True, slots=True, init=False)
class Found:
    start: int  # byte offsets into the UTF-8 text
    end: int
    label: str

    def __init__(self, start: int, end: int, label: str) -> None:  # compiled: `proxy.flow`'s docstring
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "label", label)


# `_Text.alike_stops` until a run of phones not alike is read: one dict, never written to (a default of `{}` mypyc makes
# anew for each `_Text`, each scan, with a warning at build; helper revdetfuzz2)
_NO_STOPS: Final[dict[int, int]] = {}


class _Text:
    """The UTF-8 bytes of a text and their class string, same length, same offsets; and the stretch of it the
    finders whose every match starts with a digit search (`digits`): all of it unless `scan` narrowed it."""

    # the last run of numbers `_listed` read, from where and to where, and where a number in it that is no phone's
    # starts (-1: none)
    run_from: int = -1
    run_end: int = -1
    unlisted: int = -1
    # where the last number of that run read as a Unix time of 2009 or later starts (`_dated`; -1: none, -2: not read)
    recent: int = -2
    # the last run of phones alike `_phones_alike` read (where it ends; -1: none), where its next phone starts and
    # how many characters each takes up: each after its first is read alone, not with the rest of the run again
    alike_end: int = -1
    alike_next: int = -1
    alike_size: int = 0
    # where its last phone ends: its end, or a card's space after them (`_phone_before_card`)
    alike_last: int = -1
    # where each of a run of phones written alike or not ends, by where it starts, when they are not alike
    # (`alike_size` 0, `_phones_written`)
    alike_stops: dict[int, int] = _NO_STOPS
    # the bytes at its start a stream scanner's window read in the window before (its tail, `StreamScanner`): a card
    # written digit by digit there was judged there, with the lines before it this window may not hold (`_spelled_out`)
    reread: int = 0
    # a stream scanner's window (`StreamScanner`): the character before it as the detectors read it ("" at the text's
    # start), and, when more may follow its end, how many of its last characters are read again with it (0: none
    # follows); a custom pattern reads them (`_custom`), so that `^`, `\b` and a lookbehind at its start, `$` and `\Z` at
    # its end, match where they do in the text read whole
    ahead: str = ""
    more: int = 0
    # where the white space ends a stream scanner's window with numbers held back after it starts (-1: none, `_unended`):
    # a phone or a card ending there is read with them in the next window, not as the run's end (read so, the first
    # phones of `555 123 4567 ` x30 then `1111 4111 1111 1111 1111` were a phone, none whole, until 2026-12-05, helper
    # detfuzz2)
    runs_on: int = -1
    # a stream scanner's window whose tail was cut in a run of numbers: the readings of the run as phones that, read
    # whole from its start (in a window before, `_run_unaligned`), it is none of (`_ALIKE_REFUSED`, `_WRITTEN_REFUSED`,
    # `_CARD_REFUSED`; `_UNALIGNED`: all): not read so back from its end either; and what rest of a phone written its
    # first groups may be, read so from the run's start (`_REST_SHIFT`, `_written_rest`)
    unaligned: int = 0
    # where a stream scanner's window starts inside a run of numbers its tail was cut in (0), the run's start read in a
    # window before: its first card candidate is no run's start (`_cards`, `_in_run`); -1: not so
    in_run: int = -1
    # where the IBAN whose check digits are at each offset read ends (`_iban_ending`, -1: none), by that offset
    iban_endings: dict[int, int] = _NO_STOPS

    def __init__(self, text: str, classes: bytes = b"") -> None:
        self.wide = not text.isascii()
        # (ASCII is its own UTF-8: encoded without the codec lookup an error handler costs)
        self.raw = text.encode("utf-8", "surrogatepass") if self.wide else text.encode()
        # `classes`: the class string its caller made of it already (`Detectors.scan_output`), else made here
        self.classes = classes if classes else self.raw.translate(_CLASSES)
        self.first = 0
        self.stop = len(self.classes)

    def digits(self, first: int, last: int) -> None:
        """Where the text's first and last digits are: a match starting with a digit starts at `first` or
        after, and ends within `_DIGIT_MATCH` characters of `last`, so it is searched for there only (the
        same matches, found the same way: the patterns look at nothing before where they start)."""
        self.first = first
        self.stop = min(len(self.classes), last + _DIGIT_MATCH)

    def before(self, index: int) -> int:
        """The class of the byte before `index` (a space at the start); an underscore there, with no word beyond
        its run (`_emphasis`), as punctuation."""
        if index <= 0:
            return 32
        byte = self.classes[index - 1]
        if byte == 95:
            first = _run_start(self.classes, index - 1)
            if first == 0:
                return 35
            beyond = self.classes[first - 1]
            if beyond not in _WORD or (beyond == 126 and not _a_letter_before(self.raw, first)):
                return 35
        return byte

    def after(self, index: int) -> int:
        """The class of the byte at `index` (a space past the end); an underscore there as in `before`."""
        size = len(self.classes)
        if index >= size:
            return 32
        byte = self.classes[index]
        if byte == 95:
            last = _run_end(self.classes, index + 1)
            if last == size:
                return 35
            beyond = self.classes[last]
            if beyond not in _WORD or (beyond == 126 and not _a_letter_at(self.raw, last)):
                return 35
        return byte


# a character that is not ASCII beyond a run of underscores joins it to a word if a letter, a mark or a digit
# (`straße_4111…`, `नमस्ते_4111…`), not if a quotation mark, a bracket or an emoji: read as a letter whatever it was,
# `“_8.8.8.8_”`, `「_4111 1111 1111 1111_」` and `_alice@example.com_🙂` were not found (2026-12-04)
def _a_letter_at(raw: bytes, index: int) -> bool:
    """Whether the character whose UTF-8 starts at `index` is a letter, a mark or a digit."""
    char = raw[index : index + 4].decode("utf-8", "replace")
    return unicodedata.category(char[0])[0] in "LMN"


def _a_letter_before(raw: bytes, index: int) -> bool:
    """Whether the character whose UTF-8 ends at `index` is a letter, a mark or a digit."""
    return _a_letter_at(raw, _lead_before(raw, index))


def _lead_before(raw: bytes, index: int) -> int:
    """Where the character whose UTF-8 ends at `index` starts."""
    lead = index - 1
    while lead > 0 and index - lead < 4 and 0x80 <= raw[lead] < 0xC0:
        lead -= 1
    return lead


# Where a run of underscores starts, or ends, counted in C, in steps that double, then halve: read a byte at a time in
# Python, 1,000 underscores beside each of 1,000 cards (`_Text.before`, ~8 times a card) cost 1.6 s (0.06 s before
# they were read as punctuation), ~25,000 lines of Python a card
def _run_start(classes: bytes, end: int) -> int:
    """Where the run of underscores that ends at `end` starts (`end` when none ends there)."""
    if end == 0 or classes[end - 1] != 95:  # (most: one underscore, or none)
        return end
    first, size = end - 1, 1
    while first >= size and classes.count(95, first - size, first) == size:
        first -= size
        size *= 2
    while size > 1:  # (the run is shorter than `size` from `first` back)
        size //= 2
        if first >= size and classes.count(95, first - size, first) == size:
            first -= size
    return first


def _run_end(classes: bytes, start: int) -> int:
    """Where the run of underscores from `start` ends (`start` when none is there)."""
    most = len(classes)
    if start == most or classes[start] != 95:
        return start
    last, size = start + 1, 1
    while last + size <= most and classes.count(95, last, last + size) == size:
        last += size
        size *= 2
    while size > 1:
        size //= 2
        if last + size <= most and classes.count(95, last, last + size) == size:
            last += size
    return last


# Each finder yields (start, end) of validated values in a _Text.
Finder = Callable[[_Text], Iterator[tuple[int, int]]]

_CARD: Final = re.compile(rb"0(?:[ -]?0){12,18}")
_DIGITS: Final = re.compile(rb"[0-9]+")
# 4111.1111.1111.1111, 4111/1111/1111/1111, 4111:1111:1111:1111, 4111|1111|..., 4111+1111+... (a form's spaces),
# 4111_1111_1111_1111, 4111,1111,1111,1111, 4111\t1111\t..., 4111  1111  ..., 3782\t822463\t10005 (4-6-5): one
# pattern, so one pass
_CARD_GROUPED: Final = re.compile(
    rb"0000(?P<sep>[./_:|+]|, ?|[ \t\r\n]{2,}|[\t\r\n])(?:(?:0000(?P=sep)){2}0000|000000(?P=sep)00000)"
)
_GAP: Final = frozenset(b" \t\r\n,_")
# the rest of a table row or column that a card candidate was a window of (`_in_a_row`), skipped in one match:
# every further window of it is in the row too (a long table was a Python check per four numbers)
_TABLE_RUN: Final = {
    32: re.compile(rb"(?:(?: [ \t\r\n]+|[\t\r\n][ \t\r\n]*)0+)*"),  # white space, as `_alike` reads it
    44: re.compile(rb"(?: *, *0+)*"),
    95: re.compile(rb"(?:_0+)*"),
}
_PHONE: Final = re.compile(rb"0[0 ().-]{6,24}0")
_IPV4: Final = re.compile(rb"00?0?\.00?0?\.00?0?\.00?0?")
_IPV6_TRIGGER: Final = re.compile(rb":[0xX]{0,4}:")
_IPV6: Final = re.compile(rb"[0xX:]{2,39}")
_IBAN: Final = re.compile(rb"00(?: ?[aAxX0]{4}){2,7}(?: ?[aAxX0]{1,3})?")
# the same with a dash or a dot, the same throughout, between the groups (group 1)
_IBAN_JOINED: Final = re.compile(rb"00([.-])[aAxX0]{4}(?:\1[aAxX0]{4}){1,6}(?:\1[aAxX0]{1,3})?")
# the class string with every letter as `a` (digits `0`, the rest `#`): where an IBAN found starts reads `aa00`
_LEADS: Final = bytes(97 if byte in b"aAxX" else 48 if byte == 48 else 35 for byte in range(256))
# the class string with a phone's every character as `0` (digits and its separators; the rest `#`)
_DIALS: Final = bytes(48 if byte in b"0 ().-" else 35 for byte in range(256))
# the longest a match of the patterns above that start with a digit reaches past the text's last digit: an IBAN's
# (its start is a digit at most, 2 + 7 × 5 + 4 = 41 characters), the others end in one
_DIGIT_MATCH: Final = 42
# IBAN lengths by country (SWIFT's IBAN registry, release 101): a lower-case candidate must match them
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip
# the countries whose BBAN, all of an IBAN after its check digits, is digits only (the registry's formats, `n` alone:
# `DE` 8!n10!n, `AT` 5!n11!n): one with a letter there is none. In capitals and in small letters, and as bytes, for the
# pattern and the reading that find one (`_iban`, `_joined_iban`, `_iban_read_to_its_end`, `_IBAN_MAY_END`). In a list
# of country heads (`DE12 AT34 FR56 GB78 IT90`) an Austrian head's 20 characters end where a group does, and each was
# read whole and checked (0.13 s of the 0.27 s 1 MB of them took to scan) until 2026-12-07: its letters now refuse it at
# C speed
_DIGITS_ONLY_NAMES: Final = """
AE AT BA BE BI CR CZ DE DJ DK EE EG ES FI FO GL HR HU IL IS LT LY ME MN MR NO PL PT RS SD SE SI SK SO ST TL TN VA XK
"""  # (split by white space)
_DIGITS_ONLY: Final = frozenset(_DIGITS_ONLY_NAMES.split())
_DIGITS_ONLY_BYTES: Final = frozenset(code.encode() for code in _DIGITS_ONLY)
# a country's length before its registry entry changed, read too where an IBAN is read alone, spaced, compact, dashed
# or dotted (`_iban`, `_joined_iban`; where a number or a value follows it in its run, at its length now): Costa Rica's
# 21 characters before its 22 (`CR05 1520 2001 0262 8406 6`, the registry's own example then), in an account's old
# records. In capitals it was read as a country's not listed until 2026-12-07, at its own length only since then, and
# none in small letters; none of 150 MB of this machine's text (docs, Python's and the venv's libraries) holds one that
# passes the check
_FORMER_IBAN_LENGTHS: Final = frozenset((("CR", 21),))
# an address: a local part of 1-64 characters from where its run starts (or after a `%`), its `@` (group 1) and a
# domain ending in letters; searched only near an `@` (`_AT_NEAR`)
_EMAIL: Final = re.compile(rb"(?<![0aAxX._+-])[aAxX0._%+-]{1,64}(@)[aAxX0-]{1,63}(?:\.[aAxX0-]{1,63})*\.[aAxX]{2,24}")
# the same in a text that is not ASCII, where a character that is not may be in any part (`~`), the top-level domain
# too: what it finds with one in it is read again in its characters (`_address`)
_EMAIL_WIDE: Final = re.compile(
    rb"(?<![0aAxX._+-])[aAxX0._%+~-]{1,64}(@)[aAxX0~-]{1,63}(?:\.[aAxX0~-]{1,63})*\.[aAxX~]{2,63}"
)
# the top-level domains that are not ASCII (the Public Suffix List's ICANN section, 2023-02-09; NFKC, as `scan`
# reads them): an address in a text without spaces between its words (`会議@渋谷。今日は…`, the ideographic full stop
# read as `.`) otherwise ran on into the words after it, which are seldom one of these
_IDN_TLDS: Final = """
vermögensberater vermögensberatung ελ ευ бг бел дети ею католик ком мкд мон москва онлайн орг рус рф
сайт срб укр қаз հայ ישראל קום ابوظبي اتصالات ارامكو الاردن البحرين الجزائر السعودية السعوديه
السعودیة السعودیۃ العليان المغرب اليمن امارات ايران ایران بارت بازار بيتك بھارت تونس سودان سوريا
سورية شبكة عراق عرب عمان فلسطين قطر كاثوليك كوم مصر مليسيا موريتانيا موقع همراه پاكستان پاکستان ڀارت
कॉम नेट भारत भारतम् भारोत संगठन বাংলা ভারত ভাৰত ਭਾਰਤ ભારત ଭାରତ இந்தியா இலங்கை சிங்கப்பூர் భారత్ ಭಾರತ
ഭാരതം ලංකා คอม ไทย ລາວ გე みんな アマゾン クラウド グーグル コム ストア セール ファッション ポイント 世界 中信
中国 中國 中文网 亚马逊 企业 佛山 信息 健康 八卦 公司 公益 台湾 台灣 商城 商店 商标 嘉里 嘉里大酒店 在线 大拿 天主教
娱乐 家電 广东 微博 慈善 我爱你 手机 招聘 政务 政府 新加坡 新闻 时尚 書籍 机构 淡马锡 游戏 澳門 澳门 点看 移动 组织机构
网址 网店 网站 网络 联通 臺灣 谷歌 购物 通販 集团 電訊盈科 飞利浦 食品 餐厅 香格里拉 香港 닷넷 닷컴 삼성 한국
"""  # (split by white space)
# a letter of a script written without spaces between words (Thai, Lao, Myanmar, Khmer, kana, Han, Yi) followed by
# ASCII up to the `@`: where an ASCII local part starts in such a text (`请发到alice@example.com`)
_SPACELESS_BEFORE: Final = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\ua4cf\uf900-\ufaff\U00020000-\U0003ffff](?=[0-9A-Za-z._%+-]+@)"
)
_IDN_TLD_SET: Final = frozenset(_IDN_TLDS.split())
# the first two bytes of each in UTF-8, in either case: where a top-level domain that is not ASCII may start
_IDN_HEADS: Final = frozenset(form.encode()[:2] for tld in _IDN_TLD_SET for form in (tld, tld.upper()))
_ASCII_TLD: Final = re.compile(r"[A-Za-z]{2,24}(?![0-9A-Za-z]|_+[^\W_])")  # (underscores then no word: `_WORD`)
# the top-level domains of ASCII letters (the Public Suffix List's ICANN section, 2023-02-09): a domain ending in one
# ends an address with underscores and a word after it, as a file's name does (`alice@example.com_2024.csv`,
# `report_alice@example.com_v2.pdf`: a host's name holds no `_`), where one ending in other letters is a word joined
# on (`x@self.weight_t`, Python's `@`: the one such in Python's library, site-packages and /usr/share/doc,
# `A@sps.diags_array`)
_ASCII_TLD_NAMES: Final = """
aaa aarp abarth abb abbott abbvie abc able abogado abudhabi ac academy accenture accountant accountants aco actor ad
ads adult ae aeg aero aetna af afl africa ag agakhan agency ai aig airbus airforce airtel akdn al alfaromeo alibaba
alipay allfinanz allstate ally alsace alstom am amazon americanexpress americanfamily amex amfam amica amsterdam
analytics android anquan anz ao aol apartments app apple aq aquarelle ar arab aramco archi army arpa art arte as asda
asia associates at athleta attorney au auction audi audible audio auspost author auto autos avianca aw aws ax axa az
azure ba baby baidu banamex bananarepublic band bank bar barcelona barclaycard barclays barefoot bargains baseball
basketball bauhaus bayern bb bbc bbt bbva bcg bcn be beats beauty beer bentley berlin best bestbuy bet bf bg bh bharti
bi bible bid bike bing bingo bio biz bj black blackfriday blockbuster blog bloomberg blue bm bms bmw bn bnpparibas bo
boats boehringer bofa bom bond boo book booking bosch bostik boston bot boutique box br bradesco bridgestone broadway
broker brother brussels bs bt build builders business buy buzz bv bw by bz bzh ca cab cafe cal call calvinklein cam
camera camp canon capetown capital capitalone car caravan cards care career careers cars casa case cash casino cat
catering catholic cba cbn cbre cbs cc cd center ceo cern cf cfa cfd cg ch chanel channel charity chase chat cheap
chintai christmas chrome church ci cipriani circle cisco citadel citi citic city cityeats cl claims cleaning click
clinic clinique clothing cloud club clubmed cm cn co coach codes coffee college cologne com comcast commbank community
company compare computer comsec condos construction consulting contact contractors cooking cookingchannel cool coop
corsica country coupon coupons courses cpa cr credit creditcard creditunion cricket crown crs cruise cruises cu
cuisinella cv cw cx cy cymru cyou cz dabur dad dance data date dating datsun day dclk dds de deal dealer deals degree
delivery dell deloitte delta democrat dental dentist desi design dev dhl diamonds diet digital direct directory
discount discover dish diy dj dk dm dnp do docs doctor dog domains dot download drive dtv dubai dunlop dupont durban
dvag dvr dz earth eat ec eco edeka edu education ee eg email emerck energy engineer engineering enterprises epson
equipment ericsson erni es esq estate et etisalat eu eurovision eus events exchange expert exposed express extraspace
fage fail fairwinds faith family fan fans farm farmers fashion fast fedex feedback ferrari ferrero fi fiat fidelity
fido film final finance financial fire firestone firmdale fish fishing fit fitness fj flickr flights flir florist
flowers fly fm fo foo food foodnetwork football ford forex forsale forum foundation fox fr free fresenius frl frogans
frontdoor frontier ftr fujitsu fun fund furniture futbol fyi ga gal gallery gallo gallup game games gap garden gay gb
gbiz gd gdn ge gea gent genting george gf gg ggee gh gi gift gifts gives giving gl glass gle global globo gm gmail
gmbh gmo gmx gn godaddy gold goldpoint golf goo goodyear goog google gop got gov gp gq gr grainger graphics gratis
green gripe grocery group gs gt gu guardian gucci guge guide guitars guru gw gy hair hamburg hangout haus hbo hdfc
hdfcbank health healthcare help helsinki here hermes hgtv hiphop hisamitsu hitachi hiv hk hkt hm hn hockey holdings
holiday homedepot homegoods homes homesense honda horse hospital host hosting hot hoteles hotels hotmail house how hr
hsbc ht hu hughes hyatt hyundai ibm icbc ice icu id ie ieee ifm ikano il im imamat imdb immo immobilien in inc
industries infiniti info ing ink institute insurance insure int international intuit investments io ipiranga iq ir
irish is ismaili ist istanbul it itau itv jaguar java jcb je jeep jetzt jewelry jio jll jmp jnj jo jobs joburg jot joy
jp jpmorgan jprs juegos juniper kaufen kddi ke kerryhotels kerrylogistics kerryproperties kfh kg ki kia kids kim
kinder kindle kitchen kiwi km kn koeln komatsu kosher kp kpmg kpn kr krd kred kuokgroup kw ky kyoto kz la lacaixa
lamborghini lamer lancaster lancia land landrover lanxess lasalle lat latino latrobe law lawyer lb lc lds lease
leclerc lefrak legal lego lexus lgbt li lidl life lifeinsurance lifestyle lighting like lilly limited limo lincoln
linde link lipsy live living lk llc llp loan loans locker locus lol london lotte lotto love lpl lplfinancial lr ls lt
ltd ltda lu lundbeck luxe luxury lv ly ma macys madrid maif maison makeup man management mango map market marketing
markets marriott marshalls maserati mattel mba mc mckinsey md me med media meet melbourne meme memorial men menu
merckmsd mg mh miami microsoft mil mini mint mit mitsubishi mk ml mlb mls mma mn mo mobi mobile moda moe moi mom
monash money monster mormon mortgage moscow moto motorcycles mov movie mp mq mr ms msd mt mtn mtr mu museum music
mutual mv mw mx my mz na nab nagoya name natura navy nba nc ne nec net netbank netflix network neustar new news next
nextdirect nexus nf nfl ng ngo nhk ni nico nike nikon ninja nissan nissay nl no nokia northwesternmutual norton now
nowruz nowtv nr nra nrw ntt nu nyc nz obi observer office okinawa olayan olayangroup oldnavy ollo om omega one ong
onion onl online ooo open oracle orange org organic origins osaka otsuka ott ovh pa page panasonic paris pars partners
parts party passagens pay pccw pe pet pf pfizer ph pharmacy phd philips phone photo photography photos physio pics
pictet pictures pid pin ping pink pioneer pizza pk pl place play playstation plumbing plus pm pn pnc pohl poker
politie porn post pr pramerica praxi press prime pro prod productions prof progressive promo properties property
protection pru prudential ps pt pub pw pwc py qa qpon quebec quest racing radio re read realestate realtor realty
recipes red redstone redumbrella rehab reise reisen reit reliance ren rent rentals repair report republican rest
restaurant review reviews rexroth rich richardli ricoh ril rio rip ro rocher rocks rodeo rogers room rs rsvp ru rugby
ruhr run rw rwe ryukyu sa saarland safe safety sakura sale salon samsclub samsung sandvik sandvikcoromant sanofi sap
sarl sas save saxo sb sbi sbs sc sca scb schaeffler schmidt scholarships school schule schwarz science scot sd se
search seat secure security seek select sener services seven sew sex sexy sfr sg sh shangrila sharp shaw shell shia
shiksha shoes shop shopping shouji show showtime si silk sina singles site sj sk ski skin sky skype sl sling sm smart
smile sn sncf so soccer social softbank software sohu solar solutions song sony soy spa space sport spot sr srl ss st
stada staples star statebank statefarm stc stcgroup stockholm storage store stream studio study style su sucks
supplies supply support surf surgery suzuki sv swatch swiss sx sy sydney systems sz tab taipei talk taobao target
tatamotors tatar tattoo tax taxi tc tci td tdk team tech technology tel temasek tennis teva tf tg th thd theater
theatre tiaa tickets tienda tiffany tips tires tirol tj tjmaxx tjx tk tkmaxx tl tm tmall tn to today tokyo tools top
toray toshiba total tours town toyota toys tr trade trading training travel travelchannel travelers travelersinsurance
trust trv tt tube tui tunes tushu tv tvs tw tz ua ubank ubs ug uk unicom university uno uol ups us uy uz va vacations
vana vanguard vc ve vegas ventures verisign versicherung vet vg vi viajes video vig viking villas vin vip virgin visa
vision viva vivo vlaanderen vn vodka volkswagen volvo vote voting voto voyage vu vuelos wales walmart walter wang
wanggou watch watches weather weatherchannel webcam weber website wedding weibo weir wf whoswho wien wiki williamhill
win windows wine winners wme wolterskluwer woodside work works world wow ws wtc wtf xbox xerox xfinity xihuan xin xxx
xyz yachts yahoo yamaxun yandex ye yodobashi yoga yokohama you youtube yt yun zappos zara zero zip zm zone zuerich zw
"""  # (split by white space)
_ASCII_TLDS: Final = frozenset(_ASCII_TLD_NAMES.split())
# the same joined by underscores to a word (`_address`: `_ASCII_TLD` refuses it)
_ASCII_TLD_JOINED: Final = re.compile(r"[A-Za-z]{2,24}(?=_+[^\W_])")
# what RFC 5321 lets an address hold besides a dot-atom local part and a domain of names, that a model reads as one
# as well: a quoted local part (`"john doe"@example.com`: printable characters, `\\` escaping the next one) and an
# IP address in brackets (`user@[192.168.0.1]`, `user@[IPv6:2001:db8::1]`); where one may be is found by one search
_ODD_ADDRESS: Final = re.compile(rb'"@|@\[')
# (each matched from its `"` or `@` with its domain, at C speed: text dense with `"@` or `@[` costs no Python per one;
# the local part before brackets as `_EMAIL` reads it, at most 64 characters back)
# Its first and last characters are no white space nor `,:;=+(){}[]<>`: between two strings in code, the `"` that
# closes one and the `"` that opens a domain (`["@gmail.com", "@yahoo.com"]`, `"Email: " + user + "@example.com"`)
# were one (2026-12-04)
_QUOTED_EDGE: Final = rb"(?:[0-9A-Za-z\x80-\xff!#$%&'*./?^_`|~-]|\\[ -~])"
_QUOTED_PART: Final = _QUOTED_EDGE + rb"(?:(?:[ !#-\[\]-~\x80-\xff]|\\[ -~]){0,60}" + _QUOTED_EDGE + rb")?"
# (its labels UTF-8 too, its top-level domain ASCII: `"jörg"@exämple.de` was none until 2026-12-05)
_QUOTED_DOMAIN: Final = rb"@[0-9A-Za-z\x80-\xff-]{1,63}(?:\.[0-9A-Za-z\x80-\xff-]{1,63})*\.[A-Za-z]{2,24}"
_QUOTED: Final = re.compile(rb'"' + _QUOTED_PART + rb'"' + _QUOTED_DOMAIN)  # (UTF-8 in the quotes too: RFC 6531)
# the same in JSON in a string, its quotes escaped: a tool call's arguments, `{"to": "\\"john doe\\"@example.com"}`, were
# read with none (2026-12-04)
_QUOTED_ESCAPED: Final = re.compile(rb'\\"' + _QUOTED_PART + rb'\\"' + _QUOTED_DOMAIN)
_OCTET: Final = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IP_LITERAL: Final = re.compile(
    rb"@\[(?:"
    + _OCTET
    + rb"(?:\."
    + _OCTET
    + rb"){3}|[iI][pP][vV]6:([0-9A-Fa-f:.]{2,45})|([0-9A-Fa-f.]*:[0-9A-Fa-f:.]+))\]"
)  # (an IPv4 address's octets checked here: a match has no Python to run; an IPv6 one without its `IPv6:` tag,
# `alice@[2001:db8::1]`, parsed, is one too since 2026-12-05)
# a quoted local part that ends where an IP address in brackets starts (`"a b"@[1.2.3.4]`: none until 2026-12-05)
_QUOTED_LOCAL: Final = re.compile(rb'"' + _QUOTED_PART + rb'"\Z')
# the same in JSON in a string, its quotes escaped (`{"to": "\\"john doe\\"@[192.0.2.1]"}`: none until 2026-12-05, review)
_QUOTED_LOCAL_ESCAPED: Final = re.compile(rb'\\"' + _QUOTED_PART + rb'\\"\Z')
# what a local part a file's name goes on after ends in no more than a word does (`_ends`)
_LOCAL_ENDS: Final = frozenset(b"+-.%")
# what a file's name goes on with after an address's top-level domain (`_ends`): underscores, then words joined by
# `_` or `-` and a file's extension (2-5 letters or digits, more after a dot: `.tar.gz`; or a longer one of
# `_LONG_EXTENSIONS`), or the last of them holding a digit (`_2024`, `_v2`, `_backup_2024`), then a copy's number
# (`(1)`) or not, then no word, `(`, `[` nor `.` and a name. Any word was one since 2026-12-04, and Python's unspaced
# matrix products with an attribute after a top-level domain were addresses (`x@self.in_proj_weight[…]`,
# `q@k.to_dense()`, `w@np.ai_weights`); `alice@example.com_v2`, `…_backup_2024`, `…_2024.csv(1)` and
# `…_export.parquet` were none until 2026-12-05
_LONG_EXTENSIONS: Final = (
    b"parquet feather pickle sqlite sqlite3 backup torrent numbers keynote markdown msgpack safetensors gnumeric"
)
_FILE_NAME_AFTER: Final = re.compile(
    rb"_+(?:[0-9A-Za-z\x80-\xff]+(?:[_-][0-9A-Za-z\x80-\xff]+)*(?:\.(?:[0-9A-Za-z]{2,5}|(?i:"
    + _LONG_EXTENSIONS.replace(b" ", b"|")
    + rb")))+|(?:[0-9A-Za-z\x80-\xff]+[_-])*[A-Za-z\x80-\xff]*[0-9][0-9A-Za-z\x80-\xff]*)(?:\([0-9]{1,3}\))?"
    rb"(?![0-9A-Za-z_\x80-\xff(\[]|\.[A-Za-z_])"
)
# the rest of an A-label top-level domain after its `xn` (`_domain_end`)
_A_LABEL_REST: Final = re.compile(rb"--[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*")
_LOCAL_PART: Final = re.compile(rb"(?<![0aAxX._+-])[aAxX0._%+-]{1,64}\Z")
# Python's unspaced matrix products read as addresses (`attn=q@k.transpose(-2,-1)`, `t=X@self.coef+b`,
# `V=omega@np.linalg.inv(S)`; 2026-12-04), so a call asking about such code was refused where a zone forbids
# `pii:email` for its purpose (`_code`): a domain directly followed by one of these is a call or an index
_CALL_OR_INDEX: Final = frozenset(b"([")
# a local part glued to one of these before it (`=X@`, `(h@`, `*a@`) is code, unless the domain ends in a top-level
# domain mail is sent to: a delegated one (`_ASCII_TLDS`, `_IDN_TLD_SET`, an A-label `xn--…`: `_code`) or a name used
# privately (`bob@corp.local`; RFC 6762's appendix G, RFC 6761, RFC 9476). Without `intranet`, `private` and A-labels,
# `user=bob@mail.intranet` and `email=jane@example.xn--p1ai` were code (2026-12-04, review)
_CODE_BEFORE: Final = frozenset(b"=+-*/(%,[")
_MAIL_TLDS: Final = _ASCII_TLDS | frozenset(
    (
        "local",
        "internal",
        "intranet",
        "private",
        "corp",
        "lan",
        "home",
        "localdomain",
        "localhost",
        "alt",
        "test",
        "example",
        "invalid",
    )
)
# and glued so and followed by `(` or `[`, it is code unless its top-level domain is one of these, no Python name
# (`out=x@w.to(device)`, `x@df.at[i]` are code): `email=alice@example.com(work)`, RFC 5322's
# `(alice@example.com(home))` and `cc=alice@example.com[0]` were (2026-12-04, review)
_PYTHON_COUNTRIES: Final = frozenset(("to", "at", "in", "is", "as", "do", "id", "it", "me", "my", "no", "so"))
_COMMENTED_TLDS: Final = frozenset(("com", "org", "net", "edu", "gov", "mil")) | frozenset(
    tld for tld in _ASCII_TLDS if len(tld) == 2 and tld not in _PYTHON_COUNTRIES
)
# delegated top-level domains that are the names of attributes and methods of tensors, arrays, frames and models, and
# seldom take mail: glued to an operator or `=` (`_OPERATORS`: `y=x@self.weight.data`) or followed by `(` or `[` with
# these or `_PYTHON_COUNTRIES` but Python's keywords, no attribute's name (`y = x@w.to(device)`), an address is a
# matrix product, unless the name it is assigned to is a mail's (`_MAIL_KEYS`). Both were addresses until 2026-12-05;
# glued to `(`, `[` or `,` (prose, a Markdown link, a CSV row: `(bob@firma.to)`, `alice,alice@shop.new,2024`), or
# `.in`, `.is`, `.as` called (`bob@company.in(office)`, `bob@firma.is[1]`), they were none that day (review)
_ATTRIBUTE_TLDS: Final = frozenset(
    ("data", "to", "dot", "map", "fit", "new", "run", "show", "read", "save", "open", "next", "select", "call")
)
_CALLED_TLDS: Final = _ATTRIBUTE_TLDS | (_PYTHON_COUNTRIES - frozenset(("in", "is", "as")))
# an address read so is one still where it is named as mail is (`_named`): a local part of 2 characters or more, a
# domain whose first label has 3 or more and none that is a Python name's (`self`, `cls`, an `_`: `x@self.w.data`,
# `v = x@df.at[0]`); and, followed by `(` or `[`, where it stands in prose (`_in_prose`): first in the text or a line, or
# after a space that no operator, `=`, `,` or opening bracket, nor one of these keywords, is before.
# `write to alice@gmx.at(home)`, `bob@uni.no(office)`, `x=bob@corp.data` and `x=alice@example.com_v2` were code until
# 2026-12-05 (helper emails)
_CODE_NAMES: Final = frozenset((b"self", b"cls"))
_CODE_KEYWORDS: Final = frozenset(
    (b"return", b"yield", b"lambda", b"await", b"assert", b"del", b"else", b"elif", b"print")
)
_OPERAND_BEFORE: Final = frozenset(b"=+-*/%(,[<>&|^~@{")
# the character before a stream scanner's window (`_Text.ahead`) after which what starts it may stand in prose: none
# (the text's start), a line's end, white space (what is before it unknown)
_PROSE_AHEAD: Final = frozenset(("", "\n", "\r", " ", "\t"))
_OPERATORS: Final = frozenset(b"=+-*/%")
# the classes of what may go on after an address a stream scanner's window ends in (`_unfinished`): a file's name after
# underscores, a domain's next label after `.` or `-`
_ADDRESS_GOES_ON: Final = frozenset(b"0aAxX_.-")
# a name that an address glued to `=` is assigned to, that holds one (`user=bob@corp.acme`, `?to=…`, `reply_to=…`): an
# address then, whatever its top-level domain (`_code`); a made-up private one was code until 2026-12-05
_MAIL_KEYS: Final = frozenset(
    (
        "email",
        "mail",
        "user",
        "username",
        "login",
        "to",
        "from",
        "cc",
        "bcc",
        "sender",
        "recipient",
        "rcpt",
        "addr",
        "address",
        "contact",
        "account",
        "owner",
        "author",
        "admin",
        "reply",
    )
)
_KEY_BEFORE: Final = re.compile(rb"[0-9A-Za-z_-]{1,40}\Z")
# its words, split at `_`, `-` and camelCase (`replyTo`, `toAddress`: none until 2026-12-05, review)
_KEY_WORD: Final = re.compile(rb"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# and glued so, a file's name after an address (`_FILE_NAME_AFTER`) ends in a file's extension (2-5 characters), not
# an attribute (`y=x@self.in_proj.bias`): Python 3.11's `mimetypes` table and the files mail and exports are named
# with that it lacks (`.log`, `.md`, `.docx`, `.yaml`, `.webp`). Written here, not read from `mimetypes`: its
# `MimeTypes()` read the system's mime.types files at import (`mimetypes.init()`), and its table differs by Python
_EXTENSIONS: Final = frozenset(
    b"""
3g2 3gp 3gpp 3gpp2 aac adts ai aif aifc aiff ass au avi avif bat bcpio bin bmp br bz2 cdf cpio csh css csv dll doc
dot dvi eml eps etx exe gif gtar gz h5 hdf heic heif htm html ico ief jpe jpeg jpg js json ksh latex loas m1v m3u m3u8
man me mht mhtml mif mjs mov movie mp2 mp3 mp4 mpa mpe mpeg mpg ms n3 nc nq nt nws obj oda opus p12 p7c pbm pdf pfx
pgm pl png pnm pot ppa ppm pps ppt ps pwz py pyc pyo qt ra ram ras rdf rgb roff rtx sgm sgml sh shar snd so src srt
svg swf tar tcl tex texi tif tiff tr trig tsv txt ustar vcf vtt wasm wav webm wiz wsdl xbm xlb xls xml xpdl xpm xsl
xwd xz zip
log md yaml yml toml ini cfg conf jsonl ndjson arrow docx docm xlsx xlsm pptx odt ods odp
odg rtf epub 7z rar tgz tbz2 txz zst lz lzma lz4 webp jxl psd dng flac ogg oga ogv m4a m4v mkv wma wmv flv mbox msg
ics ical sql db db3 bak tmp orig pgp gpg asc pem crt cer der p7s p7m ipynb xhtml
""".split()
    + _LONG_EXTENSIONS.split()
)
_ADDRESSES: list[re.Pattern[str]] = []  # `_address_patterns`, made once
# the class string with every byte a local part may hold (`_EMAIL_WIDE`) as `l`, the rest `#`
_LOCAL_RUNS: Final = bytes(108 if byte in b"aAxX0._%+~-" else 35 for byte in range(256))
# every `@` that is no more than 320 characters from the next: the text an address around them may take up
# (64 before an `@`, 256 after), found in one match, so a region dense with `@` is searched once
_AT_NEAR: Final = re.compile(rb"@(?:[^@]{0,319}+@)*+")  # (possessive: no state kept to backtrack into)


def _cards(t: _Text) -> Iterator[tuple[int, int]]:
    """Luhn-valid numbers of 13-19 digits: split by single spaces or dashes in groups of three digits or more but the
    last (`_SHORT_GROUP`), not inside a word; as
    four groups of four by dots or slashes; as four groups of four (or 4-6-5) by colons, bars or pluses, or by tabs,
    newlines, commas, underscores or wider white space, only if they start as payment cards do and the same
    separator joins no more numbers to them (nor are they an IPv6 address's groups, `fe80::4111:1111:1111:1111`, or
    a sum, `...=`). The wider the separator, the more other numbers it joins (dates, versions, table rows and
    columns), so the narrower the shape taken; a row of four numbers that passes all this (1 in ~20 at random) is
    read as a card."""
    classes, pos, stop = t.classes, t.first, t.stop
    # where the last candidate read as none ended, the search going on from there (-1: none): a candidate starting
    # there, or one space or dash after it, is inside the same run of numbers (`_in_run`); a stream scanner's window
    # whose tail was cut in a run starts inside it (`_Text.in_run`)
    run_on = t.in_run
    # each finder searches on from where its last match ended, as `finditer` does (none matches ""), without the
    # iterator object finditer makes (a third of a finder's time on a kilobyte of prose)
    while (m := _CARD.search(classes, pos, stop)) is not None:
        start, end = m.span()
        if _ends_a_window(t, end):
            # (a stream scanner's window, its run going on past it: read with what follows in the next, from where the
            # run starts, or from where the window was cut in it. Read here, its last candidate cut short, `4111 1111
            # 1111 1111 12` then `12 12 …`, was a card and an expiry, none whole, until 2026-12-05, helper detectors)
            break
        inside = _in_run(classes, run_on, start)
        run_on = end
        # (after a first group of nine digits or more, a phone's or an id's, no card, the search goes on from its end:
        # `13800138000 4111 1111 1111 1111`, a CN mobile before a card, was cut at the card's second group, and no card
        # was found before 2026-12-05. One C call on the line every candidate runs: a run of `1 1 1 …` costs nothing)
        pos = end if inside or not classes.startswith(_NINE, start) else _after_long_group(classes, start, end)
        if not inside and (past := _past_iban(t, start)) > 0:
            pos, run_on = past, -1
            continue  # an IBAN's digits: the search goes on after it, a card there read as after a space
        if not inside and start >= 10 and classes[start - 2] in _LETTERS and _in_iban(t, start, end):
            continue  # an IBAN's account digits after its bank's letters (`GB09 RZNL 6907 0293 1375 85`): the IBAN's
        if inside:
            # (inside a longer run of numbers, read from its start: no card in groups there, wherever it lies; one
            # written without spaces is still read as it is alone, `_card_alone`)
            within = _card_alone(t, start, end)
            if within is not None:
                pos, run_on = within[1], -1
                yield within
            continue
        # (a double dash after it, prose's, `4111 1111 1111 1111--please`, joins it to nothing, as before it)
        if _card_joined_before(t, start) or (
            (after := t.after(end)) in _CARD_JOINED and (after != 45 or t.after(end + 1) != 45)
        ):
            beside = _run_beside(t, start, end)
            within = _card_within(t.raw, start, beside, not _after_a_dot(t, start)) if beside > 0 else None
            if within is not None and within[0] == start and _EXPIRY.fullmatch(t.raw, within[1], beside) is not None:
                pos, run_on = beside, -1
                yield within
                continue
            if within is None or not _set_apart(t, start, beside, within):
                within = _card_alone(t, start, end) or (within and _set_apart_after(t, start, beside, within))
            # (a longer run, two phones about a card, read only where `_BETWEEN_PHONES` matches, at C speed: few runs)
            if within is None and (beside > 0 or _BETWEEN_PHONES.match(classes, start) is not None):
                within = _card_before_phone(t, start, beside) if beside > 0 else _card_between_phones(t, start)
            if within is not None:
                pos, run_on = within[1], -1
                yield within
                continue
            dictated = _dictated_run(t, start) if t.after(end) == 48 else -1
            if dictated > 0 and _spelled_out(t, start, dictated, t.raw[start:dictated]):
                pos, run_on = dictated, -1
                yield start, dictated
                continue
            pos = _searched_on(t, start, end)
            continue  # part of a longer number, or of a word: a hex id's digits (`…3a7535740003305…`), a UUID's
        if (
            t.before(start) == 46
            and t.before(start - 1) == 48
            and _DIGITS.fullmatch(classes, start, end) is not None
            and not _iban_ends_at(t, start - 1)
        ):
            continue  # a decimal number's fraction: a double's 15-17 digits (`-0.07967057352398446`) pass Luhn 1 in 10
        candidate, expiring = t.raw[start:end], classes[end - 3] == 32 or classes[end - 5] == 32
        if _card(candidate) and not _international_phone(t, start, end) and not _after_area_code(t, start, end):
            run_on = -1
            yield start, end
            continue
        if _spelled_out(t, start, end, candidate):
            run_on = -1
            yield start, end
            continue
        # (a last group of two digits or four: an expiry's too, after a card of 13-15 digits dictated, `_dictated_within`;
        # tested on a line already run, as a run of `1 1 1 …` runs no line more a candidate)
        within = _dictated_within(t, start, end) if expiring else _card_within(t.raw, start, end)
        if within is None and t.after(end) == 32 and t.after(end + 1) == 48:
            within = _card_in_run_on(t, start)
        if within is not None and not (within[0] == start and _after_a_dot(t, start)):
            pos, run_on = max(pos, within[1]), -1
            # (not a decimal's fraction before a number, `0.0602574471507 0.04`, as it is alone; after an IBAN's dot,
            # a card as after a space, `…3000.4111111111111111 1 2`, in clear read whole until 2026-12-07)
            yield within
    pos = t.first
    while (grouped := _CARD_GROUPED.search(classes, pos, stop)) is not None:
        start, end = grouped.span()
        pos = end
        if t.before(start) == 48 or t.after(end) == 48:
            if t.before(start) == 48 and grouped["sep"] == b".":
                pos = _after_iban_within(t, start, end)  # (from a compact IBAN's last digits: `…3000.4111.1111.…`)
            continue
        sep = grouped["sep"]
        if sep in b"./":  # only as four groups of four: dots and slashes join other numbers
            if (
                end - start != 19
                or (t.before(start) in b"./" and t.before(start - 1) == 48 and not _iban_ends_at(t, start - 1))
                or (t.after(end) in b"./" and t.after(end + 1) == 48)
            ):
                pos = _after_iban_within(t, start, end)
                continue  # joined by a dot or a slash to more digits: a longer dotted number, or a date
        elif not _issued(t.raw[start : start + 4]):
            continue
        elif sep in b":|+":
            if (t.before(start) == sep[0] and t.before(start - 1) == 48) or (
                t.after(end) == sep[0] and t.after(end + 1) == 48
            ):
                continue  # joined by it to more digits: a longer number, a sum, a row
            if sep == b"+" and t.raw[end : end + 2].lstrip(b" ").startswith(b"="):
                continue  # a sum written out: `4111+1111+1111+1111=7444`
            if sep == b":" and (t.before(start) == 58 or t.after(end) == 58) and _in_ipv6(t, start, end):
                continue
        elif _in_a_row(classes, start, end, sep):
            run = _TABLE_RUN[32 if sep.isspace() else sep[0]].match(classes, end)  # matches, if only ""
            pos = run.end() if run is not None else end
            while pos > end and classes[pos - 1] == 48:  # the run's last number may start a card written otherwise
                pos -= 1
            continue
        if _card(t.raw[start:end]):
            yield start, end
    pos = t.first
    while (after_phone := _PHONE_THEN_CARD.search(classes, pos, stop)) is not None:
        pos = after_phone.end()
        if _phone_before_card(t, after_phone.start(), pos) is not None:
            yield pos - 19, pos
    pos = t.first
    while (among := _CARD_AMONG.search(classes, pos, stop)) is not None:
        start, end = among.span()
        # (the next dash, dot, bracket or `+` from as far back as the card's run is read: none, or none near, and the
        # groups are split by spaces alone there, a row's, gone past in C)
        mark = _AMONG_MARK.search(classes, max(0, start - 1 - _AMONG_MOST))
        if mark is None:
            break
        if mark.start() > end + _AMONG_MOST:
            pos = mark.start() - _AMONG_MOST - (end - start)
            continue
        low = start - 1 - _AMONG_MOST
        if (
            low > 0
            and not classes[low - 1 : start - 1].translate(None, _AMONG_RUN_BYTES)
            and b"  " not in classes[low:start]
        ):
            # (the run reaches past what is read before it, a row's (`_among_set_apart`), and so for every group after
            # it in the run: gone past in C to the run's end. Tried group by group, a run of numbers with a dash in each
            # 48 characters took 2.1-2.6 times as long to scan as with no card among values looked for, till 2026-12-07)
            run = _AMONG_RUN_ON.match(classes, start)
            pos = run.end() if run is not None and run.end() > start else start + 1
        elif not _issued(t.raw[start : start + 4]):
            # (no issuer's first digits, as `_among_set_apart` reads them first: refused before the numbers before it
            # are read, as until 2026-12-07. Read after them, runs of groups of four beside a `+` phone or a date,
            # `+44 20 7946 0958 1234 5678 9012 3456 555-1-1`, took 1.2-1.7 times the Python steps of a scan without
            # the pass, 1.1-1.2 before; review revdet16)
            pos = start + 1
        elif among["first"] is not None and not _marked_after(classes, end):
            pos = start + 1  # (first in its run, the values after it none told apart, or a row's: refused in C)
        elif among["first"] is None and not _marked_before(classes, max(0, low), start - 1):
            # (no dash, dot, bracket or `+` in the run's numbers just before it: none of them a value told apart, each of
            # which holds one within `_AMONG_TOKENS` numbers, `_value_apart`; refused here in C, not read group by
            # group), nor before any group up to the next such mark (the card's groups hold none): gone on to it
            ahead = _AMONG_MARK.search(classes, end)
            if ahead is None:
                break
            pos = ahead.start()
        elif _among_set_apart(t, start, end):
            pos = end
            yield start, end
        else:
            pos = start + 1  # (a card may start at the next group: `+44 20 7946 0958 4111 …`)
    pos = t.first
    while (listed := _LISTED_DIGITS.search(classes, pos, stop)) is not None:
        start, end = listed.span()
        pos = end
        if _listed_card(t, start, end, b"\t" if classes[start + 1] == 9 else b"," + listed["space"]):
            yield start, end


# a card in groups as cards are written (4-4-4-4, 4-6-5) after a number and a space: the middle of a run of numbers
# (`_among_set_apart`), searched for at C speed
# (or one first in its run, `first`, whose next value is one written with a dash, dot or bracket, or after a `+`:
# `4111 1111 1111 1111 555-987-6543 555-123-4567`, in clear until 2026-12-07, helper det17)
_CARD_AMONG: Final = re.compile(
    rb"(?<=[0)] )(?:0000 0000 0000 0000|0000 000000 00000)(?![0-]|\.0)"
    rb"|(?<![0().+-])(?<![0)] )(?P<first>0000 0000 0000 0000|0000 000000 00000)(?= (?:[(+]|0+[().+-]))"
)
# the most characters of a run of numbers read on either side of such a card, and the most spaces one value there holds
# (`+44 20 7946 0958`: three)
_AMONG_MOST: Final = 48
_AMONG_TOKENS: Final = 4


def _among_set_apart(t: _Text, start: int, end: int) -> bool:
    """Whether a card in groups (`_CARD_AMONG`, `start:end`) stands in a run of numbers whose rest on either side is
    values each read as it is alone and told apart from it: phones written with dashes, dots or brackets or after a
    `+` (`555-123-4567`, `+1-555-123-4567`, `+44 20 7946 0958`), dates (`2024-01-05`). Read as a row's, the card was
    in clear after two phones (`555-123-4567 555-987-6543 4111 …`), between a date and a phone, among three phones,
    after `+1-555-123-4567`, and between two phones the first after its country code, `+44 20 7946 0958 4111 …
    555-987-6543`, until 2026-12-07 (helper det15). A row of numbers split by spaces alone stays none (`1234 4111 1111
    1111 1111`): five random groups of four held a card 1 time in 6 (`_run_beside`)."""
    raw, classes = t.raw, t.classes
    if not _issued(raw[start : start + 4]) or not _card(raw[start:end]):
        return False
    low = max(0, start - 1 - _AMONG_MOST)
    high = min(len(classes), end + 1 + _AMONG_MOST)
    first = start - 1
    while first > low and classes[first - 1] in _AMONG_RUN and not (classes[first - 1] == 32 == classes[first]):
        first -= 1
    if first == low and low > 0 and classes[low - 1] in _AMONG_RUN:
        return False  # (a longer run: a row's)
    if first > 0 and classes[first - 1] in _LETTERS and (gap := classes.find(b" ", first, start)) > first:
        # (marks with no digit after a word and before a space, its own: `Tel. +44 20 7946 0958 4111 … 555-987-6543`,
        # `No. 555-123-4567 555-987-6543 4111 …`; read as joining the run to the word, the card was in clear until
        # 2026-12-07, review revdet16)
        first = first if 48 in classes[first:gap] else gap + 1
    if first > 0 and (classes[first - 1] in _CARD_JOINED or classes[first] == 32):
        first += 1 if classes[first] == 32 else 0
    if first < start - 1 and classes[first] == 45 and (first == 0 or classes[first - 1] in (32, 95)):
        # (dashes before its first value, after a space or a word's `_`: a prose dash and its space, `end - 2024-01-05
        # 4111 … 555-123-4567`, or ones before a `+` the phone finder reads from, `-+44 20 7946 0958 4111 …
        # 555-987-6543`, not the run's; read as its first value, the card was in clear until 2026-12-07, helper det17)
        dashes = first
        while dashes < start - 1 and classes[dashes] == 45:
            dashes += 1
        if classes[dashes] == 32 and dashes == first + 1:
            first = dashes + 1
        elif raw[dashes] == 43:
            first = dashes
    if first > 0 and classes[first - 1] in _CARD_JOINED and not (raw[first] == 43 and classes[first - 1] in (45, 95)):
        return False  # (joined to a word or a longer number; a `+` after a dash or a `_` starts a phone, `_+44 …`)
    last = end
    if t.after(end) == 32 and t.after(end + 1) in _AMONG_OPENS:
        walked = _AMONG_WALK.match(classes, end + 1, high)
        last = walked.end() if walked is not None else end + 1
        if (
            (last == high < len(classes) and classes[high] in _AMONG_RUN)
            or t.after(last) in _CARD_JOINED
            or _ends_a_window(t, last)
        ):
            return False  # (a longer run, one joined to more, or one a stream's next window may go on with)
    elif t.after(end) in _CARD_JOINED:
        return False
    if first >= start - 1 and last == end:
        return False  # (a card alone: `_cards` reads it so)
    return _values_apart(t, first, start - 1) and _values_apart(t, end + 1, last)


# what a run of values beside such a card holds, and what may start one after it
_AMONG_RUN: Final = frozenset(b"0 ().+-")
_AMONG_MARK: Final = re.compile(rb"[().+-]")
_AMONG_RUN_BYTES: Final = bytes(_AMONG_RUN)
# a run's classes as `_marked_before` reads them: its marks one, digits and spaces as they are, the rest none of a run's
_AMONG_READ: Final = bytes(45 if byte in b"().+-" else byte if byte in b"0 " else 120 for byte in range(256))
# the rest of such a run from a group in it: its characters, no two spaces side by side
_AMONG_RUN_ON: Final = re.compile(rb"(?: ?[0().+-])++")
_AMONG_OPENS: Final = frozenset(b"0(+")


def _marked_after(classes: bytes, end: int) -> bool:
    """Whether the run after a card first in its run (`_CARD_AMONG`'s `first`, ending at `end`) may hold only values told
    apart (`_among_set_apart`): it ends within `_AMONG_MOST` characters, and each of its numbers holds a dash, a dot
    or a bracket, or one of them a `+` or a `(` (a value split by spaces starts so). Read in C: runs of groups of four,
    each run's first a card and the rest a row's, `x 4111 1111 1111 1111 555-1 1 …`, took 1.5-2.6 times the Python steps
    of a scan without the pass read in Python (helper det17)."""
    high = min(len(classes), end + 1 + _AMONG_MOST)
    walked = _AMONG_WALK.match(classes, end + 1, high)
    last = walked.end() if walked is not None else end + 1
    if last == high < len(classes) and classes[high] in _AMONG_RUN:
        return False  # (a longer run: a row's)
    return (
        classes.find(b"+", end, last) >= 0
        or classes.find(b"(", end, last) >= 0
        or _EACH_MARKED.fullmatch(classes, end, last) is not None
    )


# a run's numbers from one, single spaces between them (`_among_set_apart`, `_marked_after`), and such numbers each
# with a dash, a dot or a closing bracket in it
_AMONG_WALK: Final = re.compile(rb"[0().+-]++(?: [0().+-]++)*+")
_EACH_MARKED: Final = re.compile(rb"(?: 0*+[).-][0().-]*+)++")


def _marked_before(classes: bytes, low: int, last: int) -> bool:
    """Whether the last `_AMONG_TOKENS` numbers before `last` (a space) in its run (`_AMONG_RUN`, no two spaces side
    by side), not before `low`, hold a dash, a dot, a bracket or a `+` (`_among_set_apart`)."""
    stretch = classes[low:last].translate(_AMONG_READ) if low < last else b""
    # (its last `_AMONG_TOKENS` numbers: split off at the spaces before them in C. A space found back one at a time in
    # Python took 1.5 times the Python steps of a scan without the pass on a run of a `+` phone and groups of four no
    # card's, `+44 20 7946 0958 1234 5678 9012 3456 555-1-1`, till 2026-12-07, review revdet16)
    parts = stretch.rsplit(b" ", _AMONG_TOKENS)
    if len(parts) > _AMONG_TOKENS:
        stretch = stretch[len(parts[0]) + 1 :]
    return stretch.find(b"-", max(stretch.rfind(b"x"), stretch.rfind(b"  ")) + 1) >= 0


def _values_apart(t: _Text, first: int, last: int) -> bool:
    """Whether `first:last` is empty or values split by single spaces, each a phone written with dashes, dots or
    brackets or after a `+`, or a date, as it is alone (`_among_set_apart`)."""
    if first >= last:
        return True
    gaps = [first - 1, *[at for at in range(first, last) if t.classes[at] == 32], last]
    reached = [False] * len(gaps)
    reached[0] = True
    for i in range(len(gaps) - 1):
        if not reached[i]:
            continue
        for j in range(i + 1, min(len(gaps), i + 1 + _AMONG_TOKENS)):
            if not reached[j] and _value_apart(t, gaps[i] + 1, gaps[j]):
                reached[j] = True
    return reached[-1]


def _value_apart(t: _Text, first: int, last: int) -> bool:
    """Whether `first:last` is one phone written with dashes, dots or brackets or after a `+`, or one date: split by
    spaces only after a `+` or a `(` first."""
    if _ISO_DATE.fullmatch(t.raw, first, last) is not None:
        return True
    if t.raw[first] != 43 and _WRITTEN_AS_A_PHONE.search(t.classes, first, last) is None:
        return False
    classes = t.classes
    gap = classes.rfind(b" ", first, last)
    if gap >= 0:
        # (spaces in one only after its country code, of one to three digits, or its area code's bracket, and its last
        # group written as a phone's where any is: `555-987-6543 12`, `(555) 123-4567 1234`, `+1234 5678 9012` are a
        # row's numbers)
        marks = first + 1
        if t.raw[first] == 43:
            if (code := _COUNTRY_CODE.match(classes, first + 1, last)) is None:
                return False
            if t.raw.startswith(b"(0)", code.end()):
                marks = code.end() + 3  # (a trunk `(0)` after the code, `+44 (0)20 7946 0958`: no phone's groups' mark)
        elif t.raw[first] != 40:
            return False
        if _WRITTEN_AS_A_PHONE.search(classes, marks, last) is not None and (
            _WRITTEN_AS_A_PHONE.search(classes, gap + 1, last) is None
        ):
            return False
    return _phone(t, first, last) == (first, last)


def _listed_card(t: _Text, start: int, end: int, sep: bytes) -> bool:
    """Whether single digits split by commas or tabs (`_LISTED_DIGITS`: `4,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1`, `4\t1\t1…`)
    are a card written digit by digit, as `_spelled_out` reads one split by spaces (an issuer's first digits and
    length, Luhn, not one digit throughout nor counting, not in brackets nor on a line after a row of numbers), and
    the line before, if it ends near, is no table's header: its last characters hold fewer than three of the same
    separator (`q13,q14,q15,q16`), as a CSV's or a TSV's first row of small numbers is read after one. Since
    2026-12-05; before, no card so written was found."""
    line = t.classes.rfind(b"\n", max(0, start - _LINE_NEAR), start)
    if line > 0 and t.classes.count(sep[:1], max(0, line - _ROW_NEAR), line) >= 3:
        return False
    return _spelled_out(t, start, end, t.raw[start:end].replace(sep, b" "))


# single digits split by commas (a space after each, or none) or by single tabs, as long as a card, and no more
# numbers so joined before or after (a row's), nor a word's, a decimal's or a dashed number's (its first `0` a literal,
# the look-behinds after it: searched for at C speed, ~1.5 us/KB of prose, where a look-behind first took 30). A number
# and `, ` before: the tail of a longer list so written, `3, 3, 1, …, 9, 7`'s last 19, was a card alone one time in 56,
# until 2026-12-05 (helper revcards2)
_LISTED_DIGITS: Final = re.compile(
    rb"0(?:,(?<![0aAxX_,\t-]0,)(?<!0\.0,)(?<!0, 0,)(?P<space> ?)0(?:,(?P=space)0){11,17}"
    rb"|\t(?<![0aAxX_,\t-]0\t)(?<!0\.0\t)0(?:\t0){11,17})(?![0aAxX_-]|\.0|[,\t] ?0)"
)


def _after_long_group(classes: bytes, start: int, end: int) -> int:
    """Where the search for a card goes on after a candidate whose first group is nine digits or more: at its
    second group (`_cards`), or at its end when it is one block."""
    gap = classes.find(b" ", start, end)
    return gap + 1 if gap > 0 else end


_NINE: Final = b"0" * 9


def _in_run(classes: bytes, run_on: int, start: int) -> bool:
    """Whether a card candidate at `start` goes on the run of numbers the candidate before it, read as none, was cut
    from at `run_on` (`_CARD` takes 19 digits at most): inside a longer run, not at its start (`_cards`)."""
    return run_on >= 0 and (start == run_on or (start == run_on + 1 and classes[run_on] in _RUN_SEPARATORS))


_RUN_SEPARATORS: Final = frozenset(b" -")


def _run_beside(t: _Text, start: int, end: int) -> int:
    """Where the run of groups of digits a card candidate cut off at its 19th digit ends (`4111 1111 1111 1111 1227
    123`: a card, its expiry and its code), for `_card_within` to find the card in; -1 when it is joined to a word or
    a longer number, or goes on past `_CARD_RUN`'s eight groups (a table's row). Skipped as part of a longer number,
    a card with its expiry after it (MMYY) was never read. Only a card followed by an expiry (`_EXPIRY`), or one the
    rest of the run sets apart (`_set_apart`), is taken from such a run: five random groups of four were a card and a number beside it 1 time in 6 (3,250 of 20,000),
    with the expiry's month checked 1 in 90 (218), as no run of five read before."""
    if _card_joined_before(t, start) or t.after(end) not in _RUN_GOES_ON:
        return -1
    return _run_from(t, start)


def _run_from(t: _Text, start: int) -> int:
    """`_run_beside`'s run from `start`, a card candidate's first digit, whatever follows the candidate."""
    run = _CARD_RUN.match(t.classes, start, min(len(t.classes), start + _CARD_RUN_MOST))
    if run is None:
        return -1
    last = run.end()
    if t.after(last) in _CARD_JOINED or (t.after(last) == 32 and t.after(last + 1) == 48) or _ends_a_window(t, last):
        # (a longer run: more groups, or cut off at `_CARD_RUN_MOST`; or one going on past a stream scanner's window,
        # read with what follows in the next: read as ending there, `… 5619 7003 7208 1833 4101 0868 8640 4838 ` | `8440
        # …`, a row of groups of four, was two cards side by side, the first found, none whole, until 2026-12-05)
        return -1
    return last


# what follows a card candidate cut off at its 19th digit in a run: a digit, or a dash that ends its last group (`4111
# 1111 1111 1111 555-123-4567`: a card, then a phone written with dashes; before 2026-12-04 no card was found)
_RUN_GOES_ON: Final = frozenset(b"0-")
# a card's groups and the numbers beside them (`_run_beside`), as _CARD joins them (two cards of four groups side by
# side, at most); what goes on is a row's
_CARD_RUN: Final = re.compile(rb"0+(?:[ -]0+){1,7}")
_CARD_RUN_MOST: Final = 48
# what follows a card in such a run: its expiry, MMYY, and its code, if any
_EXPIRY: Final = re.compile(rb"[ -](?:0[1-9]|1[0-2])[0-9]{2}(?:[ -][0-9]{3,4})?")


def _set_apart(t: _Text, start: int, end: int, card: tuple[int, int]) -> bool:
    """Whether a card in groups split by single spaces at the start or the end of a run of numbers (`_run_beside`:
    `start:end`) is told apart from the rest of the run: written as cards are (4-4-4-4 or 4-6-5, its first digits a
    card's: `_issued`), and the rest a card written so too (two cards side by side, `4111 1111 1111 1111 5500 0000
    0000 0004`), or numbers none of four digits (`order 12345 4111 1111 1111 1111`), a date among them (`_ISO_DATE`,
    since 2026-12-04). Before 2026-12-04 the run was read as one longer number and no card in it was found. A row of
    groups of four alone is not (`1234 4111 1111 1111 1111`): five random such groups held a card 1 time in 6
    (`_run_beside`)."""
    raw = t.raw
    if not _card_shaped(raw[card[0] : card[1]]):
        return False
    rest = raw[start : card[0] - 1] if card[1] == end else raw[card[1] + 1 : end]
    # (not `raw[card[0] - 1 : card[0]]`: compiled by mypyc, a bytes slice whose start, made positive, is past its end
    # raises SystemError, "Negative size passed to PyBytes_FromStringAndSize", where Python gives b"")
    if (card[0] > 0 and raw[card[0] - 1] == 45) or raw[card[1] : card[1] + 1] == b"-":
        return False  # (joined by dashes: one number; a card written with dashes among numbers is `_card_alone`'s)
    if _phone_set_apart(t, start, end, card):
        return True
    numbers = rest.split(b" ")
    if b"-" in rest and not all(b"-" not in number or _ISO_DATE.fullmatch(number) for number in numbers):
        return False
    return (_card_shaped(rest) and _card(rest)) or 4 not in map(len, numbers)


def _card_in_run_on(t: _Text, start: int) -> tuple[int, int] | None:
    """The card set apart by a phone written with dashes, dots or brackets (`_phone_set_apart`) in the run of numbers a
    candidate of 19 digits that is none goes on past after a space, read from the candidate's start as one cut inside
    its run is (`_run_beside`): `(555) 123-4567 4111 1111 1111 1111`, the candidate the phone's last groups and the
    card's first three, its last group past the candidate's end. Read from the candidate alone, the card was left in
    clear until 2026-12-07 (125 of 150 random cards after a phone so written). (A card after numbers so cut, `order
    12345 12346 12347 4111 …`, stays none, as before: `test_detector_phones_beside_times`.)"""
    beside = _run_from(t, start)
    if beside < 0:
        # (a longer run: two phones about the card, `(555) 123-4567 4111 …`)
        return _card_between_phones(t, start) if _BETWEEN_PHONES.match(t.classes, start) is not None else None
    from_first = not _after_a_dot(t, start)
    within = _card_within(t.raw, start, beside, from_first)
    while within is not None and not (
        _set_apart(t, start, beside, within) and _phone_set_apart(t, start, beside, within)
    ):
        within = _card_within(t.raw, start, beside, from_first, within)
    return within


def _card_before_phone(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The card set apart (`_set_apart`) in a run of numbers (`_run_beside`, `start:end`) without the phone written with
    dashes, dots or brackets that ends it, read as that run alone with the phone beside it: `ref 12 4111 1111 1111 1111
    555-123-4567`, the card neither first nor last in the run, was left in clear until 2026-12-07."""
    classes = t.classes
    gap = classes.rfind(b" ", start, end)
    if gap <= start:
        return None
    first = _phone_piece_start(classes, gap + 1)
    piece = _PHONE_PIECE.match(classes, first)
    if piece is None or _WRITTEN_AS_A_PHONE.search(classes, first, piece.end()) is None:
        return None
    last = first - 1
    if last <= start or classes[last] != 32 or _phone(t, first, piece.end()) != (first, piece.end()):
        return None
    within = _card_within(t.raw, start, last, not _after_a_dot(t, start))
    if within is None or within[1] != last or not _set_apart(t, start, last, within):
        return None
    return within


def _card_between_phones(t: _Text, start: int) -> tuple[int, int] | None:
    """The card in groups split by single spaces (`_card_shaped`) between two phones written with dashes, dots or
    brackets in a run of numbers that starts at a card candidate's `start` (in the first phone) and ends after the
    second, each read as it is alone (`555-123-4567 4111 1111 1111 1111 555-987-6543`, `(555) 123-4567 4111 …
    555-987-6543`): a run longer than `_run_beside` reads (two cards' groups), read as a row's, and the card was left in
    clear, by `scan` and `mask` alike, until 2026-12-07 (helper det13). None when the run is not so, or goes on."""
    classes = t.classes
    first = _phone_piece_start(classes, start)
    piece = _PHONE_PIECE.match(classes, first)
    if piece is None or t.after(piece.end()) != 32:
        return None
    card = _SHAPED.match(classes, piece.end() + 1)
    if card is None:
        return None
    then = card.end()  # (after its space)
    after = _PHONE_PIECE.match(classes, then)
    if after is None or _WRITTEN_AS_A_PHONE.search(classes, then, after.end()) is None:
        return None
    last = after.end()
    if (
        t.after(last) in _CARD_JOINED
        or (t.after(last) == 32 and t.after(last + 1) == 48)  # (more numbers: a row's, as `_run_from` reads one)
        or _ends_a_window(t, last)
        or _phone(t, first, piece.end()) != (first, piece.end())
        or _phone(t, then, last) != (then, last)
    ):
        return None
    span = card.start(), card.end() - 1
    raw = t.raw[span[0] : span[1]]
    return span if _card_shaped(raw) and _card(raw) else None


# a card's groups as cards are written (4-4-4-4, 4-6-5) and the space after them (`_card_between_phones`)
_SHAPED: Final = re.compile(rb"(?:0000 0000 0000 0000|0000 000000 00000) ")
# a card candidate's start that may be a phone's last groups written with dashes, dots or brackets, a card so grouped
# and a second phone's start (`_card_between_phones`, read only where this matches)
_BETWEEN_PHONES: Final = re.compile(rb"0+[().-][0().-]{0,14} (?:0000 0000 0000 0000|0000 000000 00000) \(?0")


def _phone_set_apart(t: _Text, start: int, end: int, card: tuple[int, int]) -> bool:
    """Whether the rest of a card's run (`_set_apart`) is one phone written with dashes, dots or brackets, as it is alone
    (`4111 1111 1111 1111 555-123-4567`, `555-123-4567 4111 1111 1111 1111`): before 2026-12-04 the run was one number
    and only the phone was found."""
    first, last = (_phone_piece_start(t.classes, start), card[0] - 1) if card[1] == end else (card[1] + 1, end)
    if first > 0 and t.raw[first - 1] == 43 and (code := _COUNTRY_CODE.match(t.classes, first, last)) is not None:
        first = code.end()  # (`+1 555-123-4567 4111 …`: its country code before it, `+` first, the phone's own)
    if (
        _PHONE_PIECE.fullmatch(t.classes, first, last) is None
        or _WRITTEN_AS_A_PHONE.search(t.classes, first, last) is None
    ):
        return False  # (one number so written, as `_phone_among` reads one: `2024-01-15 1234` is a date and a number)
    return _phone(t, first, last) == (first, last)


def _phone_piece_start(classes: bytes, start: int) -> int:
    """Where the phone a card's run (`_run_beside`) starts inside begins: the run is its groups split by spaces or
    dashes, so a phone written with dots or brackets before the card is cut at its last dot or bracket (`555.123.4567
    4111 …` from `4567`, `(555) 123-4567 4111 …` from `123`), and read from there it was no phone and the card was
    none, in clear until 2026-12-07. At most `_PHONE_PIECE_BACK` characters back, as a phone is written, and not past a
    dash: a run starts after one only where an IBAN ends (`_card_joined_before`), whose digits are no phone's. (Not
    `classes[first - 2 : first]` at `first` 1: compiled by mypyc, a start past the end once made positive raises
    SystemError, as `_set_apart` notes; `\n555-123-4567 4111 …`, a run one character into the text, did until 2026-12-07.)"""
    first, low = start, max(0, start - _PHONE_PIECE_BACK)
    while first > low and (
        classes[first - 1] in _PHONE_PIECE_JOINTS or (first > 1 and classes[first - 2 : first] == b") ")
    ):
        first -= 1
    return first


_PHONE_PIECE_JOINTS: Final = frozenset(b"0().")
# a phone's country code after its `+` and the space after it (`_phone_set_apart`)
_COUNTRY_CODE: Final = re.compile(rb"0{1,3} ")
_PHONE_PIECE_BACK: Final = 16


# a date as a statement's or a log's rows write it before a card (`2024-01-15 4111 1111 1111 1111`): a number of
# its own, of no four digits (before 2026-12-04 its dashes joined the run into one number, and no card was found)
_ISO_DATE: Final = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _card_shaped(candidate: bytes) -> bool:
    """Whether digits split by single spaces are grouped as cards are (4-4-4-4, 4-6-5), their first four a card's."""
    return list(map(len, candidate.split(b" "))) in ([4, 4, 4, 4], [4, 6, 5]) and _issued(candidate[:4])


def _card_alone(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The first card written without spaces (one block of 13-19 digits, or groups joined by dashes) that starts in
    a run of numbers a card candidate split by spaces joined (`start:end`), read as it is alone: `order 12345
    4111111111111111`, `4111-1111-1111-1111 5500-0000-0000-0004`. Before 2026-12-04 the run was read as one longer
    number and no card in it was found."""
    classes = t.classes
    token = start
    if _card_joined_before(t, start):  # (its first numbers end a word: the card is after them, if any)
        token = classes.find(b" ", start, end) + 1
        if token == 0:
            return None
    last = min(len(classes), end + _CARD_ALONE_MOST)
    if classes.find(b"-", token, last) < 0 and classes.find(_THIRTEEN, token, last) < 0:
        return None  # (no dash and no 13 digits in a row: no such card, found at C speed; a row of numbers seldom has)
    # (one search: within the candidate, only a space stands before a number but at its start; after a dash that joins
    # no number there, an id's label's or an IBAN's end, `_card_joined_before`, read from it as after a space: the
    # search's look-behind refused it, and `INV-4111111111111111 12x`, `DE89-….00-4111111111111111 12x` were in clear
    # whole, found streamed in a window ending before the word, until 2026-12-07)
    at_dash = _CARD_ALONE_AT.match(classes, token, last) if token == start > 0 and classes[start - 1] == 45 else None
    while (alone := at_dash or _CARD_ALONE.search(classes, token, last)) is not None:
        at_dash = None
        span = alone.span()
        if span[0] > end:
            return None
        if (
            t.after(span[1]) not in _CARD_JOINED
            and _card(t.raw[span[0] : span[1]])
            and not _international_phone(t, *span)
        ):
            return span
        token = span[1]
    return None


# a card written without spaces: digits joined by single dashes, starting and ending where its digits and dashes do;
# and the most characters it takes up
_CARD_ALONE: Final = re.compile(rb"(?<![0-])0(?:-?0){12,18}(?![0-])")
_CARD_ALONE_AT: Final = re.compile(rb"0(?:-?0){12,18}(?![0-])")  # (the same, matched after a dash that joins nothing)
_CARD_ALONE_MOST: Final = 37
_THIRTEEN: Final = b"0" * 13


def _international_phone(t: _Text, start: int, end: int) -> bool:
    """Whether a run of digits is a phone in international form: after a `+`, at most 15 digits (E.164's most; no
    card is written after a `+`). 13-15 digits (`+49 151 12345678`, `+55 11 98765 4321`, `+86 13812345678`) passed
    Luhn 1 time in 10, so a tenth of German, Brazilian, Chinese mobiles were cards too. A `+` after a word joins it
    (a form's or a query's space, `pay+with+378282246310005`): a card there is still one."""
    return t.before(start) == 43 and t.before(start - 1) not in _WORDISH and t.classes.count(48, start, end) <= 15


def _after_area_code(t: _Text, start: int, end: int) -> bool:
    """Whether a card candidate at `start:end` is the rest of a North American phone whose area code is in brackets
    before it and a phone written with a dash or a dot after it (`(555) 987-6543 555-123-4567`, `(555) 987 6543
    555.123.4567`): two phones, each read whole, no card. Read as one, the 17 digits from `987` passed Luhn, a card
    masked on the space between the phones until 2026-12-07 (helper det19); a card after an enumeration's bracket,
    `(1) 4111 1111 1111 1111`, is one still, and so is one grouped otherwise (`_PHONE_REST`)."""
    return (
        start >= 6
        and _AREA_CODE_BEFORE.match(t.classes, start - 6, start) is not None
        and t.raw[start - 5] in b"23456789"  # (an area code North America's: `(020) 7946 0958 …` is none, a card's)
        and _PHONE_REST.fullmatch(t.classes, start, end) is not None
        # (split by a space, `987 6543`, after a number, `+1 (555) 987 6543 555-…`: a row's, no phone found there, the
        # card's digits in clear so)
        and (t.classes[start + 3] != 32 or start < 8 or 48 not in (t.classes[start - 7], t.classes[start - 8]))
    )


# an area code in brackets and its space, before where a card candidate starts
_AREA_CODE_BEFORE: Final = re.compile(rb"\(0{3}\) ")
# and a phone of ten digits after it written with a dash or a dot, as North America's are (`_after_area_code`): `(555)
# 4111 1111 1111 1111` is a card, and so is `987-6543-555-123-4567` after `(555) `, one longer number, joined, and one
# whose groups are others, `(555) 3782 8224 631 0005`, `(555) 4985 7229 697-329-1501` (in det19's first form the first
# in clear, the second's first eight digits: any 3-4 or 4-4 and a space after an area code refused a card, and the
# phones read there were not all of its digits; review revdet19)
_PHONE_REST: Final = re.compile(rb"0{3}[ .-]0{4} 0{3}[ .-]0{3}[.-]0{4}")


def _searched_on(t: _Text, start: int, end: int) -> int:
    """Where the search for a card or a phone goes on after a candidate that is none: after its first space when
    it starts with a word's last digits (`COVID19 4111 1111 1111 1111`, `ref A1 415-555-2671`, a hex id's
    `…f176b0fe97e3 415-555-2671`) or a time's minutes before a phone (`at 10:30 555-123-4567`, `_minutes_before`,
    since 2026-12-04: the phone was found with them and masked `10:[pii:phone]`), as the value after is searched for
    alone; else at its end. Searched on
    from its end, the value the word's digits ran into was never read. An IBAN's groups after its country and check
    digits (`DE89 3704 0044 …`, `NO93 8601 1117 947`) are searched on from the end: an account's number, no card or
    phone."""
    if (gap := _minutes_before(t, start, end)) > 0:
        return gap + 1
    if t.before(start) in _LETTERS and not _iban_head(t, start):
        gap = t.classes.find(b" ", start, end)
        if gap > 0:
            return gap + 1
    return end


def _minutes_before(t: _Text, start: int, end: int) -> int:
    """Where a candidate after a colon whose first digits are a time's minutes, and the rest written as a phone (`at
    10:30 555-123-4567`, `09:15 (555) 123-4567`), has the white space after them; -1 when it is not so. Numbers split by
    spaces alone after a time, `HH:MM` (`12:30 1234 5678 9012`), are read without its minutes too: before 2026-12-04
    they were read with them, and masked `12:[pii:phone]`. After a word's colon, a first group without a dot is no
    minutes but the phone's (`Phone:555 123-4567`, `Fax:(555) 123-4567`: before 2026-12-05 it was read as minutes, and no phone was found);
    one with a dot is still read apart (`M:155.90 (148.35%)`, `arXiv:2412.20317 (2024)`)."""
    colon = _colon_before(t, start)
    if colon < 0:
        return -1
    hour = _a_digit_before(t, colon)
    if hour and start + 2 < end and t.classes[start + 1] == 48 and t.classes[start + 2] == 32:
        return start + 2  # (a time's two digits of minutes, then a space)
    gap = t.classes.find(b" ", start, end)
    if gap < 0 or _WRITTEN_AS_A_PHONE.search(t.classes, gap, end) is None:
        return -1
    if not hour and t.classes.find(b".", start, gap) < 0 and t.classes.count(48, gap, end) < 9:
        return -1  # (a word's number before a whole phone is its own, `Room:12 555-123-4567`)
    return gap


def _colon_before(t: _Text, index: int) -> int:
    """Where the colon before `index` starts, ASCII's or one NFKC reads as it (`12：30`, fullwidth); -1: none."""
    byte = t.before(index)
    if byte == 58:
        return index - 1
    if byte == 126 and index >= 3 and t.raw[index - 3 : index] in _WIDE_COLONS:  # (compiled: no negative slice)
        return index - 3
    return -1


def _a_digit_before(t: _Text, index: int) -> bool:
    """Whether the character before `index` is a digit, ASCII's or another script's, or one NFKC reads as a digit
    (`_NUMERALS`: `²`, `①`): a time's hour (`１２:30`, `١٢:30`, `12：30`, its colon fullwidth: `_colon_before`; `²:30`),
    whose minutes, read as no time's, would be masked with the phone after them, `at １２:[pii:phone]`."""
    byte = t.before(index)
    if byte != 126:
        return byte == 48
    return t.raw[_lead_before(t.raw, index) : index].decode("utf-8", "replace") in _NUMERAL_SET


# the colons NFKC reads as `:` (fullwidth, small, vertical), as UTF-8 (three bytes each)
_WIDE_COLONS: Final = frozenset(colon.encode() for colon in "\ufe13\ufe55\uff1a")


def _after_minutes(t: _Text, start: int) -> int:
    """Where a run of numbers split by spaces at `start` goes on past a time's minutes (`HH:MM`) it begins with, read
    without them as one phone after them is (`_minutes_before`): `at 12:30 555 123 4567 555 123 4568`, or a card
    after that phone, were read from the minutes, a row's, and none was found, until 2026-12-06 (helper revjoins). A
    stream scanner's tail cut in such a run reads it so too (`_run_unaligned`, on the few characters about `start`)."""
    if t.classes.startswith(_MINUTES_THEN_DIGIT, start) and _a_digit_before(t, _colon_before(t, start)):
        return start + 3
    return start


_MINUTES_THEN_DIGIT: Final = b"00 0"


def _iban_head(t: _Text, start: int) -> bool:
    """Whether the digits at `start` end a word of two letters and two digits, an IBAN's first group (`DE89 …`)."""
    word = t.classes[max(0, start - 3) : start + 3].translate(_LEADS)
    return word == b"#aa00#" or (start == 2 and word == b"aa00#")


def _in_ipv6(t: _Text, start: int, end: int) -> bool:
    """Whether the hex digits and colons around a card candidate split by colons are an IPv6 address (at most 39
    characters: what runs on further is none, and is not walked to its end)."""
    classes = t.classes
    first, last = start, end
    while first > 0 and classes[first - 1] in _HEX_OR_COLON and last - first < 39:
        first -= 1
    while last < len(classes) and classes[last] in _HEX_OR_COLON and last - first < 39:
        last += 1
    if t.before(first) in _HEX_OR_COLON or t.after(last) in _HEX_OR_COLON:
        return False
    try:
        ipaddress.IPv6Address(t.raw[first:last].decode())
    except ValueError:
        return False
    return True


_HEX_OR_COLON: Final = frozenset(b"0xX:")


def _card_within(
    raw: bytes, start: int, end: int, from_first: bool = True, tried: tuple[int, int] = (-1, -1)
) -> tuple[int, int] | None:
    """A run that took in a number beside the card (`4111 1111 1111 1111 05/27`, `... 123`): the card is its
    first or last groups, written as cards are (one block, or 4-4-4-4, 4-6-5), the longest first. Only the
    groups that can be such a card are tried: a run of short numbers (`1 1 1 …`) costs no Luhn check. After
    `tried`, one the rest of the run did not set apart (`_set_apart`), the next is: groups that passed Luhn by
    chance (1 time in 10: a card and a phone's first group, `4383 7616 5261 4245 291-248-4908`; a dotted phone's last
    group and a card's first three, `748.757.3480 4177 4801 4809 1385`) were taken, and the card was left in clear
    until 2026-12-07. Not from the first group when it is a dotted number's last (`_after_a_dot`): there its first
    groups and a last one of four were read as a card and its expiry (`446.292.7955 4091 3909 9603 0828`)."""
    sizes = list(map(len, raw[start:end].replace(b"-", b" ").split(b" ")))  # one separator between groups
    count = len(sizes)
    if count < 2 or (  # every card among the first or last groups starts or ends with a group of four, or is one
        4 not in (sizes[0], sizes[-2], sizes[-3] if count > 2 else 0) and max(sizes[0], sizes[-1]) < 13
    ):
        return None
    fours = 0  # how many groups of four lead the run
    while fours < count and sizes[fours] == 4:
        fours += 1
    other = count - 2  # the last group before the run's last that is not of four (-1: none)
    while other >= 0 and sizes[other] == 4:
        other -= 1
    firsts = [j for j in range(min(fours + 1, count - 1), 1, -1) if sizes[j - 1] <= 4]  # 4-…-4 and 1-4 more
    if count > 3 and sizes[:3] == [4, 6, 5]:
        firsts = sorted({*firsts, 3}, reverse=True)
    if count > 1 and 13 <= sizes[0] <= 19:
        firsts.append(1)
    lasts = list(range(max(other + 1, 1), count - 1)) if sizes[-1] <= 4 else []
    if count > 3 and sizes[-3:] == [4, 6, 5]:
        lasts = sorted({*lasts, count - 3})
    if count > 1 and 13 <= sizes[-1] <= 19:
        lasts.append(count - 1)
    if not firsts and not lasts:
        return None
    starts = []  # where each group starts
    for size in sizes:
        starts.append(start)
        start += size + 1
    after = tried[0] < 0
    for first, last in [(0, j - 1) for j in firsts if from_first] + [(i, count - 1) for i in lasts]:
        span = starts[first], starts[last] + sizes[last]
        if after and _card(raw[span[0] : span[1]]):
            return span
        after = after or span == tried
    return None


def _in_a_row(classes: bytes, start: int, end: int, sep: bytes) -> bool:
    """Whether the separator of a card candidate in groups also joins it to more digits, before or after: then it
    is a window of a table row or column of numbers (`12\t4111\t1111\t1111\t1111`, one number a line), not a
    card. A single space before or after a candidate split by wider white space does not join it (`... 05/27`)."""
    before = start
    while before > 0 and classes[before - 1] in _GAP:
        before -= 1
    after = end
    while after < len(classes) and classes[after] in _GAP:
        after += 1
    return (before > 0 and classes[before - 1] == 48 and _alike(classes[before:start], sep)) or (
        after < len(classes) and classes[after] == 48 and _alike(classes[end:after], sep)
    )


def _alike(gap: bytes, sep: bytes) -> bool:
    if sep.isspace():
        return gap.isspace() and gap != b" "
    return gap == sep or (sep[0] == 44 and gap.strip(b" ") == b",")  # a comma, however many spaces around it


def _issued(first: bytes) -> bool:
    """The first four digits are a payment card's (3-6, or Mastercard's 2221-2720), as a spaced card's must be:
    a row of years or small numbers in a table is not taken for one."""
    return 51 <= first[0] <= 54 or b"2221" <= first <= b"2720"


def _card(candidate: bytes) -> bool:
    digits = candidate.translate(None, _NOT_DIGITS)
    return (
        13 <= len(digits) <= 19
        and (_may_start(digits) or (digits[0] == 48 and len(digits) == len(candidate) and _zero_padded(digits)))
        and _luhn(digits)
        and not _isbn(digits)
        and _SHORT_GROUP.search(candidate) is None
        and _LONG_GROUP.search(candidate) is None
    )


def _zero_padded(digits: bytes) -> bool:
    """Whether digits alone beginning with 0 are a card padded with zeros to a fixed width, as a record's field holds
    one (`PAN=0004111111111111111`): after its zeros, an issuer's first digits and one of its lengths (`_ISSUERS`).
    From 77a2169 (no card begins with 0) until 2026-12-05 (helper revphones2) none was found; before, any Luhn-valid
    run was. Zeros before spaced groups are not (`07700 900 123 07700 900`: two UK mobiles, `_may_start`)."""
    rest = digits.lstrip(b"0")
    issued = _ISSUED.get(len(rest))
    return issued is not None and issued.match(rest) is not None and _may_start(rest)


# a group of nine digits or more beside another: no card is written so (its groups are of six at most, or it is one
# block; eight, where a zero-width space is dropped from a group, `4111\u200b1111 1111 1111`), a row's numbers are
# (`ls -l --time-style=+%s`'s size and time, `4096 1796419815`: 1 in 10 a card, every such listing labelled, before
# 2026-12-05)
_LONG_GROUP: Final = re.compile(rb"[0-9]{9}[ -]|[ -][0-9]{9}")


# a group of one or two digits but a card's last: cards are written in groups of four (4-4-4-4, 4-4-4-4-3, 4-4-4-1),
# 4-6-5, 4-6-4 or in one block (a short group ends one: 4-4-4-4-2); one written digit by digit or in pairs, as people
# and speech-to-text write one, is `_spelled_out`'s. Before 2026-12-04 a row of small numbers, `0 0 0 0 0 0 0 0 0 0 0 0
# 0 0 0`, `23 24 25 26 27 28 29`, was a card 1 time in 10
_SHORT_GROUP: Final = re.compile(rb"(?<![0-9])[0-9]{1,2}[ -]")


def _spelled_out(t: _Text, start: int, end: int, candidate: bytes) -> bool:
    """Whether a card candidate (`candidate`, its bytes) that `_card` refused for a group of one or two digits before
    its last is a card written digit by digit or in pairs, as a person or a speech-to-text system writes one (`4 1 1 1
    1 1 1 1 1 1 1 1 1 1 1 1`, `41 11 11 11 11 11 11 11`, `4111 1111 1111 11 11`): the whole run of numbers (none more beside it, split by a
    space), in groups of four digits at most split by spaces or by dashes alone, its first digits an issuer's and its
    length one of that issuer's cards (`_ISSUERS`), Luhn-valid, neither one digit or group throughout nor counting up
    or down by one (`23 24 25 26 27 28 29`), not in brackets (an array's row, `[4 1 1 … 1]`) nor on a line after one
    ending in four numbers or more (a matrix's or a table's row, `_ROW_ENDS`; a matrix's first row without brackets
    may be one). Since 2026-12-04; the same day, before, no such card was found. One a stream scanner's window holds
    whole in what it read before (`_Text.reread`) was judged in the window before, with the lines before it: judged
    again without them, a matrix's row at the tail's start was a card streamed, none whole (32 of 544 cuts of a
    matrix of 17 rows)."""
    digits = candidate.translate(None, _NOT_DIGITS)
    # (most rows of numbers end here: no issuer's first digits, or no length of theirs, or Luhn)
    issued = _ISSUED.get(len(digits))
    if issued is None or issued.match(digits) is None or not _luhn(digits):
        return False
    if (t.before(start) == 32 and t.before(start - 1) == 48) or (
        t.after(end) == 32 and t.after(end + 1) == 48 and not _expiry_after(t, end)
    ):
        return False  # (a window of a longer run: a row's, unless the rest is the card's expiry)
    raw = t.raw
    if (start > 0 and raw[start - 1] in _BRACKETS) or (end < len(raw) and raw[end] in _BRACKETS):
        return False
    sep = b"-" if 45 in candidate else b" "
    if (sep == b"-" and 32 in candidate) or _SHORT_GROUP.search(candidate) is None:
        return False
    groups = candidate.split(sep)
    if max(map(len, groups)) > 4 or groups.count(groups[0]) == len(groups) or digits.count(digits[0]) == len(digits):
        return False
    steps = {int(groups[i + 1]) - int(groups[i]) for i in range(len(groups) - 1)}
    if steps == {1} or steps == {-1} or _international_phone(t, start, end):
        return False
    if end <= t.reread:
        return False  # (judged in the window before: `_Text.reread`)
    # the line before, if it ends near: the line after is not read, as a reply streamed may not hold it yet (a stream
    # scanner reads what it has, and 128 characters before it at least, `_OVERLAP`: both are within them)
    line = t.classes.rfind(b"\n", max(0, start - _LINE_NEAR), start)
    if line <= 0:
        return True
    row = _ROW_ENDS.search(t.classes, max(0, line - _ROW_NEAR), line)
    if row is None:
        return True
    before = t.raw[row.start() : row.end()].translate(None, _NOT_DIGITS)  # (two such cards on lines of their own)
    issued = _ISSUED.get(len(before))
    return issued is not None and issued.match(before) is not None and _luhn(before)


def _dictated_run(t: _Text, start: int) -> int:
    """Where a run of 13-19 single digits split by single spaces from `start` ends when an expiry follows it
    (`_expiry_after`: `4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 12 27`, a card dictated with its expiry, cut by `_CARD` at its
    19th digit inside the expiry); -1 when not so. Since 2026-12-05: before, no card was found in such a run."""
    if _card_joined_before(t, start):
        return -1
    run = _DICTATED.match(t.classes, start)
    if run is None or not _expiry_after(t, run.end()):
        return -1
    return run.end()


def _set_apart_after(t: _Text, start: int, end: int, tried: tuple[int, int]) -> tuple[int, int] | None:
    """The next card `_card_within` finds in a run after `tried`, one the rest of the run did not set apart, that the
    rest sets apart (`_set_apart`), for when no card alone is there either (`_card_alone`); None when none is."""
    within: tuple[int, int] | None = tried
    while within is not None:
        within = _card_within(t.raw, start, end, not _after_a_dot(t, start), within)
        if within is not None and _set_apart(t, start, end, within):
            return within
    return None


def _after_a_dot(t: _Text, start: int) -> bool:
    """Whether the digits at `start` follow a number and a dot, a decimal's fraction or a dotted number's last group
    (`0.0602574471507`, `555.123.4567`), not an IBAN's end (`_iban_ends_at`): no card starts there."""
    return t.before(start) == 46 and t.before(start - 1) == 48 and not _iban_ends_at(t, start - 1)


def _dictated_within(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The card of a candidate ending in a group of two digits or four (`_cards`): one dictated digit by digit, its
    expiry after it (`_dictated_run`: `3 7 8 2 8 2 2 4 6 3 1 0 0 0 5 12 27`, a card of 13-15 digits and its expiry,
    19 digits at most, not cut inside the expiry as a 16-digit card's is), or `_card_within`'s. Since 2026-12-05
    (helper revcards2); before, no card of 13-15 digits so dictated with its expiry was found."""
    dictated = _dictated_run(t, start)
    if dictated > 0 and _spelled_out(t, start, dictated, t.raw[start:dictated]):
        return start, dictated
    return _card_within(t.raw, start, end)


def _expiry_after(t: _Text, end: int) -> bool:
    """Whether what follows a card written digit by digit (`_spelled_out`) is its expiry alone, MM YY, MMYY, MM/YY or
    MM/YYYY (its code after it, if any): no more numbers joined to it, as a row's are. A candidate ending at the slash
    of `MM/YY` ends in a group of two digits, and is read with `_dictated_within` as one ending at `MM YY` is: before
    2026-12-05 `4 1 1 … 1 12/27` was no card (read as `MM YY` only)."""
    expiry = _SPOKEN_EXPIRY.match(t.raw, end)
    if expiry is None:
        return False
    last = expiry.end()
    # (nor does the run go on past a stream scanner's window, `_ends_a_window`: read with what follows in the next)
    return (
        t.after(last) not in _CARD_JOINED
        and not (t.after(last) == 32 and t.after(last + 1) == 48)
        and not _ends_a_window(t, last)
    )


# a run of single digits split by single spaces, as long as a card (`_dictated_run`); an expiry after a card so
# written: a month, then its year's last two digits (or four, after a slash), after a space, a slash or nothing, and
# a code of 3-4 digits
_DICTATED: Final = re.compile(rb"0(?: 0(?!0)){12,18}(?= )")
_SPOKEN_EXPIRY: Final = re.compile(rb" (?:0[1-9]|1[0-2])(?:/(?:20)?|[ ]?)[0-9]{2}(?: [0-9]{3,4})?(?![0-9/])")


# a line's end of four numbers or more split by white space or commas (brackets after: an array's; a CR, a CRLF line
# end's, as a Windows text's or a CSV's rows end: before, a matrix's every row so ended was unprotected, one of 38 a
# card), as a matrix's or a table's rows end, found within `_ROW_NEAR` characters of the line's end (`_spelled_out`); and
# how far from a card written digit by digit the line before may end
_ROW_ENDS: Final = re.compile(rb"0+(?:(?:[ \t]+|[ \t]*,[ \t]*)0+){3,}[ \t\]),\r]*\Z")
_ROW_NEAR: Final = 48
_LINE_NEAR: Final = 64
# what an array's rows are written between (numpy's `[[4 1 1 …]`, a list's `(…)`): no card stands so
_BRACKETS: Final = frozenset(b"[]()")
# payment cards' first digits (their issuers' identification numbers) and the lengths cards so starting have, as the
# networks publish them: Visa; Mastercard; American Express; Discover; JCB; Diners Club; UnionPay; Mir; Maestro;
# RuPay; InstaPayment; Dankort; Verve. A card written digit by digit or in pairs (`_spelled_out`) must be one of them
_ISSUERS: Final = (
    (b"4", b"4", frozenset((13, 16, 19))),
    (b"51", b"55", frozenset((16,))),
    (b"2221", b"2720", frozenset((16,))),
    (b"34", b"34", frozenset((15,))),
    (b"37", b"37", frozenset((15,))),
    (b"6011", b"6011", frozenset(range(16, 20))),
    (b"644", b"649", frozenset(range(16, 20))),
    (b"65", b"65", frozenset(range(16, 20))),
    (b"3528", b"3589", frozenset(range(16, 20))),
    (b"300", b"305", frozenset(range(14, 20))),
    (b"3095", b"3095", frozenset(range(14, 20))),
    (b"36", b"36", frozenset(range(14, 20))),
    (b"38", b"39", frozenset(range(16, 20))),
    (b"62", b"62", frozenset(range(16, 20))),
    (b"2200", b"2204", frozenset(range(16, 20))),
    (b"5018", b"5018", frozenset(range(13, 20))),
    (b"5020", b"5020", frozenset(range(13, 20))),
    (b"5038", b"5038", frozenset(range(13, 20))),
    (b"5893", b"5893", frozenset(range(13, 20))),
    (b"6304", b"6304", frozenset(range(13, 20))),
    (b"6759", b"6759", frozenset(range(13, 20))),
    (b"6761", b"6763", frozenset(range(13, 20))),
    (b"60", b"60", frozenset((16,))),
    (b"508", b"508", frozenset((16,))),
    (b"637", b"639", frozenset((16,))),
    (b"5019", b"5019", frozenset((16,))),
    (b"5060", b"5061", frozenset((16, 18, 19))),
)


def _issued_by_length() -> dict[int, re.Pattern[bytes]]:
    """For each length a card has, a pattern of the first digits of the issuers whose cards have it (`_ISSUERS`)."""
    prefixes: dict[int, list[bytes]] = {}
    for low, high, lengths in _ISSUERS:
        for number in range(int(low), int(high) + 1):
            for length in lengths:
                prefixes.setdefault(length, []).append(str(number).zfill(len(low)).encode())
    return {length: re.compile(b"|".join(sorted(set(found)))) for length, found in prefixes.items()}


_ISSUED: Final = _issued_by_length()


def _isbn(digits: bytes) -> bool:
    """Whether ASCII digits are an ISBN-13 (978 or 979, its check digit right): no card of 13 digits begins with 9
    (a Luhn-valid one passed as a card 1 time in 10), no phone's country code is 978 or 979."""
    if len(digits) != 13 or digits[:3] not in (b"978", b"979"):
        return False
    return (sum(digits[0::2]) - 48 * 7 + 3 * (sum(digits[1::2]) - 48 * 6)) % 10 == 0  # weights 1, 3, 1, ...


def _may_start(digits: bytes) -> bool:
    """Whether a payment card of this many digits may start so: of those beginning with 1 or 2, only UATP's and
    enRoute's (15 digits), Mir's (2200-2204) and Mastercard's (2221-2720). Unix times in milliseconds, microseconds
    and nanoseconds (13, 16 and 19 digits beginning with 1 until 2033) and Snowflake ids (X's and Discord's, 18 and 19
    digits beginning with 1 or 2) passed Luhn 1 time in 10. None begins with 0 (ISO/IEC 7812's industry 0 issues no
    payment card): a phone's trunk `0` began one, two UK mobiles side by side (`07700 900 123 07700 900 124`) were the
    card `07700 900 123 07700 900` and no phone until 2026-12-05 (helper phones2)."""
    if digits[0] == 49 or (
        digits[0] == 50 and not (b"2200" <= digits[:4] <= b"2204" or b"2221" <= digits[:4] <= b"2720")
    ):
        return len(digits) == 15
    return digits[0] != 48


_NOT_DIGITS: Final = bytes(byte for byte in range(256) if not 48 <= byte <= 57)


def _phones(t: _Text) -> Iterator[tuple[int, int]]:
    pos, stop = t.first, t.stop
    # every phone found is nine characters or more of digits and separators in a row, which prose with years in it
    # seldom has: looked for at C speed first (a search for `_PHONE` is tried at each digit)
    if t.classes[pos:stop].translate(_DIALS).find(b"000000000") < 0:
        return
    yield from _phones_searched(t)


def _phones_searched(t: _Text) -> Iterator[tuple[int, int]]:
    """`_phones` without its check first: `_PHONE` searched for at every digit."""
    pos, stop = t.first, t.stop
    row = -1  # where the run of numbers the last candidate was in ends (`_ROW_ON`)
    while (m := _PHONE.search(t.classes, pos, stop)) is not None:
        pos = m.end()
        if (past := _past_iban(t, m.start())) > 0:
            pos, row = past, -1  # an IBAN's digits: a phone after it is read as after a space
            continue
        address = _ipv4_ahead(t, m.start())
        if address > 0:  # an IPv4 address, and what follows it (`10.96.36.188 443/TCP`): a phone is after it, if any
            pos = address
            continue
        # (within the row a phone was found in, it ends where it did: matched again for each phone of a list, 8,000
        # of them took 9 s)
        # (a phone in brackets, `(+1 555-123-4567) 555-987-6543`: it ends at its closing bracket, and so does its row)
        closed = _bracket_closed(t.classes, m.start(), pos) if t.classes[m.start() - 1] in _OPENING else -1
        phone = _phone(t, m.start(), closed) if closed > 0 else None
        if closed > 0 and (phone is None or (phone[1] == closed and t.raw[phone[0]] == 40)):
            row = closed
            if phone is None:
                # (the bracketed part no phone with its brackets, joined to what is before it, `2024-01-05_(555-123-4567)
                # 555-123-4567`, `a(555-123-4567) 555-…`: the candidate ends at its bracket all the same, a phone within
                # it read as in a row (`ref(+1 [pii:phone])`), the numbers after it alone; read as one candidate, the
                # phone after it was not found until 2026-12-07, helper det19)
                phone = _phone_among(t, m.start(), closed)
                if phone is None:
                    pos = closed
                    continue
                pos = phone[1]
            else:
                pos = closed
                phone = phone[0], closed + 1  # (its closing bracket with it, as its opening one)
        else:  # (none there, `Tel.(+1 555-123-4567) …`: the candidate read as before)
            if pos >= row:
                run = _ROW_ON.match(t.classes, pos)  # (matches, if only ""; past `pos` when the candidate was cut)
                row = run.end() if run is not None else pos
            phone = _phone(t, m.start(), pos) if row == pos else None  # (cut: a window of a row, no value alone)
        dated = phone is None and _in_week_date(t, m.start())  # (a date before: read as after `2024-01-15`)
        if phone is None and (row > pos or dated or t.classes.count(48, m.start(), pos) > 15):
            # (a row ending in an IPv4 address: the numbers before it read alone, as `_phone` reads a candidate ending
            # in one. Read with it, `5551234567 5551234567 10.0.0.1` would be no phones whole, each alone a phone, and
            # phones streamed where a window holds the run without the address; `555 123 4567 192.168.100.200` the
            # address a phone, the phone none); none so, the whole row's
            ending = _address_ending(t, m.start(), row)
            if ending > 0:
                alone = _unwritten_before(t, m.start(), ending)
                phone = (_phone(t, m.start(), ending) if alone else None) or _phone_among(t, m.start(), ending)
                # (and a phone after a number and spaces before it, as in a row: `12` and 24 spaces before them)
                phone = phone or _phone_after_spaces(t, m.start(), pos, ending)
            phone = phone or _phone_among(t, m.start(), row) or _phone_after_spaces(t, m.start(), pos, row)
            if phone is not None:
                pos = phone[1]
        if phone is not None:
            double = t.classes.rfind(b"  ", phone[0], phone[1])
            if double >= 0 and t.raw[phone[0]] != 43:
                # (two spaces or more in it, a phone after them but a country's code after a `+`: that phone alone, as
                # after a no-break space; with them, `12  555 123 4567` was masked `[pii:phone]` until 2026-12-06,
                # helper joins3)
                phone = _phone(t, t.classes.find(b"0", double), phone[1]) or phone
            yield phone
        elif row > pos:
            pos = row  # a row of numbers, none of its pieces a phone alone: no tail of it is read as one either
        elif not dated:
            pos = _searched_on(t, m.start(), pos)


def _bracket_closed(classes: bytes, first: int, end: int) -> int:
    """Where the bracket that a phone candidate at `first:end` opens after (`(555-123-4567`, `(+44 20 7946 0958`)
    closes, the candidate's or right after it, where it holds nine digits or more: a phone's, no area code's (`(555)
    987-6543`, `+1 (555) 987-6543`, `(+44) 20 7946 0958`, `(0)20` within it); -1 when none closes so, or a digit
    follows it. Until 2026-12-07 (helper det18) the bracket and the numbers after it were read as one candidate, the
    phone's last digits an area code: `(+1 555-123-4567) 555-987-6543` held no phone, `(+44 20 7946 0958)
    555-987-6543` one from `0958`, and `(+44 20 7946 0958) 12` was one phone (`_phones_searched` reads the candidate
    so still where the bracket holds no phone, `Tel.(+1 555-123-4567) …`)."""
    opening = first - 2 if classes[first - 1] == 43 else first - 1
    if opening < 0 or classes[opening] != 40:
        return -1
    close = classes.find(b")", first, end + 1)
    while close >= 0 and classes.count(b"(", first, close) != classes.count(b")", first, close):
        close = classes.find(b")", close + 1, end + 1)  # (one of a bracket within it: `(+44 (0)20 7946 0958)`)
    if close < 0 or classes.count(48, first, close) < 9 or classes[close + 1 : close + 2] == b"0":
        return -1  # (a digit right after it, `(+44 (0)20 7946 0958)555-…`: read as before)
    return close


_OPENING: Final = frozenset(b"(+")


def _phone_after_spaces(t: _Text, start: int, end: int, row: int) -> tuple[int, int] | None:
    """The phone that is the rest of a row after its first number and two spaces or more (`12` and 13-24 spaces before
    `555 123 4567`), read alone, as after fewer spaces, where the candidate at `start` holds the whole row (the
    double-spaces rule in `_phones_searched`); `end`: where the candidate was cut (`_PHONE` reaches 26 characters),
    `row`: where its row ends (or the white space before an IPv4 address ending it, `_address_ending`). Read as the
    cut candidate's row, such a phone was none, where 2-12 spaces or 25 and more before it gave one; None when the row
    is not so. The rest may go on after two spaces more where a phone ends before them (`_phone_then_more`); after
    three spaces or more, it is so read where the candidate holds the whole row too (`_laid_out_apart`)."""
    classes = t.classes
    double = classes.find(b"  ", start, row)
    if double < 0 or classes.find(b" ", start, double) >= 0:
        return None
    if row <= end and not classes.startswith(_WIDE_SPACES, double):
        return None  # (one candidate, two spaces in it: the row as `_phone` reads it)
    first = classes.find(b"0", double)
    if _PHONE.fullmatch(classes, first, row) is None or (
        classes.find(b"  ", first, row) >= 0 and not _phone_then_more(t, start, first, row)
    ):
        return None  # (the rest no one candidate, or split by two spaces again otherwise: a table's aligned columns)
    phone = _phone(t, first, row)
    return phone if phone is not None and phone[1] == row else None


def _phone_then_more(t: _Text, start: int, first: int, row: int) -> bool:
    """Whether the rest of a row after its first number and two spaces or more (`_phone_after_spaces`: from `first`
    to `row`), split by two spaces again, is read as it is alone, as the row is where it is one candidate, after two
    spaces: `555 123 4567` then `  7` after `12` is a phone, as `12  555 123 4567  7` is. So it is where a phone ends
    before those spaces and the row has no more digits than a phone has (those of the first number before `start`, a
    candidate's first digit, counted too); otherwise the row is a table's aligned columns (`246182`, `802 814207` and
    `525` four spaces apart), none at two spaces either. Since 2026-12-06: before, `12` and 10-24 spaces before that
    phone and `  7` were none."""
    classes = t.classes
    again = classes.find(b"  ", first, row)
    if _phone(t, first, again) != (first, again):
        return False
    head = classes[max(0, start - 15) : start]
    digits = len(head) - len(head.rstrip(b"0")) + classes.count(48, start, row)
    return digits <= 15 or _laid_out_apart(classes, first, again, row)


def _laid_out_apart(classes: bytes, first: int, again: int, row: int) -> bool:
    """Whether a phone ending before two spaces more in a row (`_phone_then_more`: `first` to `again`) is written in a
    layout phones are (`_ALIKE_CLASSES`: 3-3-4, 3-4-4, 4-3-4, 5-6, 5-3-3) three spaces or more after the row's first
    number, and it and the rest hold no more digits than a phone: read as it is alone, as after 25 spaces, whatever
    that number's digits (`2024` and 13 spaces before `020 7946 0958  7`: its 16 digits made it none at 3-24 spaces
    until 2026-12-06). Random aligned columns seldom take such a shape (0 of 1,760 tables gained a phone so)."""
    return (
        classes.startswith(_WIDE_SPACES, first - 3)
        and classes[first:again] in _ALIKE_CLASSES
        and classes.count(48, first, row) <= 15
    )


_WIDE_SPACES: Final = b"   "


def _in_week_date(t: _Text, start: int) -> bool:
    """Whether a phone candidate starts in an ISO week date (`2024-W03-1`): a date, as `_ISO_DATE`, so the numbers
    after it are read as after one (`_phone_among`: `2024-W03-1 555-123-4567` holds a phone), then searched on from the
    candidate's end (before 2026-12-04 they were searched as after a word, and `2024-W03-1 12345 67890` held a phone).
    A card after one is searched for as after a word."""
    gap = t.classes.find(b" ", start, start + 5)
    return start >= 6 and gap > 0 and _ISO_WEEK.fullmatch(t.raw, start - 6, gap) is not None


_ISO_WEEK: Final = re.compile(rb"[0-9]{4}-W[0-9]{2}(?:-[1-7])?")


# the rest of a run of digits and a phone's separators that a phone candidate was cut in (`_PHONE` reaches 26
# characters), to its last digit. A candidate cut so that is no phone is a row (dates, versions, token ids written with
# spaces), read by `_phone_among` piece by piece and then skipped whole: before 2026-12-04 the search went on at the
# cut, and the row's tail was a phone (`2024-01-15 2024-01-16 2024-[pii:phone]`, `15339 1917 11 1095 374 264 [pii:phone]`).
# Its numbers each within `_PHONE`'s reach of the one before (24 separators at most): further, a number is no
# candidate's with it, nor its row's. Read on across any gap, `555 123 4567` and 25 spaces or more before phones alike
# would make them a row, none, where a stream's window reads the run after the gap alone, phones
_ROW_ON: Final = re.compile(rb"(?:[ ().-]{0,24}+0)*+")


def _phone_among(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The first phone written with dashes, dots or brackets (`555-123-4567`, `(555) 123-4567`) among the numbers a
    candidate of too many digits for one joined by spaces: two phones side by side (`555-123-4567 555-987-6543`), a
    date before one (`2024-01-15 555-123-4567`). Before 2026-12-04 the candidate was refused whole and neither was
    found. Each piece between spaces of nine digits or more (`_PHONE_PIECE`) is read as it is alone; one of digits
    and spaces only is not (`10 20 30 40 50 60`: a table's row, no phones), nor one after a sign (`-124.203753`).
    Since 2026-12-04 a piece of 10-15 digits alone is read as it is alone too (`_bare_phone`: two mobiles side by
    side, `13800138000 13800138000`), and so is a phone in international form, split by spaces after its `+`, before a
    phone written with dashes, dots or brackets (`+44 20 7946 0958 555-123-4567`): before, neither was found."""
    if end == t.alike_end and start == t.alike_next:  # (the next of a run of phones alike, `_phones_alike`)
        return _next_alike(t, start)
    if t.unaligned & _ROW_REFUSED and _in_tail(t, start):
        return None  # (a row's, read whole with the number a `-` or a bracket joins before it: `_run_unaligned`)
    classes = t.classes
    # (the first of a phone's separators or of ten digits in a row, one search: each searched to the run's end for
    # each phone of a list of the other kind, 8,000 phones took 16 s, bare, or 1.3 s, written)
    lead = _WRITTEN_OR_TEN.search(classes, start, end)
    if lead is None:  # (spaced digits alone: a row's, unless it holds a run of ten digits; read at C speed)
        first = _after_minutes(t, start)  # (`12:30 555 123 4567 555 123 4568`: the phones after the time's minutes)
        return _phone_after_card(t, first, end) or _phone_before_card(t, first, end) or _phones_alike(t, first, end)
    # (a `+` before it, or a space or an area code's bracket before its first mark: one line for the rest)
    if t.before(start) == 43 or _SPACED_OR_BRACKETED.match(classes, start, end) is not None:
        if t.before(start) != 43:
            # (a phone split by spaces before one written with dashes, dots or brackets, `020 7946 0958 555-…`)
            phone = _spaced_before_written(t, start, end)
            if phone is not None:
                return phone
        else:  # (`+44 20 7946 0958 555-…`, `+44 … 13800138000`: the spaces before the next end it)
            # (a country's code in brackets, `(+44) 20 7946 0958 555-…`: its bracket none of the next's marks; read as
            # one, the phone was left in clear until 2026-12-07, helper det19)
            code = _BRACKETED_CODE.match(classes, start, end) if classes[start - 2] == 40 else None
            written = _WRITTEN_AS_A_PHONE.search(classes, start if code is None else code.end(), end)
            gap = classes.rfind(b" ", start, written.start() if written is not None else lead.start())
            phone = _phone(t, start, gap) if gap > start else None
            if phone is not None:
                return phone
            phone = _international_before(t, start, end, written)
            if phone is not None:
                return phone
    if (
        classes[lead.start()] == 48
        and (_ends_a_window(t, end) or not _listed(t, start, end))
        and _WRITTEN_AS_A_PHONE.search(classes, lead.start(), end) is None
    ):
        return None  # (bare numbers in a row with others: a table's, `_listed`; or going on past a stream's window)
    # (read where more of the row is after a space: a piece that is all of it is read so by `_phone`, as after a space)
    after_iban = start > 0 and classes[start - 1] in b"-." and classes.find(32, start, end) > 0
    piece = _PHONE_PIECE_AFTER_IBAN.match(classes, start, end) if after_iban else None
    if (
        piece is not None
        and 9 <= classes.count(48, start, piece.end()) <= 15
        and _WRITTEN_AS_A_PHONE.search(classes, start, piece.end()) is not None
        and _iban_ends_at(t, start - 1)
    ):
        # (a phone written so joined to an IBAN's end, a row after it, read as after a space: as a piece after a sign,
        # `DE89370400440532013000.555-123-4567 1 1 …` was none whole, a phone streamed in a window ending after it; a
        # phone's digits looked at first: each card joined so read for an IBAN's end, 1 MB of them took 1.2 times as
        # long to scan)
        phone = _phone(t, start, piece.end())
        if phone is not None:
            return phone
    # (`end` is where the row the candidate was cut in ends, `_ROW_ON`: its last piece is read whole, as it is alone,
    # `2024-01-15 2024-01-16 555-123-4567`, `4111 1111 1111 1111 555-123-4567`; before 2026-12-04 only its part within
    # `_PHONE`'s reach was, and no phone was found)
    for piece in _PHONE_PIECE.finditer(classes, start, end):
        first, stop = piece.span()
        if _WRITTEN_AS_A_PHONE.search(classes, first, stop) is not None or (
            # (bare pieces are read only in a list of phones, and not where the run goes on past a stream's window,
            # `_ends_a_window`: what follows may make it none, `5551234567 ` x20 then a card's groups, a table's row, no
            # list, was a phone at 100 of 238 cuts, none whole; a Unix time's ten digits only after a `+`, `_unix_time`)
            _bare_phone(t, first, stop)
            and not _ends_a_window(t, end)
            and _listed(t, start, end)
            and (
                t.before(start) == 43 or not _unix_time(t.raw[first:stop]) or _called(t, start) or _dated(t, start, end)
            )
        ):
            # (a phone in brackets, the next number after them: read to its bracket, `_bracketed_piece`)
            phone = _phone(t, first, stop) if classes[first] != 40 else _bracketed_piece(t, first, stop)
            if phone is not None:
                return phone
    return None


def _bracketed_piece(t: _Text, first: int, stop: int) -> tuple[int, int] | None:
    """The phone a piece of a run of numbers (`_phone_among`) opening with a bracket is: the bracketed part, with both
    its brackets, where the bracket holds nine digits or more and closes before more of the piece, as a candidate is
    read to it (`_phones_searched`, `_bracket_closed`); else the piece as it is. Read whole, `2024-01-05
    (555-123-4567) 555-123-4567` held no phone until 2026-12-07 (helper det19)."""
    closed = _bracket_closed(t.classes, first + 1, stop)
    if closed > 0 and _phone(t, first + 1, closed) == (first, closed):
        return first, closed + 1
    return _phone(t, first, stop)


def _spaced_before_written(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The phone split by spaces as phones are written (`_PHONE_LAYOUTS`), its area code in brackets or not, and begun
    as one, that a run of numbers at `start` begins with before a phone written with dashes, dots or brackets
    (`_phone_among`): `020 7946 0958 555-987-6543`, `(020) 7946 0958 555-…`, read as it is alone, as after a `+`;
    with the next, too many digits for one, it was left in clear until 2026-12-07 (helper det19). None when the run
    is not so."""
    classes = t.classes
    mark = _WRITTEN_AS_A_PHONE.search(classes, _past_area_code(classes, start, end), end)
    gap = classes.rfind(b" ", start, mark.start()) if mark is not None else -1
    if gap <= start or _PHONE_PIECE.match(classes, gap + 1, end) is None:
        return None
    bracketed = classes[start - 1] == 40 and _AREA_CODE.match(classes, start) is not None
    shape = classes[start:gap].replace(b") ", b" ", 1) if bracketed else classes[start:gap]
    lead = t.raw[start]
    if shape not in _ALIKE_CLASSES or not (
        lead in b"23456789" if shape == _ALIKE_CLASSES[0] else lead == 48 and t.raw[start + 1] != 48
    ):
        return None
    phone = _phone(t, start, gap)
    return phone if phone is not None and phone[1] == gap and phone[0] == start - bracketed else None


def _past_area_code(classes: bytes, start: int, end: int) -> int:
    """Where a candidate at `start` goes on after an area code in brackets it begins with (`(020) 7946 0958`), or
    `start` when it begins with none."""
    if classes[start - 1] != 40:
        return start
    area = _AREA_CODE.match(classes, start, end)
    return start if area is None else area.end()


def _international_before(t: _Text, start: int, end: int, written: re.Match[bytes] | None) -> tuple[int, int] | None:
    """The phone in international form a run of numbers after a `+` begins with (`_phone_among`, `start`: its country
    code's first digit) where that run is no phone to the first piece written as one: the phone to the space before a
    card in groups after it (`+44 20 7946 0958 4111 1111 1111 1111 555-987-6543`, `+44 (0)20 7946 0958 4111 …`), or
    its country code and the phone so written after it (`+1 555-123-4567 4111 …`), its `+` taken in. Until 2026-12-07
    (helper det16) the first was left in clear beside the masked card, and the second masked `+1 [pii:phone]`."""
    classes = t.classes
    pos, reach = start, min(end, start + _AMONG_MOST)
    while (card := _CARD_AMONG.search(classes, pos, reach)) is not None:
        pos = card.start() + 1  # (the groups of the phone may be the first of four: `7946 0958 4111 1111`)
        # (a card first in its run, after a mark, a bracket's space or two spaces, is no card the phone runs on to:
        # read so, `+1-555-123-4567 - 3782 822463 10005 555-…` was masked `[pii:phone] 3782 …`, helper det17)
        if card["first"] is None and _card(t.raw[card.start() : card.end()]):
            phone = _phone(t, start, card.start() - 1)
            if phone is not None and phone[1] == card.start() - 1 and _from_its_plus(t, start, phone[0]):
                return phone
    code = _COUNTRY_CODE.match(classes, start, end)
    if code is None or written is None:
        return None
    piece = _PHONE_PIECE.match(classes, code.end(), end)
    if piece is None or piece.end() <= written.start():
        return None
    phone = _phone(t, start, piece.end())
    return phone if phone is not None and phone[1] == piece.end() and _from_its_plus(t, start, phone[0]) else None


def _from_its_plus(t: _Text, start: int, first: int) -> bool:
    """Whether a phone `_international_before` read starts at the `+` before `start`, or at a bracket before that
    `+` that `_phone` takes in with it (`(+44 20 7946 0958) 4111 …`: left in clear beside the masked card until
    2026-12-07, review revdet16)."""
    return first == start - 1 or (first == start - 2 and t.raw[first] == 40)


def _phone_after_card(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The phone split by spaces that is the rest of a run of numbers after a card in four groups of four (`4111 1111
    1111 1111 555 123 4567`), read as it is alone, its first group not of four (a row of groups of four is a table's,
    no card and phone); None when the run is not so. Since 2026-12-05: before, the run was a row's, and only the card
    was found."""
    classes = t.classes
    if (
        end <= start + 20  # (no number after the card: `4111 1111 1111 1111 ` ending a text)
        or not classes.startswith(_CARD_FOURS, start)
        or classes.startswith(b"0000", start + 20)
        or _card_joined_before(t, start)
        or not _card(t.raw[start : start + 19])
    ):
        return None
    phone = _phone(t, start + 20, end)
    return phone if phone == (start + 20, end) else None


_CARD_FOURS: Final = b"0000 0000 0000 0000 "
# the labels of the numbers a run of them may go on past (`_Text.runs_on`)
_RUN_LABELS: Final = frozenset(("pii:phone", "pii:credit_card"))


def _phone_before_card(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The phone split by spaces that a run of numbers ending in a card in four groups of four begins with (`555 123
    4567 4111 1111 1111 1111`), read as it is alone, its first group not of four (a row of groups of four is a table's);
    None when the run is not so. Since 2026-12-05: before, the run was a row's, and neither was found (`_cards` finds
    the card, `_PHONE_THEN_CARD`)."""
    card = end - 19
    start = _after_minutes(t, start)  # (`at 12:30 555 123 4567 4111 …`: read without the time's minutes)
    if (
        card <= start + 9  # (nine digits at least before the card)
        or _ends_a_window(t, end)
        or (
            t.unaligned & _CARD_REFUSED != 0  # (its first group read in a window before, `_run_unaligned`)
            if _in_tail(t, start)
            else t.classes.startswith(b"0000", start) and not _uk_five_first(t, start)
        )
        or not t.classes.startswith(_FOURS_ENDING, card - 1)
        or t.after(end) in _CARD_JOINED
        or not _issued(t.raw[card : card + 4])
        or not _card(t.raw[card:end])
    ):
        return None
    phone = _phone(t, start, card - 1)
    # (its `+` taken in, `+1 555 123 4567 4111 …`: before (helper revphones), neither was found)
    if phone == (start, card - 1) or (
        phone is not None and phone[1] == card - 1 and t.before(start) == 43 and _from_its_plus(t, start, phone[0])
    ):
        return phone  # (and a bracket before the `+`, `(+44 20 7946 0958 4111 …`: in clear until 2026-12-07)
    # (phones alike before the card, `555 123 4567 555 123 4568 4111 …`: read as a run of their own, the next of them
    # to the card's space, `_next_alike`; before (helper phones3), neither a phone nor the card was found)
    phone = _phones_alike(t, start, card - 1) or _phones_written(t, start, card - 1)
    if phone is not None:
        t.alike_end = end
    return phone


def _uk_five_first(t: _Text, start: int) -> bool:
    """Whether a run of numbers before a card starts with a UK number whose first group is of five digits, grouped as
    one is written (`01632 960123`, `07700 900 123`): the one first group of four digits or more a phone's, not a
    row's (`_phone_before_card`). Read as any group of five digits or more (helper detfuzz2), an order's number and
    the next before a card were a phone, none before: `order 12345 67890 4111 …`, `qty 10000 200 3000 4111 …`, until
    2026-12-05 (helper revdetfuzz2)."""
    classes = t.classes
    return (
        (classes.startswith(b"00000 000000 ", start) or classes.startswith(b"00000 000 000 ", start))
        and t.raw[start] == 48
        and t.raw[start + 1] != 48
    )


def _phones_written(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The first of two phones or more split by spaces, each as one of `_PHONE_LAYOUTS` is written and begun, not all
    alike (`555 123 4567 020 7946 0958`), that a run of numbers before a card is (`_phone_before_card`); the next are
    read from their ends, one after another (`_next_alike`). Read back from the run's end, layout by layout (none of
    them ends as another does: one reading only), so that a stream scanner's window starting in the run, a phone's
    later group first (`_in_tail`), reads it as the text whole does. Before 2026-12-05 (helper detfuzz2) neither these
    phones nor the card after them was found, the run read as a table's row."""
    if t.before(start) == 43:
        return None
    sizes = [len(group) for group in t.classes[start:end].split(b" ")]
    cut = _in_tail(t, start)
    if cut and t.unaligned & _WRITTEN_REFUSED:
        return None  # (as `_phones_alike`)
    stops: dict[int, int] = {}
    count = len(sizes)
    stop = end
    while count > 0:
        layout = _layout_ending(sizes, count)
        if layout is None:
            break
        first = stop - sum(layout) - len(layout) + 1
        lead = t.raw[first]
        if not (lead in b"23456789" if layout == _NORTH_AMERICAN else lead == 48 and t.raw[first + 1] != 48):
            return None
        stops[first] = stop
        stop = first - 1
        count -= len(layout)
    if (count > 0 and not (cut and _layout_cut(sizes, count))) or len(stops) < 2:
        return None
    rests = t.unaligned >> _REST_SHIFT if cut else 0
    if rests and tuple(sizes[:count]) not in _REST_SIZES[rests]:
        return None  # (read from the run's start, the window before's, the phones are not so: `_written_rest`)
    first = stop + 1
    if _phone(t, first, stops[first]) != (first, stops[first]):
        return None  # (the next are read so one after another, `_next_alike`, as `_phones_alike`'s are)
    t.alike_next, t.alike_size, t.alike_last, t.alike_stops = stops[first] + 1, 0, end, stops
    return first, stops[first]


def _layout_cut(sizes: list[int], count: int) -> bool:
    """Whether the first `count` of `sizes` are a phone's later groups, where a stream scanner's window cut it (a
    layout's last groups, not all of them: `_in_tail`): more before them, a row's numbers (`12 12 … 555 123 4567 …`),
    the run is no phones', as whole."""
    return any(count < len(layout) and tuple(sizes[:count]) == layout[-count:] for layout in _PHONE_LAYOUTS)


def _layout_ending(sizes: list[int], count: int) -> tuple[int, ...] | None:
    """The layout of `_PHONE_LAYOUTS` whose groups' lengths the first `count` of `sizes` end with (one at most)."""
    for layout in _PHONE_LAYOUTS:
        if count >= len(layout) and tuple(sizes[count - len(layout) : count]) == layout:
            return layout
    return None


_FOURS_ENDING: Final = b" 0000 0000 0000 0000"


def _phones_alike(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The first of two phones or more split by spaces alike that a run of numbers is, one after another (`555 123
    4567 555 123 4568`: 3-3-4 twice; `020 7946 0958 020 7946 0959`), read as it is alone (the next is read so from
    its end, as a candidate of its own, `_next_alike`); None when the run is not so. Each phone is grouped as phones
    are written (`_PHONE_LAYOUTS`): pairs repeated are a row's, `12 34 56 78 90 12 34 56 78 90`, and so are numbers of
    one length, `48201 48202 48203 48204`. Since 2026-12-05: before, the run was a row's, and no phone in it was found;
    five or more (a run of 64 characters or more), and the first after a country's code and its `+` (`+1 555 123 4567
    555 123 4568`), were none until 2026-12-05 (helper phones2). The run is read once, at C speed."""
    classes = t.classes
    if _ends_a_window(t, end):
        return None
    first = start
    if t.before(start) == 43:  # (`+1 555 123 4567 555 …`: the country's code is the first phone's alone)
        first = classes.find(b" ", start, min(end, start + 4)) + 1
        if first == 0:
            return None
    # (a stream scanner's window that starts in the run, its tail, `StreamScanner`: the run read back from its end,
    # as its start may be a phone's later group; before (helper revphones2), a run longer than the tail, 257
    # characters, found whole, was none streamed, one cut in four)
    cut = _in_tail(t, start)
    refused = t.unaligned if cut else 0  # (a run longer than a tail holds, read whole none so: `_run_unaligned`)
    if refused & _ALIKE_REFUSED == _ALIKE_REFUSED:
        return None
    lead = first
    for phone in _ALIKE_CLASSES:
        size = len(phone)
        if cut:
            first = lead + (end + 1 - lead) % (size + 1)
        count, rest = divmod(end + 1 - first, size + 1)
        if (
            rest != 0
            or count < 2
            or (first > lead and classes[first - 1] != 32)
            or not classes.startswith(phone, end - size)
            or classes.count(phone + b" ", first, end - size) != count - 1
        ):
            continue  # (not `count` phones of this layout, split by single spaces, from `first` to `end`)
        if refused and refused & (1 << _ALIKE_CLASSES.index(phone)):
            return None  # (read whole from its start, no phones of this layout alike, `_run_unaligned`)
        leads = t.raw[first : end : size + 1]
        if phone == _ALIKE_CLASSES[0]:  # (North America's)
            if leads.translate(None, b"23456789"):
                return None
        elif leads.count(48) != count or b"0" in t.raw[first + 1 : end : size + 1]:
            return None
        stop = first + size
        begin = first if cut else start
        found = _phone(t, begin, stop)
        if found is None or found[1] != stop or not (found[0] == begin or (found[0] == start - 1 and first > start)):
            return None
        t.alike_end, t.alike_next, t.alike_size, t.alike_last = end, stop + 1, size, end
        return found
    return None


def _ends_a_window(t: _Text, end: int) -> bool:
    """Whether a run of numbers ending at `end` ends a stream scanner's window, numbers held back after it
    (`_Text.runs_on`): a run longer than the end a window holds back (`_unended`), read again with what follows,
    from its end (`_in_tail`). Read as ending here, its end at the cut, a run the text
    holds longer was phones alike (`555 123 4567 ` x30 then `1111 4111 1111 1111 1111`: none whole, a phone streamed
    at 118 of 413 cuts), or phones and a card after them, none whole, until 2026-12-05 (helper detfuzz2)."""
    return end >= t.runs_on >= 0


def _in_tail(t: _Text, start: int) -> bool:
    """Whether a run of numbers at `start` starts a stream scanner's window, in its tail (`StreamScanner`), read in the
    window before, so its first number may be a phone's later group: a tail starts so only where it was cut in a run
    (`_tail_at_a_gap`). White space first, the tail holds the run from its start: read so, as whole (before 2026-12-05,
    helper detfuzz2, it was read back from its end, and `1234 555 123 4567 555 123 4568 4111 1111 1111 1111` held
    whole in a tail after white space, the rest in short pieces, was phones and a card, none whole). Nor does a window
    the text starts (`_Text.ahead` ""), its tail all it read: `"1 " + "555 123 4567 " * 40` cut past the first window
    was read back from its end, phones, none whole, until 2026-12-05 (helper detfuzz3)."""
    return start == 0 < t.reread and t.ahead != ""


def _next_alike(t: _Text, start: int) -> tuple[int, int] | None:
    """The phone of a run of phones alike (`_phones_alike`) that starts at `start`, the next after one found."""
    stop = start + t.alike_size if t.alike_size else t.alike_stops.get(start, t.alike_last + 1)
    if stop > t.alike_last:
        return None  # (past its last phone: the card after them, `_phone_before_card`)
    t.alike_next = stop + 1
    found = _phone(t, start, stop)
    return found if found == (start, stop) else None


# phones' groups as they are written split by spaces: North America's (`555 123 4567`, its area code beginning with
# 2-9), the UK's (`020 7946 0958`, `0161 496 0000`, `01632 960123`, `07700 900 123`, beginning with 0, then 1-9), and
# none other (numbers in a row of a table are alike as often). Until 2026-12-05 (helper revphones) any digits were read
# so, and a row of sizes was two phones, `128 256 1024 128 256 2048`, `1024 512 2048 1024 512 2048`, `10240 204800
# 10240 204800`
_NORTH_AMERICAN: Final = (3, 3, 4)
_PHONE_LAYOUTS: Final[tuple[tuple[int, ...], ...]] = (_NORTH_AMERICAN, (3, 4, 4), (4, 3, 4), (5, 6), (5, 3, 3))
# each as the class string reads it (`000 000 0000`)
_ALIKE_CLASSES: Final = tuple(b" ".join(b"0" * size for size in layout) for layout in _PHONE_LAYOUTS)


# a run of numbers split by single spaces that ends in four groups of four (`555 123 4567 4111 1111 1111 1111`: a
# phone, then a card, `_phone_before_card`), searched for at C speed apart from `_CARD`'s candidates, which cut such a
# run at a card's 19 digits (before 2026-12-05 no card so written was found); numbers lazily, as many as the run
# holds, one try of the card's 20 characters after each (until helper phones3 at most 15: a card after six phones
# alike, `555 123 4567 … 4111 1111 1111 1111`, was none)
_PHONE_THEN_CARD: Final = re.compile(rb"(?<!0)(?<!0 )0+(?: 0+)+? 0000 0000 0000 0000(?!0| 0)")


# a piece of a phone candidate that may be one alone: nine digits or more from where a number starts, split by at
# most one of a phone's separators (an area code in brackets and the space after it are its piece's: `(555) 123-4567`)
_PHONE_PIECE: Final = re.compile(rb"(?<![0).-])\(?0(?:(?:\) |[().-])?0){8,}")
# the same after a dash or a dot that ends an IBAN (`_phone_among`), read as after a space
_PHONE_PIECE_AFTER_IBAN: Final = re.compile(rb"\(?0(?:(?:\) |[().-])?0){8,}")
_WRITTEN_AS_A_PHONE: Final = re.compile(rb"[().-]")
# a country's code in brackets after its `+` and the space after them (`(+44) 20 7946 0958`)
_BRACKETED_CODE: Final = re.compile(rb"0{1,3}\) ")
# a run of numbers (`_phone_among`) from a phone candidate's first digit after a bracket, or with a space before its
# first dash, dot or bracket: a phone split by spaces may begin it (`_spaced_before_written`; possessive, one pass)
_SPACED_OR_BRACKETED: Final = re.compile(rb"(?<=\()|(?=0*+ [0 ]*+[().-])")
# an area code in brackets after its `(` (`(020) 7946 0958`)
_AREA_CODE: Final = re.compile(rb"0{3,5}\) ")
_WRITTEN_OR_TEN: Final = re.compile(rb"[().-]|0{10}")


def _bare_phone(t: _Text, first: int, stop: int) -> bool:
    """Whether a piece of a candidate (`_phone_among`) is digits alone, 10-15 of them, as a phone with its area code
    is written without separators (`13800138000`, `07911123456`), not beginning with three zeros as none does (a
    zero-padded count's, `0000052340`). Nine bare digits beside another number are a count's more often
    (`4461192 142758144`, `123456789 123456789`)."""
    return (
        10 <= stop - first <= 15
        and t.classes.count(48, first, stop) == stop - first
        and t.raw[first : first + 3] != b"000"
    )


def _listed(t: _Text, start: int, end: int) -> bool:
    """Whether a run of numbers (`_phone_among`'s) is a list of phones from `start`: every number in it, split by
    single spaces, a piece a phone may be alone (`_PHONE_PIECE`), as in `13800138000 13912345678`, but a country's
    code after a `+` (`+86 13812345678 13800138000`). A row of command output holds other numbers among its long ones
    (`stat -c '%s %X %Y %Z'`'s `28 1796420988 1676635049 1676635049`, `free -b`'s, `df -B1`'s, `/proc/net/dev`'s):
    each of its sizes and times of ten digits or more was a `pii:phone` on 2026-12-04, as none was before (216 phones
    in 15 such outputs were 1,164), and are none again. What is read of a run is kept (`_Text.unlisted`) and read
    again only past the number found no phone's: a list of n phones, one found a call, is read once, not n times."""
    if t.run_end != end or start < t.run_from or 0 <= t.unlisted < start:
        t.run_from = start
        t.run_end = end
        t.unlisted = _unlisted(t, start, end)
        t.recent = -2
    return t.unlisted < 0


def _unlisted(t: _Text, start: int, end: int) -> int:
    """Where the first number of a run from `start` that is no phone's piece starts (`_listed`); -1 when none is."""
    classes = t.classes
    pos = start
    if t.before(start) == 43 and classes.find(b" ", start, end) > 0:
        pos = classes.find(b" ", start, end) + 1
    for piece in _PHONE_PIECE.finditer(classes, pos, end):
        if piece.start() != pos:
            return pos
        pos = piece.end() + 1
    return pos if pos <= end else -1


def _ipv4_ahead(t: _Text, start: int) -> int:
    """Where the IPv4 address at `start` ends (a phone candidate's first digit; -1 when it starts none): one of nine
    digits or more (`192.168.10.254`) was a `pii:phone` too, where only phones were looked for."""
    found = _IPV4.match(t.classes, start)
    if found is None or t.before(start) in _WORDISH or t.before(start) == 46:
        return -1
    end = found.end()
    if _joined_after(t, end) or not _octets(t.raw[start:end].split(b".")):
        return -1
    return end


def _joined_after(t: _Text, end: int) -> bool:
    """Whether what follows a phone or an IPv4 address ending at `end` joins it to more of a number or a word: a
    digit, a letter or `_`, or a dot before one (`555.123.4567.89`, `10.1.2.3.4`). A dot before white space or
    the text's end is a sentence's full stop (`Call me at 555-123-4567.`, a CJK `。` read as `.`): before
    2026-12-04 it joined too, and no phone or address ending a sentence was found."""
    after = t.after(end)
    return after in _WORDISH or (after == 46 and t.after(end + 1) in _WORDISH)


def _phone(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The phone a match of `_PHONE` at `start:end` is, with what leads it; None when it is none (a part of a word or
    of a longer number, too few or too many digits, a UUID's digits, a decimal number, a US postal code, a date and
    time)."""
    # take in a leading "+", "(" or "+1 (": the candidate pattern starts at the first digit
    while start > 0 and t.classes[start - 1] in b"+( ":
        if t.classes[start - 1] == 32 and (start < 2 or t.classes[start - 2] not in b"+(0"):
            break
        start -= 1
    while t.classes[start] == 32:
        start += 1
    if (
        t.before(start) in _WORDISH
        or (
            t.before(start) in b"+."
            and not _dots_before(t.classes, start)
            and not _iban_ends_at(t, start - 1)
            and not _stop_before_plus(t, start)
        )
        or _joined_after(t, end)
    ):
        return None
    if _minutes_before(t, start, end) > 0:
        return None  # the phone is after them (`_searched_on`)
    digits = t.classes.count(48, start, end)  # (every digit is `0` there: counted in C)
    if not 9 <= digits <= 15:
        # (too many with an address after them: numbers split by white space alone before it read alone, as below,
        # which `_phone_among` does not read, its pieces written as phones are; the address's digits counted with
        # them, `12  555 123 4567 10.0.0.1`'s 17 would be no phone, where `12  555 123 4567` is one)
        gap = _address_ending(t, start, end) if digits > 15 else -1
        if gap > 0 and _unwritten_before(t, start, gap):
            return _phone(t, start, gap)
        return None
    if digits == 13 and t.raw[start] != 43 and _isbn(t.raw[start:end].translate(None, _NOT_DIGITS)):
        return None  # a book's ISBN-13 (`978-0-306-40615-7`): no phone's country code is 978 or 979
    if (t.before(start) == 45 or t.after(end) == 45) and _in_uuid(t.raw, start, end):
        return None
    if t.before(start) in _IBAN_SEPARATORS and _in_iban(t, start, end):
        return None
    first = start + 1 if t.raw[start] == 40 else start  # (after a `(`: a tuple's first)
    if _DECIMAL.fullmatch(t.classes, first, end) is not None:
        return None  # a decimal number (`-0.0870868541`, `-124.203753`): a float, a score, a coordinate
    if _version(t, start, end):
        return None
    if _ZIP_PLUS_FOUR.fullmatch(t.classes, first, end) is not None and _after_a_state(t, first):
        return None  # a US postal code (`Springfield, IL 62704-1234`)
    if (t.before(start) == 58 or t.after(end) == 58) and _in_datetime(t.raw, start, end):
        return None
    if t.classes.count(32, start, end) > 0 and _counted(t, start, end):
        return None
    gap = _address_ending(t, start, end)
    if gap > 0:
        # a number, then an IPv4 address (`1234 10.0.0.1`): before 2026-12-05 a phone; the numbers before it are read
        # alone (`555 123 4567 10.0.0.1`, a contact line, is a phone: since a763e6e none was found)
        return _phone(t, start, gap)
    if digits == 15 and _AMEX.fullmatch(t.classes, start, end) is not None and _card(t.raw[start:end]):
        return None  # an American Express card as written, 4-6-5 (`3782 822463 10005`): before 2026-12-05 a phone too
    return start, end


def _stop_before_plus(t: _Text, start: int) -> bool:
    """Whether a phone's `+` at `start` stands right after a word's stop (`Tel.+44 20 7946 0958`, `e.g.+1 …`): read as
    after a space, as a `+` begins a phone; a dot joins a phone without one to a word (`x.555-123-4567`), and a number
    before it (`1.+44 …`) still. Since 2026-12-07 (helper det18): before, the phone was left in clear."""
    return t.raw[start] == 43 and start >= 2 and t.classes[start - 2] in _LETTERS


def _dots_before(classes: bytes, start: int) -> bool:
    """Whether two dots or more stand right before `start`, prose's ellipsis (`call me..555-123-4567`, `x...(555)
    123-4567`): a phone after them is read as after a space, as after a double dash, where a dot alone joins it to a
    word or a number before (`x.555-123-4567`, `1.555`). Since 2026-12-07: before, a phone there was left in clear."""
    return start >= 2 and classes[start - 1] == 46 and classes[start - 2] == 46


def _address_ending(t: _Text, start: int, end: int) -> int:
    """Where the white space before an IPv4 address that ends a phone candidate at `end` is; -1 when none ends it."""
    gap = t.classes.rfind(b" ", start, end) if t.classes.count(46, start, end) >= 3 else -1
    return gap if gap > 0 and _ipv4_ahead(t, gap + 1) == end else -1


def _unwritten_before(t: _Text, start: int, gap: int) -> bool:
    """Whether the numbers from `start` to the white space before an IPv4 address at `gap` (`_address_ending`) are
    split by white space alone, no phone's separators written in them: read alone as one candidate (`_phone`); written
    pieces are `_phone_among`'s (`555-123-4567 1234 10.0.0.1`: the phone, not the phone and `1234`)."""
    return _WRITTEN_AS_A_PHONE.search(t.classes, start, gap) is None


def _counted(t: _Text, start: int, end: int) -> bool:
    """Whether a phone candidate is numbers split by single spaces alone that are a row's, no one's phone: four or more
    that count up or down by one (`23 24 25 26 27 28 29`, a calendar's week) or are one number throughout (`0 0 0 0 0 0
    0 0 0 0`), or a Unix time in seconds among them (`_unix_time`: `ls -l --time-style=+%s`'s `4563 1733356800`) where
    no word of a phone's leads them (`_called`: `call 44 1632960123`, a UK number after its country's code, is a
    phone). Before 2026-12-05 each was a `pii:phone`; a phone dictated digit by digit (`5 5 5 1 2 3 4 5 6 7`) still is."""
    if _DIGITS_SPACED.fullmatch(t.raw, start, end) is None:
        return False
    groups = t.raw[start:end].split(b" ")
    if groups[0][:2] != b"00" and any(map(_unix_time, groups)):  # (`0044 1632960123`: a country's code before)
        return not _called(t, start)
    if (groups[0][0] != 48 or len(groups[0]) == 1) and any(map(_old_unix_time, groups)):
        return not _called(t, start)  # (a first group of `0` and more is a trunk's: `030 123456789`, Berlin's)
    if len(groups) < 4:
        return False
    if groups.count(groups[0]) == len(groups):
        return True
    steps = {int(groups[i + 1]) - int(groups[i]) for i in range(len(groups) - 1)}
    return steps == {1} or steps == {-1}


_DIGITS_SPACED: Final = re.compile(rb"[0-9]+(?: [0-9]+)+")


def _unix_time(number: bytes) -> bool:
    """Whether ten digits beginning with 1 are one: a Unix time in seconds (2001-09 to 2033-05). One beside other
    numbers is a row's (command output, logs), not found as a phone since 2026-12-05; so is a phone so written where an
    area code begins with 1 (the UK's and Germany's after their country's code without its `+`, `44 1632960123`,
    `49 1512345678`), but after a `+` (`+44 1632960123 1632960124`, `_phone_among`), a word of a phone's (`call 44
    1632960123`, `_called`) or in a list of such numbers none a recent time (`_dated`: Australia's `1800123456
    1300654321`). (Australia's were no times at all for a few hours of 2026-12-05: `ls -l --time-style=+%s`'s
    `4563 1800123456`, a file of 2027-01-15, was a phone again.)"""
    return len(number) == 10 and number[0] == 49


def _old_unix_time(number: bytes) -> bool:
    """Whether nine digits not beginning with 0 are a Unix time in seconds (1973-03 to 2001-09): `ls -l
    --time-style=+%s`'s of a file dated 1980, a zip archive's epoch (`737 315561600`), as Python's wheels and other
    zipped files unpacked keep. Beside another number, split by spaces alone, no phone's layout holds such a group
    but one after a country's code without its `+` (`351 912345678`, `33 612345678`: read as a row's too, as `44
    1632960123` is, unless a word of a phone's leads them, `_called`) or a trunk's `0` (`030 123456789`, `_counted`).
    Until 2026-12-05 (helper phones2) each was a `pii:phone`: 30,425 in `ls -lR --time-style=+%s /usr/lib /etc`."""
    return len(number) == 9 and number[0] != 48


def _dated(t: _Text, start: int, end: int) -> bool:
    """Whether a list of bare phones (`_phone_among`: every number in its run from `start` one's piece, `_listed`)
    whose pieces include a Unix time in seconds (`_unix_time`) holds none of 2009 or later (`1230768000`), as a line of
    times alone prints some (`stat -c '%X %Y %Z'`, `1733356800 1733443200`, an old file's atime recent): its numbers are
    phones. Since 2026-12-05: Brazil's São Paulo numbers, `1134567890 1134567891` (2005-06 to 2006-10 as times), were
    none; so were Australia's national numbers, `1800123456 1300654321` (`1300…` and `1800…`, 11 days each of 2011-03
    and 2027-01 as times), which a list reads as no recent time (`ls -l --time-style=+%s`'s `4563 1800123456`, a file
    of 2027-01-15, is a row's, as `_counted` reads it). A row holding another number (`4563 1133356800`, a file of
    2005) is read as before (`_counted`): its times go back to 2001. The run is read once (`_Text.recent`, kept with
    `_listed`'s): read again for each piece of each phone of a list, 8,000 such numbers took 66 s, 88 KB 147 s."""
    if t.recent == -2:
        t.recent = -1
        raw = t.raw
        for piece in _PHONE_PIECE.finditer(t.classes, t.run_from, end):
            number = raw[piece.start() : piece.end()]
            if _unix_time(number) and number >= b"1230768000" and number[:4] != b"1300" and number[:4] != b"1800":
                t.recent = piece.start()
    return t.recent < start


def _called(t: _Text, start: int) -> bool:
    """Whether a word before a phone candidate at `start`, past spaces and a `:`, `.` or `,` after it, names a phone
    (`call 44 1632960123`, `Tel.: 49 1512345678`; a word for its number between, `Phone number: 44 1632960123`, `Tel.
    No.: 49 1512345678`, and Europe's words, `Telefon: 49 1512345678`, `Handy: …`, since 2026-12-05, helper
    revphones): its numbers are a phone's, not a row of command output's. Since 2026-12-05 (helper phones3) up to two
    words that lead to a number may stand between (`_BETWEEN_WORDS`: `call me at 33 612345678`, `phone me on 44
    1632960123`), and words not spelt in ASCII name one too (`Tél: 33 612345678`, `Телефон`, `電話`): before, only the word just before was read, of ASCII
    letters. Three words back at most, each read back 24 bytes at most (helper revphones: read back to the word's
    start, and then past all the spaces, for each number of a list after 20,000 letters or spaces, 1,000 Unix times
    after them took 3.7 s, 6.7 s)."""
    raw = t.raw
    end = start
    for _ in range(3):
        first, end = _word_before(t, end)
        if first == end:
            return False
        word = raw[first:end]
        word = word.lower() if word.isascii() else word.decode("utf-8", "replace").lower().encode()
        if word in _PHONE_WORDS and not _joined_before(t, first):
            return True
        if word not in _BETWEEN_WORDS or _joined_before(t, first):
            # (only words that lead to a number between, `me at`, `number`; a word's end is none. Until helper
            # revphones3 any word of six bytes at most: a word of a phone's naming another thing was one, `ring
            # buffer 4563 1733356800`, `cell size: …`, `SMS sent …`, `the phone costs 1733356800 1733443200`)
            return False
        end = first
    return False


def _joined_before(t: _Text, first: int) -> bool:
    """Whether the word read back to `first` (`_word_before`) goes on before it: a letter, a digit or `_` there."""
    before = t.before(first)
    return before in _WORDISH or (before == 126 and _a_letter_before(t.raw, first))


def _word_before(t: _Text, start: int) -> tuple[int, int]:
    """Where the word before `start`, past up to six bytes of spaces, `:`, `.`, `,` or a full-width colon, starts and
    ends; of its last 24 bytes when longer (its letters ASCII's or not, `~`)."""
    raw = t.raw
    end = start
    low = max(start - 6, 0)
    while end > low:
        if raw[end - 1] in b" :.,":
            end -= 1
        elif end >= 3 and raw.startswith(_WIDE_COLON, end - 3):
            end -= 3
        else:
            break
    first = end
    low = max(end - 24, 0)
    while first > low and t.classes[first - 1] in _WORD_LETTERS:
        first -= 1
    return first, end


# words that may stand between a word of a phone's and its number (`_called`): `call me at`, `phone us on`, `Phone
# number:`, `Tel. No.:`, `Tel. Nr.`
_BETWEEN_WORDS: Final = frozenset(b"me us at on to is via by number no nr num nummer".split())
_WIDE_COLON: Final = "\uff1a".encode()
_WORD_LETTERS: Final = frozenset(b"aAxX~")
# words of a phone's (`_called`), English and, since 2026-12-05, Europe's spelt in ASCII (German, Dutch, the Nordics',
# Polish, Italian, Spanish, Portuguese); French, Spanish, Portuguese, Russian, Japanese and Chinese as they are spelt
# since 2026-12-05 (helper phones3)
_PHONE_WORDS: Final = frozenset(
    b"call phone phones tel telephone mobile mob cell fax dial sms ring"
    b" telefon telefono telefoon handy mobil celular telefonnummer tlf whatsapp".split()
    + "tél téléphone teléfono telefone телефон тел 電話 电话 電話番号 电话号码".encode().split()
)


# a card of 15 digits in American Express's groups, split by single spaces or dashes (`_phone`): none is a phone
_AMEX: Final = re.compile(rb"0000(?P<sep>[ -])000000(?P=sep)00000")


# a phone candidate that is two runs of digits with one dot between them is a decimal number, not a phone; one written
# so, `0301.2345678`, is not found (a phone's dotted forms split it more: `415.555.2671`)
_DECIMAL: Final = re.compile(rb"0+\.0+")
# four runs of digits joined by dots (`_version`)
_FOUR_DOTTED: Final = re.compile(rb"0+\.0+\.0+\.0+")


def _version(t: _Text, start: int, end: int) -> bool:
    """Whether a phone candidate is a version or a build number of four dotted parts, as Windows (`10.0.22631.2861`),
    .NET (`4.0.30319.42000`) and browsers (`120.0.6099.109`) write them: a part of five digits or more, or a part but
    the first of one digit. A phone written with dots has parts of two to four digits, but a leading `1`
    (`1.555.123.4567`), and one after a `+` is a phone. Before 2026-12-04 such a build number was a `pii:phone`."""
    if t.raw[start] == 43 or _FOUR_DOTTED.fullmatch(t.classes, start, end) is None:
        return False
    sizes = list(map(len, t.classes[start:end].split(b".")))
    return max(sizes) >= 5 or 1 in sizes[1:]


# a US postal code, ZIP+4, after a state's code (`_after_a_state`): as a Brazilian mobile is written, 5-4
_ZIP_PLUS_FOUR: Final = re.compile(rb"00000-0000")
_US_STATES: Final = frozenset(
    b"AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA "
    b"RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR VI AA AE AP".split()
)


def _after_a_state(t: _Text, start: int) -> bool:
    """Whether a state's code and a space stand before `start`, as in an address (`Springfield, IL 62704-1234`)."""
    return (
        start >= 3
        and t.raw[start - 1] == 32
        and t.raw[start - 3 : start - 1] in _US_STATES
        and (t.before(start - 3) not in _WORDISH)
    )


# a date and time as ISO 8601, RFC 3339, SQL, logs and Python's `str(datetime)` write them (`2024-01-15 12:30:45`,
# `2024-01-15T09:31:48.218123-05:00`, `15.01.2024 12:30`), or a time alone with its fraction and offset
_DATETIME: Final = re.compile(
    rb"(?<![0-9])(?:(?:[0-9]{4}([-./])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12][0-9]|3[01])"
    rb"|(?:0?[1-9]|[12][0-9]|3[01])([-./])(?:0?[1-9]|[12][0-9]|3[01])\2(?:[0-9]{4}|[0-9]{2}))[T ])?"
    rb"(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]{1,9})?)?(?: ?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?))?"
)


def _in_datetime(raw: bytes, start: int, end: int) -> bool:
    """Whether `raw[start:end]`, a phone candidate with a colon beside it, lies in a date and time (`_DATETIME`): the
    date and its hour (`2024-01-15 12`: ten digits) or a time's seconds, fraction and offset (`48.218123-05`) read as a
    phone, and a fifth of log lines and timestamps with a fraction and an offset were one."""
    for found in _DATETIME.finditer(raw, max(0, start - 20), min(len(raw), end + 24)):
        if found.start() <= start and end <= found.end():
            return True
    return False


_UUID: Final = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_OR_DASH: Final = frozenset(b"0123456789abcdefABCDEF-")


def _in_uuid(raw: bytes, start: int, end: int) -> bool:
    """Whether `raw[start:end]` lies in a UUID (8-4-4-4-12 hex digits standing alone): a uuid4's groups of digits
    read as a phone (`9bdc24bc-0068-4187-9491-f176b0fe97e3`: 0.22 % of random ones), and request ids, users, cache
    keys and metadata are UUIDs, read where they reach a model (KServe's OpenAI data plane)."""
    first = start
    while first > 0 and start - first <= 36 and raw[first - 1] in _HEX_OR_DASH:
        first -= 1
    last = end
    while last < len(raw) and last - end <= 36 and raw[last] in _HEX_OR_DASH:
        last += 1
    return last - first == 36 and _UUID.fullmatch(raw, first, last) is not None


def _ipv4s(t: _Text) -> Iterator[tuple[int, int]]:
    pos, stop = t.first, t.stop
    while (m := _IPV4.search(t.classes, pos, stop)) is not None:
        start, end = m.span()
        pos = end
        if t.before(start) in _WORDISH or t.before(start) == 46 or _joined_after(t, end):
            continue
        parts = t.raw[start:end].split(b".")
        if _octets(parts) and not _nobodys(parts):
            yield start, end


def _octets(parts: list[bytes]) -> bool:
    """Whether the four parts of an `_IPV4` candidate are an address's octets: 0-255, no leading zero."""
    return all(int(p) <= 255 and (p == b"0" or not p.startswith(b"0")) for p in parts)


def _nobodys(parts: list[bytes]) -> bool:
    """Whether an IPv4 address is every host's own, no one's: loopback (127.0.0.0/8), unspecified (0.0.0.0) or the
    broadcast address, as code and configs are full of (`127.0.0.1:8080`, `--host 0.0.0.0`)."""
    return parts[0] == b"127" or parts in (_UNSPECIFIED, _BROADCAST)


_UNSPECIFIED: Final = [b"0"] * 4
_BROADCAST: Final = [b"255"] * 4


def _ipv6s(t: _Text) -> Iterator[tuple[int, int]]:
    if _IPV6_TRIGGER.search(t.classes) is None:
        return
    for m in _IPV6.finditer(t.classes):
        start, end = m.span()
        candidate = t.raw[start:end]
        if candidate.count(b":") < 2 or len(candidate) < 6 or t.before(start) in _LETTERS or t.after(end) in _LETTERS:
            continue
        if _slice(t, start, end):
            continue
        try:
            ipaddress.IPv6Address(candidate.decode())
        except ValueError:
            continue
        yield start, end


def _slice(t: _Text, start: int, end: int) -> bool:
    """Whether an IPv6 candidate of decimal digits and colons is a subscript's extended slice (`arr[100::200]`,
    `x[::1000]`: valid IPv6 addresses), between brackets that a name, a call or another subscript opens; an address
    in brackets is in a URL or after an `@` (`http://[2001::1]:80/`)."""
    raw = t.raw
    return (
        start >= 2
        and raw[start - 1] == 91  # `[`
        and raw[end : end + 1] == b"]"
        and (t.classes[start - 2] in _WORDISH or raw[start - 2] in b")]")
        and _SLICE.fullmatch(t.classes, start, end) is not None
    )


_SLICE: Final = re.compile(rb"0*:0*(?::0*)?")  # (a slice has two colons at most: `2001:4860:4860::8888` has four)


def _ibans(t: _Text) -> Iterator[tuple[int, int]]:
    """IBANs in any case (`de89 3704 …`), mod-97 checked, of their country's length (`_iban`); only one of a country
    not listed, all in capitals, may be of any length of 15-34: lower-case hex, identifiers and lists of heads are
    common, and 1 in 97 passes the check by chance."""
    pos, stop = t.first, t.stop
    # every IBAN found starts with two letters and two digits, which prose with years in it seldom has: looked for
    # at C speed first (a search for `_IBAN` is tried at each pair of digits, each try costing as much as
    # translating a few hundred bytes)
    if t.classes[max(0, pos - 2) : stop].translate(_LEADS).find(b"aa00") < 0:
        return
    while (m := _IBAN.search(t.classes, pos, stop)) is not None:
        start, end = m.start() - 2, m.end()
        pos = end
        if _iban(t, start, end):
            yield start, end
        elif _IBAN_MAY_END_HERE.match(t.raw, max(0, start)) is not None and (ending := _iban_ending(t, start + 2)) > 0:
            pos = ending
            yield start, ending  # (as long as its country's, a number after it: `ES42 1460 0584 5609 2012 7926 555`)
        elif start < 0 or t.classes[start + 1] not in _LETTERS:
            pos = _head_within(
                t, start + 3, end
            )  # (a match from a number's digits, not from an IBAN look-alike's head)
        elif (digits := _iban_within(t, start + 3, end)) > 0:
            pos = _iban_ending(t, digits)
            yield digits - 2, pos
    yield from _joined_ibans(t)


def _head_within(t: _Text, first: int, end: int) -> int:
    """Where the search for `_IBAN` goes on after a match from a number's digits that is no IBAN, `first` past where
    it starts: at the check digits of an IBAN's head in it, after a space (`2024 DE89 3704 …`, the year's last digits
    read with the IBAN's groups); at its end if none. Searched on from its end, the IBAN was none, and `mask` left it
    in clear, until 2026-12-06. (A match from a look-alike's head is `_iban_within`'s.)"""
    head = t.classes[first:end].translate(_LEADS).find(b"#aa00")
    return end if head < 0 else first + head + 3


def _iban_within(t: _Text, first: int, end: int) -> int:
    """The check digits of an IBAN whose head is in a match from a look-alike's head that is no IBAN, `first` past
    where it starts, after a space (`ref AB12 DE89 3704 …`), read as long as its country's code says (`_iban_ending`);
    -1: none. Searched on from the match's end, the IBAN was none, and `mask` left it in clear, until 2026-12-07. (Not
    searched again from each head, as after a number's digits: in a list of look-alikes each group is one, and 1 MB
    of `DE12 AT34 FR56 …` took 8 times main's 0.11 s to scan so.)"""
    head = _COUNTRY_HEAD.search(t.raw, first - 1, end)
    if head is None:
        return -1
    pos = head.start()
    # (from the first head, the heads whose IBAN may end where it does, read past the match's end: an IBAN from a
    # head in it may end up to `_IBAN_MOST` after it)
    while (head := _IBAN_MAY_END.search(t.raw, pos, end + _IBAN_MOST + 1)) is not None and head.end() <= end:
        pos = head.end()
        if _iban_ending(t, pos - 2) > 0:
            return pos - 2
    return -1


# a country's IBAN head after a character that is no word's, and its check digits (`_iban_within`), in capitals or
# small letters; and one where an IBAN of its country's length may end after them, split by a space, a dash or a dot
# or in one run: no letter nor digit there (looked at first, one step at C speed). Searched in a match from a
# look-alike's head (a look at each `aa00` in it was 1.5 times the cost of 1 MB of `AB12 CD34 EF56 …`), the second
# from the first's head (run over each match and as far again past its end, the same list took 1.15 times as long),
# and only a head whose IBAN may end so read by `_iban_ending` (each was, and 1 MB of `DE12 AT34 FR56 GB78 IT90 ` took
# 3.8 times main's 0.11 s to scan, until 2026-12-07: in such a list, only a country whose IBAN's length is a multiple
# of four ends where a group does); by first letters (a list of 89 alternatives is tried one by one at each position),
# and no look-behind nor `re.IGNORECASE`: each doubled the search's cost


def _country_heads() -> bytes:
    """`_COUNTRY_HEAD`'s pattern: `A[DELTZ]|B[AEGHIRY]|…` from `_IBAN_LENGTHS`, then the same in small letters."""
    firsts = sorted({code[0] for code in _IBAN_LENGTHS})
    codes = "|".join(
        first + "[" + "".join(code[1] for code in _IBAN_LENGTHS if code[0] == first) + "]" for first in firsts
    )
    return f"[^0-9A-Za-z_](?:{codes}|{codes.lower()})[0-9]{{2}}".encode()


def _country_heads_ending(cases: tuple[Callable[[str], str], ...] = (str.upper, str.lower)) -> str:
    """`_IBAN_MAY_END`'s heads: by a head's first letter, each country's second (`D(?:E[0-9]{2}…|K[0-9]{2}…)`) from
    `_IBAN_LENGTHS` and where its IBAN may end (`_ends_after_head`), in capitals, then the same in small letters."""
    branches: list[str] = []
    for case in cases:
        for first in sorted({code[0] for code in _IBAN_LENGTHS}):
            seconds = "|".join(
                f"{case(code[1])}[0-9]{{2}}{_ends_after_head(length, code in _DIGITS_ONLY)}"
                for code, length in _IBAN_LENGTHS.items()
                if code[0] == first
            )
            branches.append(f"{case(first)}(?:{seconds})")
    return "|".join(branches)


def _ends_after_head(length: int, digits_only: bool = False) -> str:
    """Where an IBAN of `length` may end after its head (`_country_heads_ending`): a space, a dash or a dot after the head and
    no letter nor digit after its groups so split (`_iban_read_to_its_end`), or a letter or a digit and none after it
    in one run; the characters between skipped at once (`(?s:.){n}`, no scan), or, of a country whose BBAN is digits
    only (`_DIGITS_ONLY`), read as digits."""
    split, compact = length - 5 + (length - 1) // 4, length - 5
    if digits_only:
        groups, rest = divmod(length - 4, 4)
        last = f"[ .-][0-9]{{{rest}}}" if rest else ""
        return f"(?=(?:[ .-][0-9]{{4}}){{{groups}}}{last}(?![0-9A-Za-z])|[0-9]{{{length - 4}}}(?![0-9A-Za-z]))"
    return f"(?=[ .-](?s:.){{{split}}}(?![0-9A-Za-z])|[0-9A-Za-z](?s:.){{{compact}}}(?![0-9A-Za-z]))"


_COUNTRY_HEAD: Final = re.compile(_country_heads())
_IBAN_MAY_END: Final = re.compile(f"[^0-9A-Za-z_](?:{_country_heads_ending()})".encode())
# the same at a match's first head, in any case as `_iban_read_to_its_end` reads it, whatever stands before it (that
# reading's to judge): only a head whose IBAN may end so is read there (`_ibans`). Each was, and 1 MB of `DE12 AT34
# FR56 GB78 IT90 ` took 2.5 times its 0.11 s before 2026-12-06 to scan, the first head of each match read whole
_IBAN_MAY_END_HERE: Final = re.compile(_country_heads_ending((str.upper,)).encode(), re.IGNORECASE)


def _iban(t: _Text, start: int, end: int) -> bool:
    """Whether a match of `_IBAN` (from the two characters before it, `start`) is an IBAN."""
    if start < 0 or t.classes[start] not in _LETTERS or t.classes[start + 1] not in _LETTERS:
        return False
    if t.before(start) in _WORDISH or t.after(end) in _WORDISH:
        return False
    compact = t.raw[start:end].replace(b" ", b"").decode()
    if not 15 <= len(compact) <= 34:
        return False
    # (in capitals, a country's not listed may be of any length; a listed one's, of its own: a list of heads,
    # `DE12 AT34 FR56 GB78 IT90 DE12 AT34 FR56`, was read as one IBAN of 32 when mod-97 passed by chance, whole, until
    # 2026-12-07)
    if _IBAN_LENGTHS.get(compact[:2].upper(), len(compact) if compact.isupper() else 0) != len(compact) and (
        (compact[:2].upper(), len(compact)) not in _FORMER_IBAN_LENGTHS  # (Costa Rica's former 21)
    ):
        return False
    return (compact[4:].isdigit() or compact[:2].upper() not in _DIGITS_ONLY) and _mod97(compact)


def _in_iban(t: _Text, start: int, end: int) -> bool:
    """Whether a phone or a card candidate after a space, a dash or a dot is the account digits of an IBAN whose
    country and check digits stand one or two groups before it (`GB82 WEST 1234 5698 7654 32`, a bank's letters
    between; `GB09-RZNL-6907-0293-1375-85`, its groups joined as `_joined_ibans` reads them): before 2026-12-04 they
    were a `pii:phone` too, and until 2026-12-06 a `pii:credit_card` where they pass Luhn (`GB09 RZNL 6907 0293 1375
    85`), and a phone where joined. (After its first group alone, `DE89 3704 …`, the candidate is refused as a word's
    digits.)"""
    sep = t.before(start)
    if sep not in _IBAN_SEPARATORS:
        return False
    for head in (start - 10, start - 5):
        if head < 0 or not _iban_head(t, head + 2):
            continue
        if sep == 32:
            found = _IBAN.match(t.classes, head + 2)
            if found is not None and found.end() >= end and _iban(t, head, found.end()):
                return True
            continue
        joined = _IBAN_JOINED.match(t.classes, head + 2)
        if (
            joined is not None
            and joined.end() >= end
            and t.classes[joined.start(1)] == sep
            and _joined_iban(t, head, joined.end(), sep)
        ):
            return True
    return False


def _past_iban(t: _Text, start: int) -> int:
    """Where the IBAN a card or a phone candidate at `start` is in ends (`_iban_ending`), the candidate its check
    digits (`DE89 3704 0044 0532 0130 00`, `DE89370400440532013000`, `GB82WEST1234…`: the word they end) or in a later
    group (`GB82 WEST 1234 5698 7654 32`, after its bank's letters; `QA84.YHCP.J2B6.6I0J.JEI1.03ED.8FIA.8`, its
    last), its head searched for back over the groups split as that group is from the one before it; -1: none. The
    finder searches on from there, a card or a phone after the IBAN read as after a space: read with the IBAN as one
    run of numbers, `DE89 3704 0044 0532 0130 00 4111 1111 1111 1111` was no card, and `mask` left it in clear, until
    2026-12-06."""
    classes = t.classes
    lead = start
    if t.before(start) in _LETTERS:
        word = _WORD_BEFORE.search(classes, max(0, start - _IBAN_MOST), start)
        lead = word.start() if word is not None else start
        if classes[lead] in _LETTERS and classes[lead + 1] in _LETTERS and classes[lead + 2] == 48:
            ending = _iban_ending(t, lead + 2)
            if ending > start:
                return ending
    sep = t.before(lead)
    if sep not in _IBAN_SEPARATORS:
        return -1
    for group in range(lead - 5, max(-1, lead - _IBAN_MOST), -5):
        if classes[group + 4] != sep:
            return -1
        if classes[group] in _LETTERS and classes[group + 1] in _LETTERS and classes[group + 2] == 48:
            ending = _iban_ending(t, group + 2)
            if ending > start:
                return ending
    return -1


# the most characters an IBAN takes up, split: 34 and 8 separators; and the word a candidate after letters ends
_IBAN_MOST: Final = 42
_WORD_BEFORE: Final = re.compile(rb"(?<![0aAxX_])[aAxX0]+\Z")


def _iban_ending(t: _Text, digits: int) -> int:
    """`_iban_read_to_its_end`, read once for each head (`_Text.iban_endings`): the card, the phone and the IBAN
    finders each read it, and 1 MB of look-alikes (`DE88 3704 0044 0532 0130 00 `) took 2.3 times main's 0.47 s to
    scan, each read three times."""
    ending = t.iban_endings.get(digits, -2)
    if ending == -2:
        ending = _iban_read_to_its_end(t, digits)
        if t.iban_endings is _NO_STOPS:
            t.iban_endings = {}
        t.iban_endings[digits] = ending
    return ending


def _iban_read_to_its_end(t: _Text, digits: int) -> int:
    """Where the IBAN whose check digits are at `digits` ends: as long as its country's code says (`_IBAN_LENGTHS`),
    its groups of four split by one space, dash or dot throughout or by none, not joined to a word, mod-97 checked;
    -1: none so, or one going on past a stream scanner's window (read with what follows, in the next)."""
    head, classes = digits - 2, t.classes
    if head < 0 or classes[head] not in _LETTERS or classes[head + 1] not in _LETTERS or t.before(head) in _WORDISH:
        return -1
    length = _IBAN_LENGTHS.get(t.raw[head:digits].decode("latin-1").upper(), 0)
    sep = t.after(digits + 2)
    splits = (length - 1) // 4 if sep in _IBAN_SEPARATORS else 0
    end = head + length + splits
    if length == 0 or end > len(classes) or _ends_a_window(t, end) or t.after(end) in _WORDISH:
        return -1
    if splits and classes[head + 4 : end : 5] != bytes((sep,)) * splits:
        return -1  # (not split so throughout)
    if splits and sep != 32 and t.before(head) == sep and t.before(head - 1) in _WORDISH:
        return -1  # one group of more joined before it the same way (`_joined_iban`): a longer number's groups
    grouped, written = classes[head:end], t.raw[head:end]
    if splits:
        grouped, written = grouped.replace(bytes((sep,)), b""), written.replace(bytes((sep,)), b"")
    if len(grouped) != length or grouped.translate(_LEADS).find(b"#") >= 0 or not _mod97(written.decode()):
        return -1
    if written[:2].upper() in _DIGITS_ONLY_BYTES and grouped.count(48, 4) != length - 4:
        return -1  # (a letter in a BBAN of digits only)
    # one group of more joined by a dash or a dot as its groups are: a longer number, but for a card or a phone (read
    # after the check: a card's Luhn for each look-alike, `DE88.3704.….00.4111.1111.1111.1111`, was 1.9 times main's
    # time)
    return -1 if splits and t.after(end) in _JOINED_ON[sep] and not _value_joined_after(t, end) else end


# what stands between an IBAN's groups: a space, or a dash or a dot joining them all (`_IBAN`, `_IBAN_JOINED`)
_IBAN_SEPARATORS: Final = frozenset(b" -.")
# what, after an IBAN split by each, joins one group of more to it (`_iban_read_to_its_end`): the dash or the dot its
# groups are split by, as `_joined_iban` reads it; neither after one split by spaces, and the other after one split by
# dashes or dots, which a card or a phone after it may be joined by (`… 0130 00-4111-1111-1111-1111`,
# `…-0130-00.555-123-4567`: the IBAN was none to the card and phone finders, and the value after it left in clear by
# `mask`, until 2026-12-07)
_JOINED_ON: Final = {32: frozenset(), 45: frozenset((45,)), 46: frozenset((46,))}


def _joined_ibans(t: _Text) -> Iterator[tuple[int, int]]:
    """IBANs with dashes or dots between their groups of four (`DE89-3704-0044-0532-0130-00`), mod-97 checked and
    of their country's length in any case: dashes also join licence keys and other identifiers in fours. (Searched
    by `_ibans`, after the same check first: where one starts also reads `aa00`.)"""
    pos, stop, classes = t.first, t.stop, t.classes
    while (m := _IBAN_JOINED.search(classes, pos, stop)) is not None:
        start, end = m.start() - 2, m.end()
        pos = end
        if _joined_iban(t, start, end, classes[m.start(1)]):
            yield start, end
        elif _past_its_length(t, start, end) and (ending := _iban_ending(t, start + 2)) > 0:
            pos = ending
            yield start, ending  # (a card's groups taken in, `ES91.2100.0418.4502.0005.1332.4111.1111.…`)


def _past_its_length(t: _Text, start: int, end: int) -> bool:
    """Whether a match of `_IBAN_JOINED` from `start` is longer than an IBAN of its country's split so: only then may
    the IBAN be in it (`_iban_ending`, read once for each head; read for each look-alike, `GB10-RZNL-6907-0293-1375-85`,
    1 MB of them took twice main's 0.14 s to scan). None from a match at the text's first two characters, no head before
    it (`27-6246-4673` in `27-6246-4673 GB94…`): its slice from a negative start was empty, read so, and compiled, mypyc
    slices bytes from it as it stands, and the scan failed (SystemError, a negative size) until 2026-12-07."""
    if start < 0:
        return False
    length = _IBAN_LENGTHS.get(t.raw[start : start + 2].decode("latin-1").upper(), 0)
    return end - start > length + (length - 1) // 4


def _joined_iban(t: _Text, start: int, end: int, sep: int) -> bool:
    """Whether a match of `_IBAN_JOINED` (from the two characters before it, `start`), its groups joined by `sep`,
    is an IBAN: not joined to a word or to one group of more the same way, mod-97 checked, of its country's length."""
    classes = t.classes
    if start < 0 or classes[start] not in _LETTERS or classes[start + 1] not in _LETTERS:
        return False
    if t.before(start) in _WORDISH or t.after(end) in _WORDISH:
        return False
    if t.before(start) == sep and t.before(start - 1) in _WORDISH:
        return False  # one group of more joined the same way
    compact = t.raw[start:end].replace(bytes((sep,)), b"").decode()
    if (_IBAN_LENGTHS.get(compact[:2].upper()) != len(compact) or not _mod97(compact)) and (
        (compact[:2].upper(), len(compact)) not in _FORMER_IBAN_LENGTHS or not _mod97(compact)
    ):
        return False
    if not compact[4:].isdigit() and compact[:2].upper() in _DIGITS_ONLY:
        return False  # (a letter in a BBAN of digits only)
    # (so after it, but for a card or a phone: `_value_joined_after`, read after the check, by `_iban_ending`)
    return not (t.after(end) == sep and t.after(end + 1) in _WORDISH) or _iban_ending(t, start + 2) == end


def _card_joined_after(t: _Text, end: int) -> bool:
    """Whether a card follows an IBAN's end joined by a dash or a dot, its four groups of four joined the same way and
    nothing more so (`DE89.3704.0044.0532.0130.00.4111.1111.1111.1111`), Luhn-valid: the run is no longer number's.
    Read as one group of more joined to it, neither was found, and `mask` left both in clear, until 2026-12-07."""
    joint, last = t.after(end), end + 20
    card = _CARD_JOINED_SO.get(joint, b"")
    return (
        card != b""
        and t.classes.startswith(card, end)
        and not _ends_a_window(t, last)
        and t.after(last) not in _WORDISH
        and not (t.after(last) == joint and t.after(last + 1) in _WORDISH)
        and _card(t.raw[end + 1 : last])
    )


# a card's four groups of four after an IBAN, joined to it and to each other by a dash or a dot (`_card_joined_after`)
_CARD_JOINED_SO: Final = {joint: bytes((joint,)) + bytes((joint,)).join([b"0000"] * 4) for joint in (45, 46)}


def _value_joined_after(t: _Text, end: int) -> bool:
    """Whether what follows the dash or dot joined to an IBAN's end (`end`) as its groups are is a card or a phone:
    four groups of four joined the same way (`_card_joined_after`), or one the card or phone finder finds there when
    the rest of its run of numbers is read alone, as after a space (`DE89-3704-0044-0532-0130-00-555-123-4567`,
    `DE89.….00.555-123-4567`, `DE89-….00-4111 1111 1111 1111`): the run is the IBAN and that value, no longer number.
    Read as one group of more, neither was found, and `mask` left both in clear, until 2026-12-07. A run going on past
    a stream scanner's window is none so (read with what follows, in the next). A dash or dot then no digit, letter
    or `_` (`…-00--555-123-4567`) joins no group: what follows is read as after a space, as `_joined_iban` reads it
    (read as a group of more, the phone there was left in clear until 2026-12-07)."""
    if _card_joined_after(t, end):
        return True
    if not t.classes.startswith(b"0", end + 1) and t.after(end + 1) not in _WORDISH:
        return True  # (a digit there, the common case, looked at first: `after` is a call)
    first = end + 1
    if t.classes.startswith(b"0000", first) and t.after(first + 4) == t.classes[end]:
        # the IBAN's groups of four going on, but for a card of four: a longer number's (read alone, a phone,
        # `…-1332-1234-5678-9012`, or a card of 18 digits, Luhn-valid one time in ten, `…-6533-7710-5345-6562-4911-30`)
        return False
    run = _TAIL_RUN.match(t.classes, first, first + _TAIL_MOST + 1)  # (matches, if only "")
    last = run.end() if run is not None else first
    if last > first + _TAIL_MOST:
        # (a longer run: read to its last white space so far, as a stream scanner's window ending there reads it;
        # refused, a phone streamed in a window ending after it was found with the IBAN, none whole)
        last = t.classes.rfind(32, first, first + _TAIL_MOST)
        if last < 0:
            return False
    # (the value starting the run is digits and a card's or a phone's separators: its digits are before the run's first
    # `,` `/` `:` or `_`; counted in the whole run, each IBAN of 1 MB of `DE89-….00-555,123,4567,1,2,…,20 ` had its run
    # read by the card and phone finders, none found, in 1.3 times main's time)
    value = _TAIL_VALUE.match(t.classes, first, last)
    if _ends_a_window(t, last) or value is None or t.classes.count(48, first, value.end()) < 9:
        return False  # (fewer digits than a phone's fewest: no value, and no text to read it in made)
    # the run and the character after it (a word's joins the value to it), cut where a character not ASCII is
    tail, joint = _Text(t.raw[first : last + 1].decode("utf-8", "replace")), t.classes[end]
    return any(_ends_the_run(tail, found, joint) for found in _cards(tail)) or any(
        _ends_the_run(tail, found, joint) for found in _phones(tail)
    )


def _ends_the_run(tail: _Text, found: tuple[int, int], joint: int) -> bool:
    """Whether a value found in the rest of an IBAN's run read alone (`_value_joined_after`) starts it, and nothing
    more is joined after it by the IBAN's dash or dot (`DE89-….00-4111-1111-1111-1111-22`, a card the card finder
    reads before a short group, is one longer number's groups, no IBAN and card), nor by a word."""
    start, end = found
    after = tail.after(end)
    return start == 0 and after not in _WORDISH and not (after == joint and tail.after(end + 1) in _WORDISH)


# a run of numbers after an IBAN's end (`_value_joined_after`): digits and what a card's or a phone's groups are split
# by, or a row's; the longest read so, past a card with its expiry and code or a phone with its country's code
_TAIL_RUN: Final = re.compile(rb"[0 ().+/:,_-]*")
_TAIL_MOST: Final = 64
# what a value starting that run may hold (`_value_joined_after`): digits and a card's or a phone's separators
_TAIL_VALUE: Final = re.compile(rb"[0 ().+-]*")


def _iban_ends_at(t: _Text, joint: int) -> bool:
    """Whether an IBAN read as long as its country's code says (`_iban_ending`) ends at `joint`, the dash or dot a card
    or a phone is joined to it by (`_value_joined_after`, `… 00-4111-1111-1111-1111`, `… 00.555-123-4567`): read as
    after a space, not as a longer number's groups or a decimal's."""
    first = max(0, joint - _IBAN_MOST)
    leads = t.classes[first:joint].translate(_LEADS)
    head = leads.find(b"aa00")
    while head >= 0:
        if _iban_ending(t, first + head + 2) == joint:
            return True
        head = leads.find(b"aa00", head + 1)
    return False


def _after_iban_within(t: _Text, start: int, end: int) -> int:
    """Where the search for a dotted card goes on after a match that is none, at `start:end`: after the end of an IBAN
    in it (`AL66.4892.….9915.1957.4111.1111.1111.1111`, the match `9915.1957.4111.1111`), a card joined to the IBAN
    starting there; at its end if none. (The heads before it found in one `translate` and `find`.)"""
    first = max(0, start - _IBAN_MOST)
    leads = t.classes[first:end].translate(_LEADS)
    head = leads.find(b"aa00")
    while head >= 0:
        ending = _iban_ending(t, first + head + 2)
        if start < ending < end:
            return ending + 1
        head = leads.find(b"aa00", head + 1)
    return end


def _mod97(compact: str) -> bool:
    """ISO 13616's check, its letters made numbers in one call: a character at a time, 1 MB of dashed IBANs took
    0.66 s of the event loop to scan until 2026-12-06, where each is read by the card and phone finders too."""
    return compact.isalnum() and int((compact[4:] + compact[:4]).translate(_BASE36_LETTERS)) % 97 == 1


# a letter's value as ISO 13616 reads it, either case (`A` and `a` 10, `Z` and `z` 35), for `str.translate`
_BASE36_LETTERS: Final = str.maketrans(
    {ch: str(int(ch, 36)) for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
)


def _emails(t: _Text) -> Iterator[tuple[int, int]]:
    """Addresses, each read from where its local part starts: searched once in each stretch of text near `@`
    signs (every `@` was a search of the 320 characters around it: 13 s for a megabyte of `a@`). A search
    goes on after the `@` of what it found, so an address whose local part another's domain ran into is
    read from the start of its own."""
    if t.wide:
        yield from _wide_emails(t)
        return
    classes = t.classes
    size = len(classes)
    glued = _glued_ahead(t)
    for near in _AT_NEAR.finditer(classes):
        position, end = max(0, near.start() - 64), min(size, near.end() + 255)
        while (found := _EMAIL.search(classes, position, end)) is not None:
            last = _domain_end(t, found.end())
            if (
                last >= 0
                and _ends(t, last)
                and not (glued and found.start() == 0)
                and not (t.more and _unfinished(classes, found.start(), last))
                and not _code(t, found.start(), last)
            ):
                yield found.start(), last
            position = found.end(1)
    if _ODD_ADDRESS.search(t.raw) is not None:
        yield from _odd_addresses(t)


def _glued_ahead(t: _Text) -> bool:
    """Whether a stream scanner's window (`_Text.ahead`) starts just after a character a local part holds: a local part
    found at its start is the end of a longer one, cut there, which the text read whole holds (and, longer than 64,
    is none). Before 2026-12-05 `q` * 200 + `bob@example.com` streamed was an address at some cuts (helper emails)."""
    ahead = t.ahead
    return ahead != "" and ahead.isascii() and (ahead.isalnum() or ahead in "._%+-")


def _unfinished(classes: bytes, start: int, end: int) -> bool:
    """Whether an address found from `start` to `end` in a stream scanner's window that more follows (`_Text.more`)
    may go on in what follows: it ends at the window's end, or but for what may go on after it (`_ADDRESS_GOES_ON`),
    within what the scanner reads
    again with what follows (`_OVERLAP`), or as the text's end (`StreamScanner._mail_open`). Read as found, a
    top-level domain cut there (`…@example.co` | `mqqq…`) was an address the text read whole holds none of
    (2026-12-05, helper emails)."""
    size = len(classes)
    if size - start > _OVERLAP:
        return False
    # (but for underscores only, a file's name cut, `_2024.csv` | `ale`, and a domain's next label, `.` | `cc…`, were
    # found in the window, none read whole, until 2026-12-05, helper revemails)
    while end < size and classes[end] in _ADDRESS_GOES_ON:
        end += 1
    return end == size


def _domain_end(t: _Text, end: int) -> int:
    """Where a top-level domain that `_EMAIL` or `_address` read up to `end` ends: past its A-label's rest if it is one
    (`.xn` then `--p1ai`, Russia's `рф`), at `end` otherwise; -1 if a word joins the A-label's rest on (`_ends`: a
    file's name may, `jane@example.xn--p1ai_2024.csv`). `jane@example.xn--p1ai` was masked up to `xn` (2026-12-05);
    this was written at each of the three places an address's end is read until 2026-12-05 (helper emails)."""
    raw = t.raw
    if end >= len(raw) or raw[end] != 45 or raw[end - 3 : end].lower() != b".xn":
        return end
    rest = _A_LABEL_REST.match(raw, end)
    if rest is None:
        return end
    return rest.end() if _ends(t, rest.end()) else -1


def _ends(t: _Text, end: int) -> bool:
    """Whether an address's domain ends at `end`: no word joins it there, or underscores do after a top-level domain
    (`alice@example.com_2024.csv`: `_ASCII_TLDS`) and a local part that ends in no `+`, `-`, `.` or `%`: Ruby's
    `"k: "+@k.to_s`, `-@k.to_i` (an instance variable, `to` Tonga's domain) were addresses (2026-12-04); and they
    go on as a file's name does (`_FILE_NAME_AFTER`): `x@self.in_proj_weight[…]` was one."""
    after = t.after(end)
    if after not in _WORDISH:
        return True
    if after != 95:
        return False
    dot = t.raw.rfind(b".", 0, end)
    tld = t.raw[dot + 1 : end].lower().decode("ascii", "replace")
    if tld not in _ASCII_TLDS and not tld.startswith("xn--"):  # (an A-label: `_domain_end`)
        return False
    return t.raw[t.raw.rfind(b"@", 0, dot) - 1] not in _LOCAL_ENDS and _FILE_NAME_AFTER.match(t.raw, end) is not None


def _code(t: _Text, start: int, end: int) -> bool:
    """Whether what reads as an address from `start` to `end` is code. Its top-level domain no delegated one nor a
    private mail name (`_MAIL_TLDS`), it is where its domain is directly followed by `(` or `[`, a call or an index
    (`q@k.transpose(-2,-1)`, `P@np.linalg.solve(A,b)`), or where its local part is glued to an operator, `=`, `(`,
    `,` or `[` before it (`=X@`, `(h@`, `*a@`: `t=X@self.coef+b`). Glued so, it is also where a call or an index
    follows, its top-level domain none of `_COMMENTED_TLDS` (`out=x@w.to(device)`: RFC 5322's comment after an
    address, `dinsdale@example.com(bar)`, is no call), and where a file's name goes on after it with no extension a file has
    (`y=x@self.in_proj.bias`; `_EXTENSIONS`). Checked once per address found."""
    raw = t.raw
    size = len(raw)
    # (`[^`: a Markdown footnote, `bob@firma.at[^1]`, no index: none until 2026-12-05, review)
    called = end < size and raw[end] in _CALL_OR_INDEX and raw[end + 1 : end + 2] != b"^"
    glued = start > 0 and raw[start - 1] in _CODE_BEFORE
    if not called and not glued:
        return False
    dot = raw.rfind(b".", start, end)
    tld = raw[dot + 1 : end].decode("utf-8", "replace").lower()
    if called and glued:
        return tld not in _COMMENTED_TLDS
    mail = tld in _MAIL_TLDS or tld in _IDN_TLD_SET or tld.startswith("xn--")  # (an A-label: `_domain_end`)
    if called:
        return not mail or (tld in _CALLED_TLDS and not (_in_prose(raw, start, t.ahead) and _named(raw, start, dot)))
    if _mail_key(raw, start - 1):
        return False
    if not mail or (tld in _ATTRIBUTE_TLDS and raw[start - 1] in _OPERATORS and not _named(raw, start, dot)):
        return True
    if end < size and raw[end] == 95:
        name = _FILE_NAME_AFTER.match(raw, end)
        if name is not None:
            if b"." in name.group():
                return name.group().rpartition(b".")[2].partition(b"(")[0].lower() not in _EXTENSIONS
            # (words then digits with no extension are a name's, `z=a@self.ai_proj_1`, unless the address is named as
            # mail is, `x=alice@example.com_v2`; digits alone a file's)
            return not name.group().lstrip(b"_").partition(b"(")[0].isdigit() and not _named(raw, start, dot)
    return False


def _named(raw: bytes, start: int, dot: int) -> bool:
    """Whether the address from `start`, its top-level domain after the `.` at `dot`, is named as mail is, not as
    Python's operands and attributes are: a local part of 2 characters or more, a first label of its domain of 3 or
    more, and no label `self`, `cls` or with `_` in it (`_CODE_NAMES`)."""
    at = raw.find(b"@", start, dot)
    if at - start < 2:
        return False
    domain = raw[at + 1 : dot]
    labels = domain.split(b".")
    if len(labels[0]) < 3 or b"_" in domain:
        return False
    return all(label.lower() not in _CODE_NAMES for label in labels)


def _in_prose(raw: bytes, start: int, ahead: str) -> bool:
    """Whether the local part at `start` stands as a word of prose does: first in the text or a line, or after spaces
    that no operator, `=`, `,` or opening bracket (`_OPERAND_BEFORE`; a colon may end a word of prose), nor a keyword
    of `_CODE_KEYWORDS`, is before (`v = x@df.at[0]`, `return emb@model.to(device)` are code). At the start of a stream
    scanner's window, by the character before it (`_Text.ahead`): a tail that starts in a long token,
    `…(alice@gmx.at(home)`, `…=emb@model.to(d)`, read its operand as first in the text until 2026-12-05 (helper
    revemails)."""
    if start == 0:
        return ahead in _PROSE_AHEAD
    if raw[start - 1] in b"\n\r":
        return True
    if raw[start - 1] not in b" \t":
        return False
    end = start - 1
    while end > 0 and raw[end - 1] in b" \t\r\n":
        end -= 1
    if end == 0:
        return ahead in _PROSE_AHEAD
    if raw[end - 1] in _OPERAND_BEFORE:
        # (but a list's bullet or a quote's mark first in a line: `- bob@uni.no(office)`, `> …`. Looked for back to the
        # line's start, a line of a megabyte of `= ab@cde.to(` took 1.5 s until 2026-12-05, helper revemails)
        if raw[end - 1] not in b"-*>":
            return False
        end -= 1
        while end > 0 and raw[end - 1] in b" \t":
            end -= 1
        return end == 0 or raw[end - 1] in b"\n\r"
    word = _KEY_BEFORE.search(raw, max(0, end - 40), end)
    return word is None or word.group() not in _CODE_KEYWORDS


def _mail_key(raw: bytes, glue: int) -> bool:
    """Whether the `=` at `glue` assigns to a name that holds an address: `mail` in it, or its last word, or its last
    two joined, one of `_MAIL_KEYS` (`user=`, `reply_to=`, `replyTo=`, `user_name=`, `EmailAddress=`). Any word was
    one until 2026-12-05 (review): `user_emb=u@self.proj.weight`, `to_dev=x@self.proj.weight` were addresses."""
    if raw[glue] != 61:
        return False
    key = _KEY_BEFORE.search(raw, max(0, glue - 40), glue)
    if key is None:
        return False
    name = key.group()
    if b"mail" in name.lower():
        return True
    words = [word.lower().decode() for word in _KEY_WORD.findall(name)]
    return len(words) > 0 and (words[-1] in _MAIL_KEYS or "".join(words[-2:]) in _MAIL_KEYS)


def _odd_addresses(t: _Text) -> Iterator[tuple[int, int]]:
    """Addresses with a quoted local part or an IP address for a domain (`_ODD_ADDRESS`), each from its local part to
    its domain's end; a local part before brackets of ASCII (`_EMAIL`'s), quoted, or with letters that are not ASCII
    (`_wide_local`), and a domain of names ending in an ASCII top-level one."""
    raw = t.raw
    for quoted in _QUOTED.finditer(raw):
        if _ends(t, quoted.end()):
            yield quoted.span()
    if b'\\"@' in raw:
        for quoted in _QUOTED_ESCAPED.finditer(raw):
            if _ends(t, quoted.end()):
                yield quoted.span()
    for literal in _IP_LITERAL.finditer(raw):
        at = literal.start()
        six = literal.group(1) or literal.group(2)
        if six is not None:
            try:
                ipaddress.IPv6Address(six.decode())
            except ValueError:
                continue
        first = _quoted_local(raw, at) if at > 1 and raw[at - 1] == 34 else -1  # (`"`)
        if first < 0:
            local = _LOCAL_PART.search(t.classes, max(0, at - 64), at)
            first = at if local is None else local.start()
            if t.wide and first > 0 and raw[first - 1] >= 0x80:
                first = _wide_local(raw, first, at)
        if first < at:
            yield first, literal.end()


def _quoted_local(raw: bytes, at: int) -> int:
    """Where a quoted local part that ends at the `"` before the `@` at `at` starts (`"a b"@[1.2.3.4]`, in JSON
    `\\"a b\\"@[…]`), -1 if none does: tried once, from the last `"` before it that is no quoted pair's (that none
    holds; in JSON, the last escaped once), at most 128 bytes back (its longest). Searched for from 256 bytes back,
    each `"` there read up to 60 characters on, a megabyte of `\\"a \\"@[1.2.3.4]` took 8 s (2026-12-05, review)."""
    low = max(0, at - 128)
    escaped = _backslashes(raw, at - 1, low) % 2 == 1  # (its last `"` escaped: in JSON)
    quote = raw.rfind(b'"', low, at - 1)
    while quote >= 0:
        run = _backslashes(raw, quote, low)
        if escaped and run == 1:
            return quote - 1 if _QUOTED_LOCAL_ESCAPED.fullmatch(raw, quote - 1, at) is not None else -1
        if run % 2 == 0:
            if escaped:
                return -1
            return quote if _QUOTED_LOCAL.fullmatch(raw, quote, at) is not None else -1
        quote = raw.rfind(b'"', low, quote - run)
    return -1


def _backslashes(raw: bytes, end: int, low: int) -> int:
    """How many `\\` are right before `end`, back to `low` at most."""
    start = end
    while start > low and raw[start - 1] == 92:
        start -= 1
    return end - start


def _wide_local(raw: bytes, first: int, at: int) -> int:
    """Where a local part before an IP address in brackets starts when letters that are not ASCII are in it
    (`jörg@[1.2.3.4]` was masked from `rg` until 2026-12-05): read back in its characters, at most 64 of them, from
    the last letter of a script without spaces if ASCII follows it, as `_address` reads one (`会議室でtanaka@[…]` was
    masked from `会`, 2026-12-05, review)."""
    start = max(0, at - 256)
    while start < first and 0x80 <= raw[start] < 0xC0:  # (a UTF-8 continuation byte: on to where a character starts)
        start += 1
    text = raw[start : at + 1].decode("utf-8", "surrogatepass")  # (with its `@`: `_SPACELESS_BEFORE` looks for it)
    local = _address_patterns()[0].search(text, max(0, len(text) - 65), len(text) - 1)
    if local is None:
        return first
    head = local.start()
    spaceless = _SPACELESS_BEFORE.search(text, head)
    if spaceless is not None:
        head = spaceless.end()
    return start + len(text[:head].encode("utf-8", "surrogatepass"))


def _wide_emails(t: _Text) -> Iterator[tuple[int, int]]:
    """Addresses in a text that is not ASCII: `_EMAIL_WIDE` tried once at each `@`, from where the run of what a
    local part holds before it starts (at most 64 bytes back), found at C speed in the class string translated
    (`_LOCAL_RUNS`): a local part may start inside a run of `~`, and searched for, it was tried at each of its
    bytes (3 s for a megabyte of `é…é@é…é.`)."""
    classes = t.classes
    size = len(classes)
    runs = classes.translate(_LOCAL_RUNS)
    glued = _glued_ahead(t)
    at = classes.find(b"@")
    while at >= 0:
        start = max(at - 64, runs.rfind(b"#", max(0, at - 64), at) + 1)
        found = None if glued and start == 0 else _EMAIL_WIDE.match(classes, start, min(size, at + 256))
        if found is not None:
            start, stop = found.span()
            if 126 in classes[start:stop]:  # `~`: a character that is not ASCII in it
                address = _address(t, start, stop)
                if address is not None:
                    first, last = address
                    last = _domain_end(t, last)
                    if last >= 0 and not (t.more and _unfinished(classes, first, last)) and not _code(t, first, last):
                        yield first, last
            elif _EMAIL.fullmatch(classes, start, stop) is not None:  # all ASCII: read as `_EMAIL` reads it
                stop = _domain_end(t, stop)
                if (
                    stop >= 0
                    and _ends(t, stop)
                    and not (t.more and _unfinished(classes, start, stop))
                    and not _code(t, start, stop)
                ):
                    yield start, stop
        at = classes.find(b"@", at + 1)
    if _ODD_ADDRESS.search(t.raw) is not None:
        yield from _odd_addresses(t)


def _address(t: _Text, start: int, end: int) -> tuple[int, int] | None:
    """The address in what `_EMAIL_WIDE` found, read in its characters: a local part of letters, marks, digits and
    `._%+-` (from the last letter of a script without spaces, if ASCII follows it); labels of letters, marks,
    digits and dashes; and the last of them that is a top-level domain ends it: 2-24 ASCII letters (then no ASCII
    letter or digit, nor underscores before a word, as `_emails` reads it) or one of `_IDN_TLDS` (`例子.中国.谢谢`: the ideographic full stop ending
    a sentence is read as `.`). A candidate with no label that may start one is not read at all (`é@é.é@é.…`)."""
    raw, classes = t.raw, t.classes
    dot = classes.find(b".", classes.find(b"@", start, end), end)
    while dot >= 0 and not (
        (classes[dot + 1] in _LETTERS and t.after(dot + 2) in _LETTERS) or raw[dot + 1 : dot + 3] in _IDN_HEADS
    ):
        dot = classes.find(b".", dot + 1, end)
    if dot < 0:
        return None
    while start < end and 0x80 <= raw[start] < 0xC0:  # (a UTF-8 continuation byte: on to where a character starts)
        start += 1
    while end < len(raw) and 0x80 <= raw[end] < 0xC0:
        end += 1
    # and what ends the top-level domain or joins it to a word (`_ASCII_TLD`): the character after it, past a run of
    # underscores (`_WORD`). With one character only, `jörg@exämple.de_backup` was an address ending `de`, where
    # `alice@example.com_backup` is none
    tail = _run_end(classes, end)
    after = tail
    while after < len(raw) and (after == tail or 0x80 <= raw[after] < 0xC0):
        after += 1
    text = raw[start:after].decode("utf-8", "surrogatepass")
    size = len(text) - (tail - end) - (1 if after > tail else 0)
    at = text.find("@")
    local_run, domain_run = _address_patterns()
    local = local_run.search(text, 0, at)
    domain = domain_run.match(text, at + 1, size)
    if local is None or domain is None:
        return None
    first = local.start()
    spaceless = _SPACELESS_BEFORE.search(text, first, at + 1)
    if spaceless is not None:
        first = spaceless.end()
    last = domain.end()
    dot = text.rfind(".", at, last)
    while dot > at:
        # ASCII letters that a letter of another script follows end an address of ASCII only (`…@example.com谢谢`),
        # not one that has others (`会議@東京。Zoomで参加`: `@` reads "at", the full stop ends a sentence)
        tld = _ASCII_TLD.match(text, dot + 1)
        if tld is None:  # (underscores then a word after a top-level domain end it: `_ends`)
            tld = _ASCII_TLD_JOINED.match(text, dot + 1)
            if tld is not None and (
                tld.group().lower() not in _ASCII_TLDS
                or ord(text[at - 1]) in _LOCAL_ENDS
                or _FILE_NAME_AFTER.match(raw, start + len(text[: tld.end()].encode("utf-8", "surrogatepass"))) is None
            ):
                tld = None
        if tld is not None and tld.end() <= last and (tld.end() == last or text[first:dot].isascii()):
            last = tld.end()
            break
        if text[dot + 1 : last].lower() in _IDN_TLD_SET:
            break
        last, dot = dot, text.rfind(".", at, dot)
    if dot <= at:
        return None
    start += len(text[:first].encode("utf-8", "surrogatepass"))
    return start, start + len(text[first:last].encode("utf-8", "surrogatepass"))


def _address_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """`_address`'s patterns of a local part and of a domain's labels, made on first use (by `Detectors` when it
    looks for addresses): Unicode's marks, that `\\w` does not take in (`भारत`), are found by reading every
    character's category, in ~50 ms."""
    if not _ADDRESSES:
        marks = "".join(
            re.escape(chr(code)) for code in range(0x300, 0x20000) if unicodedata.category(chr(code))[0] == "M"
        )
        _ADDRESSES.append(re.compile(f"[\\w.%+\\-{marks}]+\\Z"))
        _ADDRESSES.append(re.compile(f"[\\w\\-{marks}]+(?:\\.[\\w\\-{marks}]+)*"))
    return _ADDRESSES[0], _ADDRESSES[1]


def _custom(pattern: re.Pattern[str]) -> Finder:
    def find(t: _Text) -> Iterator[tuple[int, int]]:
        text = t.raw.decode("utf-8", "surrogatepass")
        # a window of a stream (`_Text.ahead`, `_Text.more`): searched from after the character before it (a search's
        # `pos` is no string's start for `^`, `\A`, `\b`), and a match ending at its end (or before its last newline,
        # where `$` matches too), where more follows, is no match yet (read again with what follows, or as the end:
        # `StreamScanner`). Before 2026-12-05 `^SECRET` matched a window starting mid-text, `SECRET $` one ending at a
        # piece's edge, none in the text read whole
        ahead = t.ahead
        skip = len(ahead)
        if skip:
            text = ahead + text
        end = len(text) + 1
        again = 0  # (where what is read again starts: a match starting before it is not read again, so counts now)
        if t.more:
            end = len(text) - 1 if text.endswith("\n") else len(text)
            again = len(text) - t.more
        for m in pattern.finditer(text, skip):
            # (before 2026-12-05 one longer than that was skipped too, and never read again: `SECRET\S*` before a
            # token of 5,000 characters was found whole, not streamed)
            if m.end() >= end and m.start() >= again:
                continue
            start = len(text[skip : m.start()].encode("utf-8", "surrogatepass"))
            yield start, start + len(m.group().encode("utf-8", "surrogatepass"))

    return find


_BUILTIN: dict[str, tuple[Finder, ...]] = {
    "email": (_emails,),
    "phone": (_phones,),
    "credit_card": (_cards,),
    "ip_address": (_ipv4s, _ipv6s),
    "iban": (_ibans,),
}
# What every match of a finder contains: a class byte, how many digits at least, and a run of class bytes (as text).
# A text without them is not scanned by that finder, checked in C cheapest first: most prose has no
# digits, so four of the six builtin scans are skipped by one memchr; prose with a few numbers in it
# (years, prices) is too short of digits for a card (13 at least) or a phone (9), and has no "0.0" for
# an address.
_NEEDS: dict[Finder, tuple[bytes, int, str]] = {
    _cards: (b"0", 13, ""), _phones: (b"0", 9, ""), _ipv4s: (b"0", 4, "0.0"), _ibans: (b"0", 2, "00"),
    _emails: (b"@", 0, ""), _ipv6s: (b":", 0, ""),
}  # fmt: skip
# The check a finder makes first, over the stretch it searches (from `back` characters before the first digit):
# its class string translated by a table holds what every match does (as text). `scan` makes it before calling the
# finder, which costs more than the check (a generator made, run and dropped) when it finds nothing, as it mostly does.
# Text, searched with str's `find` (C): `needle in stretch` on bytes first reads a bytes needle as an int, and formats
# and drops the TypeError that fails (a string made, about 1,450 instructions a check compiled), before it searches
_LEADS_IN: Final[dict[Finder, tuple[bytes, str, int]]] = {
    _phones: (_DIALS, "000000000", 0), _ibans: (_LEADS, "aa00", 2),
}  # fmt: skip


_FOLD_PIECE: Final = 4096
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15.1; the same since 14.0):
# characters that show nothing, dropped
_IGNORABLE = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, (non-)joiner, left-to-right and right-to-left marks
    (0x202A, 0x202E),  # bidi embeddings, pop, overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1-16
    (0xFEFF, 0xFEFF),  # zero-width no-break space
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol beam, tie, slur, phrase
    (0xE0000, 0xE0FFF),  # language tag, tag characters, variation selectors 17-256, unassigned
)
# dashes (Unicode's Pd: en dash, non-breaking hyphen ...; the minus sign and those NFKC makes it) read as '-'
_DASHES = "\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead\u2212\u207b\u208b"
# full stops IDNA reads as '.' (ideographic, fullwidth, halfwidth ideographic, and the vertical form NFKC
# makes ideographic)
_STOPS = "\u3002\uff0e\uff61\ufe12"
# every decimal digit (Unicode's Nd, as this Python's unicodedata knows them; none lies past U+1FFFF) as
# ASCII: NFKC leaves `٤` and `४` as they are
_DECIMALS = {ord(c): str(unicodedata.decimal(c)) for c in filter(str.isdecimal, map(chr, range(0x80, 0x20000)))}
_FOLD: Final[dict[int, str | None]] = {
    **dict.fromkeys(code for first, last in _IGNORABLE for code in range(first, last + 1)),
    **dict.fromkeys(_CONTROL_BYTES),
    **dict.fromkeys(code for code in range(0x80, 0xA0) if code != 0x85),
    **_LINE_BREAKS,
    **dict.fromkeys(map(ord, _DASHES), "-"),
    **dict.fromkeys(map(ord, _STOPS), "."),
    **_DECIMALS,
}
# `@` and `.` escaped for a URL (twice or three times too, `%2540`: a URL's escaped in a URL's query, as a redirect's
# `next=` is, which a model reads as a browser reads the URL once decoded) or in HTML, as a browser (or a model) reads
# them, and any character escaped as JSON
# writes it (`\u0040`, `j\u00f6rg`, a card's `\u0034`), as a JSON parser reads a tool call's arguments (one
# alternation that starts with `%`, `&` or a backslash, no group: `re` then skips to those characters at C speed,
# four times faster than with a group first)
_ESCAPE: Final = re.compile(
    r"%(?:25){0,2}(?:40|2[eE])|&#(?:0*(?:64|46)(?![0-9])|[xX]0*(?:40|2[eE])(?![0-9a-fA-F]));?|&(?:commat|period);"
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\[tnrf]"
)
# JSON's short escapes of white space (`\\n`, as every JSON encoder writes a newline): the character, as `\\u000a` is
_SHORT_ESCAPES: Final = {"\\t": "\t", "\\n": "\n", "\\r": "\r", "\\f": "\f"}


# combining marks of no script of their own (Unicode's Combining Diacritical Marks, its Extended and Supplement blocks,
# the marks for symbols, the half marks): NFKC composes none of them with an ASCII character into one it has, so after
# one they stay, drawn over or around it (`4̶`, a strikethrough; `4️⃣`, a keycap; `b̵`, "zalgo" text), and a model
# reads the character beneath. There they are dropped (`_bare`); after a letter that is not ASCII they are its own
_MARK_RANGES: Final = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))
_MARK_CLASS: Final = "".join(f"{chr(first)}-{chr(last)}" for first, last in _MARK_RANGES)
_MARKS: Final = re.compile(f"[{_MARK_CLASS}]")
_MARKS_ON_ASCII: Final = re.compile(f"(?<=[\x00-\x7f])[{_MARK_CLASS}]+")
# each of them, for `str.lstrip` (`_read_end`)
_MARK_CHARACTERS: Final = "".join(chr(code) for first, last in _MARK_RANGES for code in range(first, last + 1))

# what the fold drops (`_FOLD`'s ignorable and control characters, `_bare`'s combining marks over an ASCII one), as one
# class of `re`: read past, back from a prose dash, for the digit before it (`_PROSE_DASH`)
_DROPPED_CLASS: Final = "".join(
    f"{re.escape(chr(first))}-{re.escape(chr(last))}"
    for first, last in (
        *_IGNORABLE, (0x00, 0x08), (0x0E, 0x1F), (0x7F, 0x84), (0x86, 0x9F), *_MARK_RANGES,
    )
)  # fmt: skip
# the characters of `_PROSE_DASHES` as a pattern's class (`_PROSE_DASH`, `_PROSE_DASH_END`)
_PROSE_DASH_CLASS: Final = "\u2013\u2014\u2015\u2212\u2e3a\u2e3b\ufe58\ufe31\ufe32\u207b\u208b\u2010\u2011\u2012"
# dashes no number is written with, prose's (em dash, horizontal bar, two- and three-em dashes), and an en dash and a
# minus sign (read as `-`, a sign's, a card beside one was none to `scan`, masked by `mask`, until 2026-12-07, helper
# det13: `_PROSE_DASHES`), and what NFKC makes one of (a small or a vertical em dash, a vertical en dash, a superscript
# or subscript minus: read as `-`, so, until reviewed, helper revdet13), where no digit is before one: read as `--`, as
# ASCII writes one, so a card after it is read as after a double dash, as after a space
# (`x —4111 1111 1111 1111`); read as `-`, a sign's, it was none, where `mask`, reading the dash as no sign in the text's
# own form, masked it, and the record said less than the mask hid, until 2026-12-07. And where no digit is after one
# (past what the fold drops): a card or a dashed IBAN before it is read as before a space (`4111 1111 1111 1111—please`;
# read as `-`, joined to the word, it was none, `mask` masking it, until 2026-12-07, helper det13). Between digits, `-`,
# as any dash (`555—123—4567`). (The character first: `re` skips to it at C speed; the look-behind, two wide, reads the
# one before; the look-ahead, one a dash after a digit, what follows)
# A digit is before one as the fold reads it: past what the fold drops between them (`_DROPPED_CLASS`: a zero-width
# space, a soft hyphen, a strikethrough's mark), as a model reads it; read from the dropped character alone, the dash
# of `4111\u200b—1111—1111—1111` was `--` and the card none, to scan and to `mask`, where it was one before 2026-12-07
# (`_PROSE_DASH_AFTER_DROPPED`, a dash after such a character: each read back, in a text holding one, few)
_PROSE_DASH: Final = re.compile(f"[{_PROSE_DASH_CLASS}](?:(?<![\\d{_DROPPED_CLASS}].)|(?![{_DROPPED_CLASS}]*\\d))")
_PROSE_DASH_AFTER_DROPPED: Final = re.compile(f"[{_PROSE_DASH_CLASS}](?<=[{_DROPPED_CLASS}].)")
_DROPPED_ONE: Final = re.compile(f"[{_DROPPED_CLASS}]")


def _bare(text: str) -> str:
    """`text` without the combining marks over its ASCII characters (`_MARKS`): a search at C speed first."""
    return _MARKS_ON_ASCII.sub("", text) if _MARKS.search(text) is not None else text


def _prose_dashes(text: str) -> str:
    """`text` with prose's dashes no digit is before, or none after, as `--` (`_PROSE_DASH`): fourteen searches at C
    speed first (a text without one, most, costs ~0.3 ms a MB so, where the pattern's search cost 5)."""
    if (
        "\u2014" in text or "\u2013" in text or "\u2212" in text or "\u2015" in text or "\u2e3a" in text or "\u2e3b" in text
        or "\ufe58" in text or "\ufe31" in text or "\ufe32" in text or "\u207b" in text or "\u208b" in text
        or "\u2010" in text or "\u2011" in text or "\u2012" in text
    ):  # fmt: skip
        text = _PROSE_DASH.sub("--", text)
        # (those left are after a digit or after what the fold drops: the second read only where one is left)
        if _PROSE_DASH_AFTER_DROPPED.search(text) is not None:
            return _PROSE_DASH_AFTER_DROPPED.sub(_prose_dash_after_dropped, text)
    return text


def _prose_growth(text: str) -> int:
    """How many characters the fold may add to `text` in reading its prose dashes as `--` (`_prose_dashes`): one each,
    counted so each is read, a scan's limit counting characters as they come. Read within the limit in folded
    characters, a request's text of 875,024 characters with 125,000 em dashes and a card at its end was
    `scan:truncated` and its card none, and a reply of the limit's length so was read twice, whole then streamed (2.9
    times the time), from the change that read them so until it was reviewed (2026-12-07). (Fourteen searches first, as
    `_prose_dashes`: none in most texts.)"""
    if (
        "\u2014" in text or "\u2013" in text or "\u2212" in text or "\u2015" in text or "\u2e3a" in text or "\u2e3b" in text
        or "\ufe58" in text or "\ufe31" in text or "\ufe32" in text or "\u207b" in text or "\u208b" in text
        or "\u2010" in text or "\u2011" in text or "\u2012" in text
    ):  # fmt: skip
        return sum(map(text.count, _PROSE_DASHES))
    return 0


# the dashes `_PROSE_DASH` reads as `--` where no digit is either side: prose's (em dash, horizontal bar, two- and
# three-em dashes), and an en dash and a minus sign, read as `-`, a sign's, before 2026-12-07 (helper det13); and
# what NFKC makes one of, read as `-` till reviewed (helper revdet13): `x ﹘4111 …` was none, `mask` masking it; and a
# hyphen, a non-breaking hyphen and a figure dash (U+2010, U+2011, U+2012), none a sign: read as `-`, `x ‐4111 …` was
# none to `scan`, `mask` masking it, until 2026-12-07 (helper det15)
_PROSE_DASHES: Final = (
    "\u2014", "\u2015", "\u2e3a", "\u2e3b", "\u2013", "\u2212", "\ufe58", "\ufe31", "\ufe32", "\u207b", "\u208b",
    "\u2010", "\u2011", "\u2012",
)  # fmt: skip


def _prose_dash_after_dropped(dash: re.Match[str]) -> str:
    """A prose dash after what the fold drops (`_PROSE_DASH_AFTER_DROPPED`): `-` where a digit is before that, `--`
    where none is."""
    text, before = dash.string, dash.start() - 1
    while before >= 0 and _DROPPED_ONE.match(text, before) is not None:
        before -= 1
    return "-" if before >= 0 and text[before].isdecimal() else "--"


def _holds_any(text: str, marks: tuple[str, ...]) -> bool:
    return any(mark in text for mark in marks)  # (each a one-character search: a memchr)


def _escapes(text: str) -> bool:
    # one-character searches first: they are a memchr, a few times faster than searching for "%40" or "&#"
    return (
        ("%" in text and ("%40" in text or "%2E" in text or "%2e" in text or "%25" in text))
        or ("&" in text and ("&#" in text or "&commat;" in text or "&period;" in text))
        or ("\\" in text and _json_escapes(text))  # JSON's escapes (a tool call's arguments)
    )


def _json_escapes(text: str) -> bool:
    return "\\u" in text or "\\n" in text or "\\t" in text or "\\r" in text or "\\f" in text


def _unescape(escape: re.Match[str]) -> str:
    found = escape.group()
    if found[0] == "\\":  # JSON's `\\uXXXX`: the character (half a surrogate pair stays as written)
        if len(found) == 2:  # `\\n`, `\\t`, `\\r`, `\\f`
            return _SHORT_ESCAPES[found]
        code = int(found[2:6], 16)
        if code in _CONTROL_BYTES:  # `\\u0000`: dropped, as the character itself is
            return ""
        if len(found) == 12:  # a surrogate pair (`\\ud835\\udfd2`, a mathematical `𝟒`): the one character
            return chr(0x10000 + ((code - 0xD800) << 10) + (int(found[8:], 16) - 0xDC00))
        return found if 0xD800 <= code <= 0xDFFF else chr(code)
    return "." if found.rstrip(";").lower().endswith(("2e", "46", "period")) else "@"


def _controls(part: bytes) -> bool:
    """Whether ASCII bytes hold a control character (`_CONTROL_BYTES`): one memchr over their class string."""
    return _CONTROL_CLASS in part.translate(_CLASSES)


def _unescaped(text: str) -> str:
    return _ESCAPE.sub(_unescape, text) if _escapes(text) else text


def folded(text: str, limit: int) -> tuple[str, bool]:
    """`text` as the detectors read it (see the module doc), at most `limit` characters of it, and whether
    some was cut. NFKC can make a text 18 times longer (`\ufdfa`): it is folded a piece at a time and stops
    at the limit, so the work stays bounded by it. (A piece boundary may split what NFKC would compose:
    only accents, never the ASCII the detectors read.) The fold comes first, so NFKC may compose across a
    dropped character; nothing NFKC makes is folded again, as nothing it makes needs to be (tested)."""
    if text.isascii():
        unescaped = _unescaped(text[:limit])
        if unescaped.isascii():
            return _without_controls(unescaped), len(text) > limit
        # escapes of characters that fold (`\\uff20`, a fullwidth `＠`; `\\ud835\\udfd2`, `𝟒`): read folded, as their
        # client reads them once it has parsed the JSON
        folding, cut = _fold_whole(unescaped, limit)
        return folding, cut or len(text) > limit
    text = _prose_dashes(text)
    pieces: list[str] = []
    size = 0
    for at in range(0, len(text), _FOLD_PIECE):
        piece = unicodedata.normalize("NFKC", text[at : at + _FOLD_PIECE].translate(_FOLD))
        pieces.append(piece)
        size += len(piece)
        if size >= limit:
            whole = _bare("".join(pieces))
            folding, cut = _refolded(whole[:limit], limit)
            return folding, cut or len(whole) > limit or at + _FOLD_PIECE < len(text)
    return _refolded(_bare("".join(pieces)), limit)


def _refolded(text: str, limit: int) -> tuple[str, bool]:
    """A folded text with its escapes decoded (`_unescaped`); what they decode to folded too, when it is not ASCII
    (at most `limit` characters, and whether some was cut). A text without escapes is itself."""
    unescaped = _unescaped(text)
    if unescaped is text or unescaped.isascii():
        return unescaped, False
    return _fold_whole(unescaped, limit)


def _fold_whole(text: str, limit: int) -> tuple[str, bool]:
    """`text`, at most `limit` characters long, folded at once (no escape decoded): at most `limit` characters of it,
    and whether some was cut."""
    folding = _bare(unicodedata.normalize("NFKC", _prose_dashes(text).translate(_FOLD)))
    return folding[:limit], len(folding) > limit


def _folded_between(raw: bytes, start: int, end: int, limit: int) -> tuple[str, bool]:
    """`folded` of the stretch `raw[start:end]` of a text (`Detectors._fold_around`), a prose dash at either end of it
    read as in the whole text, by the digit beside it there (`_PROSE_DASH`): a digit the text holds before or after the
    stretch is read with it and taken off its fold. Folded alone, `3782 822463 10005` then `—5500 …` read `--` where
    the text whole, as `scan` reads it, read `-`, and `mask` left in clear what `scan` found across it."""
    part = raw[start:end].decode("utf-8", "surrogatepass")
    lead = start > 0 and raw[start - 1 : start].isdigit()
    trail = raw[end : end + 1].isdigit()
    if not (lead or trail) or not _PROSE_DASH_END.search(part):
        return folded(part, limit)
    folding, cut = folded(("0" if lead else "") + part + ("0" if trail else ""), limit + lead + trail)
    if lead:
        folding = folding[1:]
    if trail and not cut:
        folding = folding[: max(0, len(folding) - 1)]
    return folding[:limit], cut or len(folding) > limit


# a prose dash at a stretch's start or end (`_folded_between`)
_PROSE_DASH_END: Final = re.compile(f"\\A[{_PROSE_DASH_CLASS}]|[{_PROSE_DASH_CLASS}]\\Z")


# the label a value two built-in finders find at the same span is masked with (`Detectors.findings`): the one whose
# kind is checked the most (an IBAN's mod-97, a card's Luhn and issuer, an address's domain) first; your own patterns
# after them, in the order the configuration lists them (one given a built-in's name, its label, ranked as it is). Until 2026-12-07 (helper det16) the configuration's order
# decided: `555-123-4567-2024`, a phone and a card's digits to `scan`, was masked `[pii:phone]` with `detectors: [phone,
# credit_card]` and `[pii:credit_card]` with `[credit_card, phone]`
_MASKED_FIRST: Final = {
    label: rank
    for rank, label in enumerate(("pii:iban", "pii:credit_card", "pii:email", "pii:phone", "pii:ip_address"))
}


class Detectors:
    """The configured set, compiled once. `scan` is the hot-path entry point."""

    def __init__(self, specs: Iterable[DetectorSpec], max_chars: int = 1_000_000, keep_max: int = 16 << 20) -> None:
        finders: list[tuple[str, Finder, bytes, int, str]] = []
        customs: list[re.Pattern[str]] = []
        specs_read = tuple(specs)
        for spec in specs_read:
            label = f"pii:{spec.name}"
            if spec.pattern is None:
                finders.extend((label, finder, *_NEEDS[finder]) for finder in _BUILTIN[spec.name])
                if spec.name == "email":
                    _address_patterns()  # made now, not in a call
            else:
                custom = re.compile(spec.pattern)
                customs.append(custom)
                finders.append((label, _custom(custom), b"", 0, ""))
        self._finders = tuple(finders)
        # the order `findings` reads them in: of values two finders find at one span, the first's label is masked (a
        # checked kind before a looser one: `_MASKED_FIRST`), whatever the order the configuration lists them in
        self._masking = tuple(sorted(finders, key=lambda finder: _MASKED_FIRST.get(finder[0], len(_MASKED_FIRST))))
        # whether cards are among them: a stream scanner's tail cut in a run of numbers is read as inside it
        # (`_Text.in_run`)
        self._reads_cards = any(finder is _cards for _, finder, _, _, _ in finders)
        # the finders by the class byte every match of theirs contains: a text without it skips them all at once.
        # A byte is looked for as an int (a memchr: ~50 ns for a kilobyte, where `b"0" in` took ~400); a custom
        # pattern's group (None) always runs
        groups: dict[int | None, list[tuple[str, Finder, int, str]]] = {}
        for label, finder, needs, fewest_digits, run in finders:
            groups.setdefault(needs[0] if needs else None, []).append((label, finder, fewest_digits, run))
        self._groups = tuple((needs, tuple(group)) for needs, group in groups.items())
        # the characters of the class bytes the finders need (`0` is every digit): a text with none of them is
        # skipped before its class string is made, a search for each costing a memchr; empty with a custom pattern
        self._marks = () if None in groups else tuple(chr(byte) for byte in range(128) if _CLASSES[byte] in groups)
        self._patterns = None in groups  # whether a custom pattern is one of them
        self._customs = tuple(customs)  # (`_before_custom`)
        # the custom patterns alone, which a stream scanner reads again farther back (`_PatternStreamScanner`): these
        # detectors themselves when they are all there is; None without one
        self._long: Detectors | None = None
        # and the built-in ones alone, which that stream scanner's windows read: a custom pattern is its re-reading's
        # alone, so a stream does not read for it what that reading did not (the end of a text the limit's length that
        # NFKC makes longer, `…555-2671¼`: past the limit read whole, and `[0-9]\n` found there streamed until
        # 2026-12-05); self without one
        self._builtin: Detectors = self
        if customs:
            if len(customs) == len(finders):
                self._long = self
            else:
                self._long = Detectors([spec for spec in specs_read if spec.pattern is not None], max_chars, keep_max)
            self._builtin = Detectors([spec for spec in specs_read if spec.pattern is None], max_chars, keep_max)
        # the `email` finder alone, which a stream scanner reads its tail again with as the text's end where its window
        # ended in an address that may go on (`_unfinished`, `StreamScanner._mail_open`); None without it
        self._mail: Detectors | None = None
        if any(spec.name == "email" and spec.pattern is None for spec in specs_read):
            if len(finders) == 1:
                self._mail = self
            else:
                self._mail = Detectors([DetectorSpec("email")], max_chars, keep_max)
        self.max_chars = max_chars
        # bytes of a reply passed on as it arrives kept to be read whole (`protocols.WHOLE_MAX`, or
        # `limits.buffer_max_bytes` when larger: `Pipeline`)
        self.keep_max = keep_max
        self._found_nothing = Memo(_REMEMBERED_KEPT, _REMEMBERED_BYTES_KEPT)  # (`finds_nothing`)

    def __bool__(self) -> bool:
        return bool(self._finders)

    @property
    def patterns(self) -> bool:
        """Whether a custom pattern is among them: one whose value may be of any length."""
        return self._patterns

    def finds_nothing(self, text: str) -> bool:
        """Whether the detectors find nothing in `text`, every character read, both as a reply's output is read (its end
        as a new `stream()` fed it whole reads it, one holding a character other than ASCII as `scan` reads it:
        `scan_output`) and as a request's one text is (`scan`, `scan_all`): a short
        output is read with a line end after it, which a custom pattern (`x\\Z`, `x\\n`) may tell apart. Remembered
        by text for a short one, which calls send again and again (an OIP reply's output names, `OUTPUT0`: before
        they were read, a ModelInfer with no text in its reply scanned none, and reading them each time cost it a
        tenth more Python; a numeric request's input names, `Pipeline._detected`). A longer text is not scanned
        here: False."""
        if len(text) > _REMEMBERED_TEXT:
            return False
        kept = self._found_nothing.kept.get(text)
        if kept is None:
            kept = not self.scan_output(text) and not self.scan(text)
            self._found_nothing.keep(text, kept, len(text) + _REMEMBERED_ENTRY)
        return kept is True

    def scan(
        self,
        text: str,
        limit: int | None = None,
        reread: str = "",
        before: str = "",
        more: int = 0,
        runs_on: bool = False,
        unaligned: int = 0,
        in_run: bool = False,
    ) -> frozenset[str]:
        """The labels of everything found in `text`, of which at most `limit` characters are read (max_chars;
        see the module doc); `reread`: what it starts with that was read before (a stream scanner's tail); `before`
        and `more`: a stream scanner's window's (`_Text.ahead`); `runs_on`: numbers follow its end (`_Text.runs_on`);
        `unaligned`: the readings as phones the run its tail was cut in is none of (`_Text.unaligned`); `in_run`: that tail starts
        inside the run (`_Text.in_run`)."""
        if not self._finders or not text:
            return _NOTHING
        if limit is None:
            limit = self.max_chars
        cut = len(text) > limit
        if cut:
            text = text[:limit]
            if not text:
                return _ONLY_TRUNCATED
        # `ａｌｉｃｅ＠ｅｘａｍｐｌｅ.com`, `٤١١١ …`, zero-width spaces, bidi controls; `alice%40example.com`,
        # `alice&#64;example.com`, `alice@example%2Ecom`, `bob\\uff20example.org`
        if not text.isascii() or _escapes(text):
            # (the limit counts characters as they come: a prose dash read as `--` is one, its fold's second dash
            # read past the limit, `_prose_growth`)
            text, cut_fold = folded(text, limit + _prose_growth(text))
            cut = cut or cut_fold
        return self._find(text, cut, reread, before, more, runs_on, unaligned, in_run)

    def scan_unfolded(
        self,
        text: str,
        reread: str = "",
        before: str = "",
        more: int = 0,
        runs_on: bool = False,
        unaligned: int = 0,
        in_run: bool = False,
    ) -> frozenset[str]:
        """`scan` of a whole text its caller found ASCII without escapes: read as it stands, but for its control
        characters (a stream scanner's window, whose end it then reads as it stands too: `StreamScanner`)."""
        if not self._finders or not text:
            return _NOTHING
        return self._find(text, False, reread, before, more, runs_on, unaligned, in_run)

    def _find(
        self,
        text: str,
        cut: bool,
        reread: str = "",
        before: str = "",
        more: int = 0,
        runs_on: bool = False,
        unaligned: int = 0,
        in_run: bool = False,
        classes: bytes = b"",
    ) -> frozenset[str]:
        """The labels of what the finders find in `text` as the detectors read it (folded), `cut` when not all of
        it was read (`scan`); `reread`, what it starts with that a stream scanner read before (`_Text.reread`);
        `classes`, its class string when its caller made it (`scan_output`)."""
        if self._marks and not _holds_any(text, self._marks):
            return _ONLY_TRUNCATED if cut else _NOTHING  # nothing any finder looks for: not translated at all
        found: set[str] | None = {TRUNCATED} if cut else None  # made at the first label found: most texts have none
        t = _Text(text, classes)
        if _CONTROL_CLASS in t.classes:  # (a memchr) `alice\x00@example.com`: read without them (an ASCII text)
            t = _Text(_without_controls(text))
        if reread:
            tail = reread.encode("utf-8", "surrogatepass")
            if t.raw.startswith(tail):  # (as it is read: a tail is kept as the detectors read it)
                t.reread = len(tail)
                t.unaligned = unaligned
                t.in_run = 0 if in_run else -1
        if before:
            t.ahead = before
        if more:
            t.more = more
        if runs_on:
            t.runs_on = len(t.classes.rstrip())
        classes = t.classes
        # the class string as text, for the finders needing digits: compiled, a str's `find` and `count` are calls in
        # C, a bytes' are calls through Python that parse their arguments (which cost more than a reply's searches)
        class_text = ""
        digits = -1  # counted once, when a finder asks
        for needs, group in self._groups:
            if needs is not None and needs not in classes:
                continue
            for label, finder, fewest_digits, run in group:
                if found is not None and label in found:
                    continue
                if fewest_digits:
                    if digits < 0:  # "0": the digits, between the first and the last (memchr, memrchr)
                        class_text = classes.decode("ascii")  # (every class byte is ASCII)
                        first = class_text.find("0")
                        if first < 0:
                            digits = 0
                        else:
                            last = class_text.rfind("0")
                            t.digits(first, last)  # the finders that need digits search from the first to the last
                            digits = class_text.count("0", first, last + 1)
                    if digits < fewest_digits or (run and class_text.find(run, t.first, t.stop) < 0):
                        continue
                    lead = _LEADS_IN.get(finder)
                    if lead is not None:
                        table, needle, back = lead
                        stretch = classes[max(0, t.first - back) : t.stop].translate(table)
                        if stretch.decode("ascii").find(needle) < 0:
                            continue
                for _, end in finder(t):
                    if end >= t.runs_on >= 0 and label in _RUN_LABELS:
                        continue  # (a number whose run goes on after the window: read with it, `_Text.runs_on`)
                    if found is None:
                        found = set()
                    found.add(label)
                    break
        return frozenset(found) if found else _NOTHING

    def scan_all(self, texts: Iterable[str]) -> frozenset[str]:
        if not self._finders:
            return frozenset()
        found = self.scan(text := "\n".join(texts))
        return found if TRUNCATED not in found or len(text) > self.max_chars else self._read_whole(text, self.max_chars)

    def _read_whole(self, text: str, read: int, reread: str = "") -> frozenset[str]:
        """`text`, a request's, within the limit as it comes, its scan to `read` folded characters `scan:truncated`:
        read again to its end where NFKC makes it at most `_REQUEST_FOLDED` times as long (`ﬁ`, `㎒`, `¼`: 2 or 3),
        else to that many times its length, `scan:truncated` still. Read to the limit in folded characters, a request's
        value at its end was unread, `scan:truncated` only, where the same text as a reply's output was read whole,
        until 2026-12-07 (helper det13); read whole however long NFKC makes it, as a reply's output is, a request of the
        limit's length of `ﷺ` (18 characters folded) held the event loop 1.5 s where it had 0.06 s, reading it, until
        it was reviewed (helper revdet13): a client sends a request, where a reply's length is the model's."""
        return self.scan(text, max(read, _REQUEST_FOLDED * len(text)), reread)

    def scan_windows(self, windows: Sequence[str], before: Sequence[int]) -> frozenset[str]:
        """`Reading.scan_windows` with no limit shared."""
        return self.reading().scan_windows(windows, before) if self._finders else frozenset()

    def reading(self) -> Reading:
        """Scans that share one limit of max_chars characters: a request's (or a reply's) several readings
        of its content (each text, where parts meet, with escapes decoded) together, not each."""
        return Reading(self)

    def findings(self, text: str) -> list[Found]:
        """Every value found, in order, without overlaps (for masking)."""
        t = _Text(text)
        return _apart([Found(s, e, label) for label, finder, *_ in self._masking for s, e in finder(t)])

    def stands_apart(self, readings: Sequence[str], texts: Sequence[str]) -> bool:
        """Whether `readings` (other readings of `texts`: an element's in another charset) hold a detected value that
        `texts` do not, which masking them (`mask`) would leave captured: one of their values (`findings`) that is none
        of the texts', or, theirs taken out, one their scan still finds (a folded form's, a custom pattern's). Before
        2026-12-05 any value in them withheld the whole content, an ASCII address both held beside one stray byte too."""
        known: set[str] = set()
        for text in texts:
            raw = text.encode("utf-8", "surrogatepass")
            for found in self.findings(text):
                known.add(raw[found.start : found.end].decode("utf-8", "surrogatepass"))
        rest: list[str] = []
        for reading in readings:
            raw = reading.encode("utf-8", "surrogatepass")
            kept: list[bytes] = []
            at = 0
            for found in self.findings(reading):
                if raw[found.start : found.end].decode("utf-8", "surrogatepass") not in known:
                    return True
                kept.append(raw[at : found.start])
                at = found.end
            kept.append(raw[at:])
            rest.append(b"\n".join(kept).decode("utf-8", "surrogatepass"))
        return bool(self.scan_all(rest) - {TRUNCATED})

    def mask(self, text: str, limit: int | None = None) -> str:
        """`text` with every detected value replaced by `[pii:<kind>]` (for captured content). When its folded
        form (what `scan` reads) shows other values, that form is captured instead, masked, with the values
        only the text's own form showed masked in it too, where they stand: a fullwidth or zero-width-split
        value is masked whole, never half. Otherwise the text keeps its own characters. What `scan` reads is
        what is captured: at most max_chars characters (of the folded form too), or `limit` when fewer (what is
        left of a call's `CAPTURE_MAX_CHARS`, `mask_texts`); what is past them, and the last `_LONGEST`
        characters before as they read (`_read_back`), where a value may have been cut in two, is not captured but `NOT_CAPTURED` (or
        `NOT_CAPTURED_PAST_BOUND`, cut by `limit`) stands for it."""
        bound = self.max_chars if limit is None or limit >= self.max_chars else max(limit, 0)
        cut = len(text) > bound
        if cut:
            # a custom pattern's value the cut falls in may be longer than what is left out before it: the text is
            # cut before it too
            text = text[: self._before_custom(text, bound) if self._customs else bound]
        plain = True  # whether it reads as it stands
        if not self._finders or not text:
            out = text
        elif text.isascii() and not _escapes(text) and _CONTROL.search(text) is None:
            out = self._masked(text, self.findings(text))
        else:
            plain = False
            out, cut_fold = self._mask_folded(text, bound)
            cut = cut or cut_fold
        if not cut:
            return out
        # a value cut there is in its last _LONGEST characters as read: in a text that reads otherwise than it stands,
        # more of its own (a zero-width space between each character of an address, an `@` written `&#000…64;`)
        kept = len(out) - (_LONGEST if plain else _read_back(out, _LONGEST))
        if self._patterns:  # a custom pattern's value may be longer: the token it may be is not captured either, nor
            # what it may be when it holds white space (a PEM key's lines): the most the windows where parts meet read
            kept = min(_token_start(out, kept), len(out) - WINDOW_WIDEST)
        return out[: max(0, kept)] + (NOT_CAPTURED if bound == self.max_chars else NOT_CAPTURED_PAST_BOUND)

    def _before_custom(self, text: str, bound: int) -> int:
        """Where `text` cut at `bound` is cut: before any value of a custom pattern (as the detectors find it, in the
        text up to `CAPTURE_MAX_CHARS` past `bound`, within `max_chars`) that starts before `bound` and ends past what
        a cut leaves out before it (`_LONGEST` and `WINDOW_WIDEST` characters); else at `bound`. Read to `max_chars`,
        each text a call cuts (and each part `mask_edges` shows) was read to the scan limit: four times it a call."""
        reading = text[: min(self.max_chars, bound + CAPTURE_MAX_CHARS)]
        near = bound - _LONGEST - WINDOW_WIDEST
        cut = bound
        for pattern in self._customs:
            for found in pattern.finditer(reading):
                if found.start() >= cut:
                    break
                if found.end() > near:
                    cut = found.start()
                    break
        return cut

    def mask_texts(self, texts: Sequence[str]) -> tuple[str, ...]:
        """Each text masked (`mask`) within `CAPTURE_MAX_CHARS` characters together (a call's input): the one they
        run out in cut there, the texts after it not captured (nothing of them is read)."""
        masked: list[str] = []
        left = CAPTURE_MAX_CHARS
        for text in texts:
            masked.append(self.mask(text, left))
            left -= len(text)
            if left < 0:
                break
        return tuple(masked)

    def mask_edges(self, text: str, width: int) -> str:
        """`text`'s first and its last `width` characters, each masked as on its own (`mask`), `NOT_CAPTURED_PAST_BOUND`
        between them: a part not captured whole as the parts captured beside it meet it (`boundary_windows`), a value
        split there seen whole. At most 2 x (`width` + `_LONGEST`) characters of it are masked, and `WINDOW_WIDEST` more
        either side with a custom pattern: what a cut head leaves out before its end (`mask`), so `width` are shown."""
        edge = self.edge_width(width)
        if len(text) <= 2 * edge:
            return self.mask(text)
        return self.mask(text, edge) + self.mask(text[-edge:])

    def edge_width(self, width: int) -> int:
        """How many characters of each edge `mask_edges` masks to show `width`: twice as many of a part are masked at
        most (`_captured_runs` charges a part that many)."""
        return width + _LONGEST + (WINDOW_WIDEST if self._patterns else 0)

    def _mask_folded(self, text: str, limit: int) -> tuple[str, bool]:
        """`mask` of a text that is not ASCII or holds an escaped `@` or `.`, its folded form at most `limit`
        characters; and whether its folded form was cut."""
        found = self.findings(text)
        fold, cut, spans = self._fold_around(text, found, limit)
        in_fold = self.findings(fold) if fold != text else found
        # (its own form kept where its values stand in the fold as the fold's do: of the same kinds only, a value the
        # fold reads longer kept in clear what the fold read of it, `jean‐luc@example.com` masked `jean‐[pii:email]`,
        # its fold cut at the limit or not, until 2026-12-07, review revdet15)
        if in_fold == spans:
            if not cut:
                return self._masked(text, found), False
            # its fold ran past `limit` (NFKC made it longer: `\ufdfa` 18 times): of its own form, only what the fold
            # read before it was cut is captured, not a value past there that reads as one only folded (`＠`)
            read = text[: _read_within(text, limit)]
            return self._masked(read, self.findings(read)), True
        # what only the text's own form showed is masked where it stands in the folded form: that form with the
        # characters NFKC makes digits, spaces, brackets or dashes of read as those (`_NUMBERS_NFKC`), as the fold
        # reads them, so a row of numbers apart by no-break or thin spaces or fullwidth dashes is no phones, as `scan`
        # reads it, where the text's own form read the numbers after a no-break space apart from the one before it
        read = _prose_dashes(text).translate(_SEPARATORS_READ) if spans else text
        if read != text:
            refold, _, read_spans = self._fold_around(read, self.findings(read), limit)
            if refold == fold:
                # (and those of its own form's values `scan` names: `x 555-123-4567—4111 1111 1111 1111`, a phone and
                # a card to `scan`, is masked so, where read with `-` the card's first group was a phone's)
                reported = self.scan(text, limit)
                spans = read_spans + [value for value in spans if value.label in reported]
        return self._masked(fold, _apart(in_fold + spans)), cut

    def _fold_around(self, text: str, found: list[Found], limit: int) -> tuple[str, bool, list[Found]]:
        """`text` folded (at most `limit` characters of it, and whether some was cut) a stretch at a time:
        between the values in `found` and each of them on its own, so where each stands in the fold is known
        (`folded` folds in pieces too). A stretch of ASCII without escapes is its own fold, kept as it is."""
        raw = text.encode("utf-8", "surrogatepass")
        stretches: list[tuple[bytes, str | None]] = []
        position = 0
        for item in found:
            stretches.append((raw[position : item.start], None))
            stretches.append((raw[item.start : item.end], item.label))
            position = item.end
        stretches.append((raw[position:], None))
        pieces: list[bytes] = []
        spans: list[Found] = []
        left = limit  # characters the fold may still take
        width = 0  # its bytes so far
        at = 0  # where the stretch starts in `raw`
        for part, label in stretches:
            if part.isascii() and b"%" not in part and b"&" not in part and b"\\" not in part and not _controls(part):
                cut = len(part) > left
                piece = part[:left]
                left -= len(piece)
            else:
                folding, cut = _folded_between(raw, at, at + len(part), left)
                left -= len(folding)
                piece = folding.encode("utf-8", "surrogatepass")
            at += len(part)
            if label is not None and piece:
                spans.append(Found(width, width + len(piece), label))
            pieces.append(piece)
            width += len(piece)
            if cut:
                break
        return b"".join(pieces).decode("utf-8", "surrogatepass"), cut, spans

    def _masked(self, text: str, found: list[Found]) -> str:
        if not found:
            return text
        raw = text.encode("utf-8", "surrogatepass")
        out, position = [], 0
        for item in found:
            out.append(raw[position : item.start])
            out.append(f"[{item.label}]".encode())
            position = item.end
        out.append(raw[position:])
        return b"".join(out).decode("utf-8", "surrogatepass")

    def stream(self) -> StreamScanner:
        """A scanner of a text that arrives in pieces; with a custom pattern, one reading it again farther back for
        those patterns (`_PatternStreamScanner`): an ordinary stream does no work for them."""
        long = self._long
        return StreamScanner(self) if long is None else _PatternStreamScanner(self._builtin, long)

    def scan_output(self, text: str) -> frozenset[str]:
        """A reply's one output read whole, as `scan` reads it, its end read as a new `stream()` fed it whole and
        ended reads it (`feed`, `end_text`, `found`): with the newline `end_text` puts after it, where the stream
        holds it back. Read so, not in a stream's two windows: one holding a character other than ASCII was, and where
        a run of numbers is longer than a window reads from its start, it found what `scan` does not (a fullwidth `A`
        then `555 123 4567 ` x120 and a card: a phone, no phone in `scan` nor with `A` first, until 2026-12-05, helper
        detectors)."""
        limit = self.max_chars
        if limit <= 0:  # nothing is read: a text is all past the limit
            return _ONLY_TRUNCATED if text else _NOTHING
        cut = len(text) > limit
        if cut:
            text = text[:limit]
        # a short piece waits, and so does a longer one's last token (`_unended`): its end is read, with the newline
        # `end_text` puts after it; with a custom pattern, always (`StreamScanner.end_text`)
        if not text.endswith("\n") and (len(text) < _OVERLAP or self._patterns or _unended(text) < len(text)):
            if len(text) >= _OVERLAP and self._finders:
                classes = _plain_classes(text)
                if classes:  # read as it stands, as `scan` reads it: its class string made once, not again
                    found = self._find(text + "\n", False, classes=classes + b"\n")  # (LF is its own class)
                    return found | _ONLY_TRUNCATED if cut else found
            text += "\n"
        # (all of it: the limit counts characters as they come, however many NFKC makes of them)
        found = self.scan(text, _MOST_FOLDED * len(text)) if len(text) <= _FOLD_WHOLE else self._scan_long(text)
        return found | _ONLY_TRUNCATED if cut else found

    def _scan_long(self, text: str) -> frozenset[str]:
        """`scan_output`'s reading of a text longer than `_FOLD_WHOLE`, within the limit: folded within it, or, where
        NFKC makes it longer than that, as a stream reads it (`StreamScanner._read_parts`), all of it, in windows each
        folded whole (until 2026-12-05, helper detectors, cut at the limit, `scan:truncated`, its end unread)."""
        found = self.scan(text, _fold_limit(len(text), self.max_chars))
        if TRUNCATED not in found:
            return found
        scanner = self.stream()
        scanner.feed(text[:-1] if text.endswith("\n") else text)  # (its newline, `end_text`'s, may be past the limit)
        scanner.end_text()
        return frozenset(scanner.found)


# what stands for the end of a captured text past the scan limit, where the scan did not read (`Detectors.mask`)
NOT_CAPTURED: Final = "[not captured: past limits.scan_max_chars]"
# The most characters of a call's input texts together, and of its output, masked and captured: a span holds 16 KiB of
# them (`spans.VALUE_MAX_BYTES`, cut so for Jaeger), and masking what it then cuts away was work on the event loop
# for nothing, every other call on the worker waiting (10,000 texts of 1.5 KB: 2 s). Four times as many characters,
# so that masked (a value of up to `_LONGEST` characters becomes its label) they still fill the span but when most of
# them are values.
CAPTURE_MAX_CHARS: Final = 65_536
# what stands for the end of a call's captured text past CAPTURE_MAX_CHARS (`Detectors.mask_texts`)
NOT_CAPTURED_PAST_BOUND: Final = f"[not captured: past {CAPTURE_MAX_CHARS:,} characters a call]"
# how far either side of where two parts meet a window is widened to white space, at most (`boundary_windows`), and
# a text cut before a value a custom pattern found may be cut further back (`Detectors.mask`): a token of one, longer
# than a built-in value, stays whole up to this many characters
WINDOW_WIDEST: Final = 4096
# the most characters a built-in value takes up (an address: 64 before its `@`, 256 after), so the most a
# value cut at the scan limit leaves before it
_LONGEST: Final = 320


def _token_start(text: str, end: int) -> int:
    """Where the token that `text[:end]` ends in starts: just after the white space last before `end`, looked for
    `WINDOW_WIDEST` characters back at most (that far back, when there is none)."""
    start = max(0, end - WINDOW_WIDEST)
    space = max(text.rfind(" ", start, end), text.rfind("\n", start, end), text.rfind("\t", start, end))
    return space + 1 if space >= 0 else start


def _read_within(text: str, chars: int) -> int:
    """How many of `text`'s first characters read as at most `chars` characters as the detectors read them: it is
    folded `_READ_PIECE` characters at a time, so the work stays bounded by `chars` (an NFKC that makes it 18 times
    longer); each piece counted on its own, counted high, never low (an escape or a mark a piece's edge splits reads
    as written, longer than as one), so no more is taken than was read."""
    size = 0
    for at in range(0, len(text), _READ_PIECE):
        size += len(folded(text[at : at + _READ_PIECE], _MOST_FOLDED * _READ_PIECE)[0])
        if size > chars:
            return at
    return len(text)


_READ_PIECE: Final = 256  # (fewer than `_LONGEST`: no more is left out of a capture than its cut leaves out anyway)


def _read_back(text: str, chars: int) -> int:
    """How many of `text`'s last characters hold at least `chars` characters as the detectors read them (all of it,
    when it reads as fewer): where a value cut at its end may start. An ever longer stretch is read, at most twice as
    far as needed; it is counted low, never high (what may be an escape cut at either end of it counts nothing), so
    a cut value is never counted as more than it reads."""
    size = chars
    while size < len(text):
        stretch = _ESCAPE_CUT_AT_END.sub("", _ESCAPE_REST_AT_START.sub("", text[-size:], count=1), count=1)
        if len(folded(stretch, _MOST_FOLDED * len(stretch) + _MOST_FOLDED)[0]) >= chars:
            return size
        size *= 2
    return len(text)


# the start of a stretch that may be the rest of an escape begun before it (`%4|0`, `&#00|064;`, `&com|mat;`,
# `\\u|0040`): its zeros any number, else a few characters (the longest rest: `\\ud835\\udfd2` less its `\\`)
_ESCAPE_REST_AT_START: Final = re.compile(r"\A#?[xX]?0*[0-9A-Za-z;\\]{0,11}")
# the end of a stretch that may be an escape it cuts (`%4`, `&#000`, `&peri`, `\\ud835\\udf`)
_ESCAPE_CUT_AT_END: Final = re.compile(r"[%&\\]#?[xX]?0*[0-9A-Za-z\\]{0,10}\Z")


def _apart(spans: list[Found]) -> list[Found]:
    """Values in order, without overlaps: of two that overlap, the one that starts first (the longer at one
    start), and the rest of the other past its end, labelled as it is: a value found across another's end is masked
    whole (`mask` hides what `scan` labels). Until 2026-12-06 that rest was left in clear: `1111 1111 1111
    192.168.010.254` was masked `[pii:credit_card].168.010.254`, the phone `192.168.010.254` labelled. A value
    starting inside such a rest is kept whole, with its own label, and the rest around it with the rest's
    (`_inside_rest`): until 2026-12-06 the rest took it in, so `4111 1111 1111 1111-10.0.0.1`, a phone
    `1111-10.0.0.1` across the card's end, was masked `[pii:credit_card][pii:phone]`, the address `10.0.0.1` that
    `scan` labels named nowhere."""
    spans.sort(key=lambda f: (f.start, -f.end))
    kept: list[Found] = []
    rest = False  # whether the last kept is the rest of a value past the end of the one before it
    for item in spans:
        if not kept or item.start >= kept[-1].end:
            kept.append(item)
            rest = False
        elif rest and _inside_rest(item, kept[-1]):
            last = kept.pop()
            if item.start > last.start:
                kept.append(Found(last.start, item.start, last.label))
            kept.append(item)
            rest = item.end < last.end
            if rest:
                kept.append(Found(item.end, last.end, last.label))
        elif item.end > kept[-1].end:
            kept.append(Found(kept[-1].end, item.end, item.label))
            rest = True
    return kept


def _inside_rest(item: Found, rest: Found) -> bool:
    """Whether a value starts inside the rest of another (`_apart`) and leaves some of that rest to name: one covering
    it all from its start (the same value the fold found again) takes its place no more than it did before."""
    return item.start > rest.start or (item.start == rest.start and item.end < rest.end)


class Reading:
    """Scans that share one limit: what they read together is at most the detectors' max_chars characters;
    a text past what is left is read up to there and labelled `scan:truncated`."""

    def __init__(self, detectors: Detectors) -> None:
        self._detectors = detectors
        self.left = detectors.max_chars

    def scan_all(self, texts: Sequence[str], reread: str = "") -> frozenset[str]:
        """The labels found in `texts` read run together (a newline between), as far as the limit goes; `reread`:
        what they start with that was read before (`Detectors.scan`)."""
        if not texts or not self._detectors:
            return frozenset()
        left = self.left
        size = sum(map(len, texts)) + len(texts) - 1
        if size > left:  # only what is read, and a character more to say the rest is cut, is joined
            kept: list[str] = []
            room = left + 1
            for text in texts:
                kept.append(text[:room])
                room -= len(text) + 1
                if room < 0:
                    break
            texts = kept
        self.left = max(0, left - size)
        found = self._detectors.scan(joined := "\n".join(texts), left, reread)
        # (within the limit as they come, NFKC making them longer: read again, farther, `Detectors._read_whole`; a
        # window where parts meet too, its start read as before: not read again, its value at its end unread, until
        # 2026-12-07, helper det15)
        return found if TRUNCATED not in found or size > left else self._detectors._read_whole(joined, left, reread)

    def scan_windows(self, windows: Sequence[str], before: Sequence[int]) -> frozenset[str]:
        """The labels found in the windows read where parts meet (`boundary_windows`), each read on its own, its
        characters before its first boundary (`before`) as read before: they are a part's, read whole with it, with
        what stands before them, which the window does not hold. Read run together, a window started at a matrix's
        row after a row, and it was a card written digit by digit (`_spelled_out`), none in the part read whole."""
        found: frozenset[str] = frozenset()
        for window, reread in zip(windows, before, strict=True):
            found = found | self.scan_all((window,), window[:reread])
        return found


# the most characters NFKC makes of one (`\ufdfa`): a text folded with this many times its length as the limit is
# folded whole
_MOST_FOLDED: Final = 18
# how many times longer than it comes NFKC may make a request's text within the scan limit and it still be read to its
# end (`Detectors._read_whole`): at most this many times its length in folded characters is read, the limit's own
# length of `ﷺ` in 0.3 s of the event loop, not 1.5 (a text NFKC makes longer still is `scan:truncated`)
_REQUEST_FOLDED: Final = 4


def _fold_limit(length: int, max_chars: int) -> int:
    """The limit a window of `length` characters is read with: all of it as NFKC folds it (`_MOST_FOLDED` times its
    length); longer than `_FOLD_WHOLE`, no more than the scan limit, or its own length where that is more. Folded
    without the scan limit's bound (5f1a094), a reply of U+FDFA in pieces of a million characters held 203 MB to read
    one (13 MB before). Bound so whatever its length (helper scanend's find), a text within the limit as it comes that
    NFKC makes longer than it (`¼` in one of the limit's length) was read whole only to the limit, `scan:truncated`, its
    end unread, but streamed in windows each folding within it, all of it, until 2026-12-05 (helper detectors)."""
    if length <= _FOLD_WHOLE:
        return _MOST_FOLDED * length
    return max(length, min(_MOST_FOLDED * length, max_chars))


# the most characters of a window folded whole whatever the scan limit (`_fold_limit`): a stream's batch, its tail and
# a held end (`StreamScanner`), at most 18 times as many folded (~3 MB held to read it); and the pieces a longer one
# that NFKC may make longer than the limit is read in (`StreamScanner._read_parts`)
_FOLD_WHOLE: Final = 16_384
_FOLD_PART: Final = 4096


def _plain(text: str) -> bool:
    """Whether `text` reads as it stands: ASCII without escapes or control characters (most texts)."""
    # (controls looked for in the class string: one translate and a memchr, five times faster than `_CONTROL`'s search)
    return text.isascii() and not _escapes(text) and not _controls(text.encode("ascii"))


def _plain_classes(text: str) -> bytes:
    """The class string of `text` (not empty) when it reads as it stands (`_plain`), else empty: what `_plain` looked
    for controls in, kept for the text's scan (`Detectors.scan_output`)."""
    if not text.isascii() or _escapes(text):
        return b""
    classes = text.encode("ascii").translate(_CLASSES)
    return b"" if _CONTROL_CLASS in classes else classes


# what the detectors drop, and digits, spaces and a time's colon as they read them (NFKC, `_DECIMALS`), one character
# each: a text so translated reads as it does, and a stretch the fold leaves as it stands (`_read_once`) is read so for
# the runs of numbers in it (`_held_run`, `_past_spaces`, `_run_unaligned`). Read as none there, the minutes after
# `１２:` were a run's first number, a row's: `100% at １２:30 ` then phones alike, none streamed past the run's first
# 1,280 characters, found whole, until 2026-12-06, helper joins2 (who translated that window alone)
# (and so a digit, a space, a bracket, a dot, a plus, a slash, a colon or a dash NFKC makes of one character, and the
# dashes and stops the fold reads as `-` and `.`: `_NUMBER_FORMS`. Left as they stood, superscript digits, `¹²³`, or
# fullwidth dashes, `－`, were read as none, and `100% 1 ` then phones alike in superscript digits, or `100% 12  ` and
# nine `－` before phones alike, were phones streamed at 408 and 1,317 cuts, none whole, until the review of helper
# joins3's change)
# (and every character NFKC makes such characters of, one or more: `⑫` is `12`, `⑴` `(1)`, as `mask` reads the values
# a text's own form shows, `_mask_folded`)
_NUMBERS_NFKC: Final = {
    ord(char): read
    for char in map(chr, range(0x80, 0x20000))
    if unicodedata.decomposition(char) and not (read := unicodedata.normalize("NFKC", char)).strip("0123456789 ().+/:-")
}
_NUMBER_FORMS: Final = {code: read for code, read in _NUMBERS_NFKC.items() if len(read) == 1}
# (those of them that make no digit, spaces, brackets and dashes, as `mask` reads a text's own form: a digit NFKC
# makes, `５`, stays as the text shows it, so a card beside it is masked where it stands, `_mask_folded`)
_SEPARATORS_NFKC: Final = {code: read for code, read in _NUMBERS_NFKC.items() if not any(map(str.isdigit, read))}
# (and with its dashes read as the fold reads them, `-`, or `--` where `_PROSE_DASH` reads one so: read as it stands,
# a dash between digits set them apart, where the fold reads it as `-` joining them, and `mask` masked a card or a
# phone `scan` did not find, `4567—4111111111111111`, `555-123-4567−4111111111111111`, until 2026-12-07, helper det15)
_SEPARATORS_READ: Final = {**_SEPARATORS_NFKC, **dict.fromkeys(map(ord, _DASHES), "-")}
_AS_READ: Final[dict[int, str | None]] = {
    **{code: None for code, to in _FOLD.items() if to is None},
    **_DECIMALS,
    **_NUMBER_FORMS,  # (spaces NFKC reads as one, and a time's colon: `_run_unaligned` reads its minutes)
    **dict.fromkeys(map(ord, _DASHES), "-"),
    **dict.fromkeys(map(ord, _STOPS), "."),
}
# an ASCII character with the marks over it (`_MARKS_ON_ASCII`)
_MARKED_ASCII: Final = re.compile(f"[\x00-\x7f][{_MARK_CLASS}]+")


def _unmarked(marked: re.Match[str]) -> str:
    """An ASCII character with marks over it as the detectors read it: what NFKC composes of them (`e` and U+0301
    are `é`), without the marks over an ASCII character that are left (`_bare`)."""
    return _bare(unicodedata.normalize("NFKC", marked.group()))


def _read_once(stretch: str) -> str:
    """`stretch` folded, to be read again with what comes after it (and folded again then): a text the fold leaves
    none of the characters escapes start with. Else the stretch less the characters the detectors drop, its digits and
    spaces as they read them (`_AS_READ`: read as none, a run of phones in fullwidth digits in a reply holding a `%` was
    read from the cut past its first 1,280 characters, phones streamed at 14 cuts, none whole, until 2026-12-06, helper
    joins3): a folded one's escapes, decoded, would be decoded twice (`alice\\u002540example.com` read as
    `alice@example.com`, where read whole it is `alice%40example.com`), and one cut at its end (`\\u005cu00`) read as it
    does not with what follows; the marks over its ASCII characters read as the fold reads them. So is a stretch ending
    in an HTML escape its `;` may follow (`_ESCAPE_CUT`): a reply streamed as `alice&#64` and `;example.com` was read
    `alice@;example.com`, no address."""
    reading = folded(stretch, _MOST_FOLDED * len(stretch) + _MOST_FOLDED)[0]
    if "\\" in reading or "%" in reading or "&" in reading or _ESCAPE_CUT.search(stretch) is not None:
        return _MARKED_ASCII.sub(_unmarked, stretch.translate(_AS_READ))
    return reading


# an HTML escape of `@` or `.` by its number at a stretch's end, without its optional `;`: what follows may still
# belong to it (`&#64` then `;example.com`, or then `0`, `&#640`, no escape), so the stretch is not read as decoded
_ESCAPE_CUT: Final = re.compile(r"&#(?:0*(?:64|46)|[xX]0*(?:40|2[eE]))\Z")


def _reading(text: str, chars: int, at_end: bool) -> tuple[str, str | None]:
    """The first (or, `at_end`, the last) `chars` characters of `text` as the detectors read it (`folded`), and the
    whole of it as they read it when that was read to find them (else None): its first or last characters as they
    stand, when they read so; else an ever longer stretch of it read (`_read_once`: linear in it, however many
    characters the detectors drop), so that characters they drop (zero-width spaces, controls, combining marks over ASCII) take no
    room in it."""
    edge = text[-chars:] if at_end else text[:chars]
    if _plain(edge):
        return edge, text if len(edge) == len(text) else None
    size = 4 * chars
    while True:
        stretch = text[-size:] if at_end else text[:size]
        reading = _read_once(stretch)
        if at_end:  # (marks its cut left without the character beneath, outside it: read with that one, if at all)
            reading = reading.lstrip(_MARK_CHARACTERS)
        if size >= len(text):
            return (reading[-chars:] if at_end else reading[:chars]), reading
        if len(reading) >= chars:
            return (reading[-chars:] if at_end else reading[:chars]), None
        size *= 2


def _tail_at_a_gap(end: str, window: str = "", ahead: str = "", folded: bool = False) -> str:
    """The tail a stream scanner keeps of `end` (the last `2 * _OVERLAP` characters of what it read, as the detectors
    read them): its last `_OVERLAP` characters, or more, from just after the white space nearest before them; read back
    to where `end` was cut, in a run of numbers, from the run's start in `window` (`end` its end, as it stands) if near
    (`_held_run`; `ahead`: the character before `window`; `folded`: `window` as it stands, not as the detectors read
    it, its end so read again as far as the run is looked for). Cut
    inside a value, its end was read alone, as the text read whole does not read it: a decimal's fraction
    (`…0.|0123456789`) was a phone, a UUID's last groups (`…-|4187-9491-f176b0fe97e3`) too, so two thirds of replies
    streaming numbers were labelled, clean read whole. Nor does it start among numbers split by white space, or an
    IBAN's groups (`_GROUPS_BEFORE`): a row's last four numbers were a card, an IBAN's account digits a phone (since
    2026-12-04)."""
    cut = len(end) - _OVERLAP
    if cut <= 0:
        return end
    gap = max(end.rfind(" ", 0, cut), end.rfind("\n", 0, cut), end.rfind("\t", 0, cut))
    if gap >= 0:
        before = _GROUPS_BEFORE.match(end[gap::-1])  # (matches: `end[gap]` is white space)
        start = gap + 1 - (before.end() if before is not None else 1)
        if start == 0 and len(end) == 2 * _OVERLAP:
            # read back to where `end` was cut, maybe inside a value: from the first white space then (groups of four
            # letters read back over prose of four-letter words: `41111111 1111 1111 word word …` cut at `4111|1111`
            # was a phone, until 2026-12-05, helper detfuzz)
            if folded and window:
                # (a window holding other than ASCII: until 2026-12-05, helper revdetfuzz3, its tail was cut in the run,
                # and `’ ` then 30 phones alike, `1111` and a card, read whole, was no card)
                reading, whole = _reading(window, 2 * _OVERLAP + _RUN_HELD, True)
                run = _held_run(reading if whole is None else whole, ahead if whole is not None else " ")
                if run > 0 or (run == 0 and whole is not None):
                    return (reading if whole is None else whole)[run:]
            else:
                run = _held_run(window, ahead) if window else -1
                if run >= 0:
                    return window[run:]
            first = _FIRST_GAP.match(end)  # (matches, if only "")
            start = first.end() if first is not None else 0
        past = _past_spaces(end, start)
        if past < 0 and len(end) == 2 * _OVERLAP and window:
            past = _past_spaces_in(end, start, window, folded)
        return end[past if past >= 0 else start :]
    # none: a shorter end is all the window read, which starts where the tail before it did, or where the text does
    return end if len(end) < 2 * _OVERLAP else end[cut:]


def _run_unaligned(read: str, tail: str, ahead: str, carried: int) -> int:
    """The readings as phones that the run of numbers a stream scanner's tail starts in (the end of `read`, its window
    as the detectors read it; `ahead`: the character before the window) is none of, read whole (`_Text.unaligned`):
    phones alike of each layout (`_ALIKE_REFUSED`), phones of layouts not alike before a card (`_WRITTEN_REFUSED`), any
    phones before a card (`_CARD_REFUSED`), by its start (in `read`, or `carried`, the same of the tail before, for a
    run going on from the window's start, with what of it this window holds) and by what of it `read` holds: `_UNALIGNED`
    after an ASCII letter, a `(`, `.` or `+` no phone is read from, or another number a `-` or a bracket joins it to;
    else what its phones as read up to the window's end are not (`_run_refused`), and where the tail starts in a phone
    of phones written read from its start (`_written_rest`). The next window reads it back from
    its end (`_in_tail`) as none of those. 0 where unsure: two spaces in it (a `/`, a `:`, a `-` or a `)` joined before
    it too until 2026-12-06, helper joins: read from its first number now, as whole).
    Before 2026-12-05 (helper detfuzz4) a run longer than a tail holds from its start (`_held_run`) was read so,
    whatever began it: `"1 " + "555 123 4567 " * 120` streamed was phones at 154 of 1,561 two-piece cuts, a card
    then that run phones and the card at 176, `x555 …` phones at 156, none whole; and until a later change that day
    (helper detectors, the forty-fourth sitting) only its first phone was looked at, so a run of phones alike whose
    first number fitted another layout (`1555 123 4567 555 …`), whose first phone a card or other phones followed, or
    whose phones were a UK layout's beginning with a group of four before a card (`0161 496 0000 … 4111 …`, none
    whole), was phones, and a card after them, streamed past its first 1,280 characters, and fed whole beside a second
    output."""
    if not "0" <= tail[:1] <= "9" or not read.endswith(tail):
        return 0
    cut = len(read) - len(tail)
    start = len(read[:cut].rstrip(_DIGITS_AND_SPACE))
    wide = read.rfind(_WIDE_GAP, start, cut)
    if wide >= 0:
        # (more spaces than `_PHONE` reaches across end a run, `_ROW_ON`: the run starts after them, as after white
        # space. Read on across them, `1234 5678` and 25 spaces or more before phones alike would be a row's, none, at
        # the cuts past 1,280 characters, where whole they are phones)
        start = wide + len(_WIDE_GAP)
    spaces = _SPACES.match(read, start)  # (matches, if only "")
    first = spaces.end() if spaces is not None else start
    if start > 1 and read[start - 1] == ":" and _after_minutes(_Text(read[start - 2 : start + 4]), 2) > 2:
        first = start + 3  # (a time's minutes: read without them, as whole)
    double = read.rfind("  ", first, cut)
    if double >= 0:
        # (two spaces in it: whole, the run read from its first number is a row's, no phones (`_phones_alike`,
        # `_phones_written` read single spaces), but a card after phones is read from the last two spaces on
        # (`_PHONE_THEN_CARD`), as after white space. Read as no phones alike, `"1 " + "555 123 4567 " * 11 + " " +
        # "555 123 4567 " * 129 + card` was no card at 275 of 1,844 cuts, none before, until 2026-12-05, helper
        # revdetfuzz4; read as unsure, back from its end, phones, none whole: `12  ` or `12:30  ` then `555 123 4567 `
        # x121, at 1,317 of 1,584 two-piece cuts, until 2026-12-06, helper joins2)
        after = _SPACES.match(read, double)  # (matches, if only "")
        return _ROW_REFUSED | _refused_from(read, after.end() if after is not None else double, cut, 0)
    if start == 0 and ahead != "":
        # (the run goes on from the window before, its start read there: what this window holds of it read too)
        refusals = carried & _REFUSALS
        if first != 0 or refusals == 0 or refusals == _UNALIGNED:
            return refusals if first == 0 else 0
        return refusals | _run_refused(read, 0, cut, carried >> _REST_SHIFT if refusals & _WRITTEN_REFUSED == 0 else -1)
    led = 0
    row = False
    if start > 0:
        joined = read[start - 1]
        led = _phone_led(read, start, first)
        if led < 0:
            return _UNALIGNED
        # (joined by a `-` or a bracket to a number before: a row's with it, whose separator `_WRITTEN_OR_TEN` finds, no
        # phones, but a card after phones from its start is read as after any, `_phone_before_card`)
        row = led == 0 and joined in "().-" and _ROW_JOINED.search(read, max(0, first - 64), first) is not None
        # (any other character joined before it, or white space then spaces: read from its first number, as whole,
        # `_phones_alike` and `_phone_before_card` read it; a time's minutes first, `12:30 555 …`, make it a row's. Read
        # as unsure, a number's character joined (`/`, `:`, `-`, `)`) or white space then spaces, the run read back
        # from its end was phones alike: `12/` + `0161 496 0000 ` x121 + a card, or `12:30 ` + `555 123 4567 ` x121,
        # phones (and the card) at 25-63 of ~230 two-piece cuts, and fed whole beside a second output, none whole,
        # until 2026-12-06, helper joins; `#`, `$`, `é`, `|` since the sitting before, helper revdetectors)
        if first == start and joined in _ASCII_LETTERS and not row:
            # (an ASCII letter joined to its first number: read whole, `x555 123 4567 …` is no phones, nor is a card
            # after them (`_phone_before_card` reads no phones from `555`). Read as white space (helper revdetfuzz4),
            # the run read back from its end was phones alike, and phones and the card after them were found streamed,
            # none whole: `x` + `555 123 4567 ` x120 + a card at 34 of 316 two-piece cuts, and fed whole with a second
            # output (`OutputText`), until 2026-12-05, helper detectors. The card whole was found after 120 phones,
            # not 121: `_CARD`'s candidates, tiled from the run's start, started at it one time in 19)
            return _UNALIGNED
    return _refused_from(read, first, cut, led) | (_ROW_REFUSED if row else 0)


def _refused_from(read: str, first: int, cut: int, led: int) -> int:
    """`_run_unaligned`'s readings as phones ruled out for a run of numbers read from `first` in `read` (its first phone
    from `led`, past a country's code, when not 0: `_phone_led`)."""
    refused = _run_refused(read, led or first, cut)
    if led > 0:
        refused |= _WRITTEN_REFUSED  # (after a country's code and its `+`: `_phones_written`)
    if _FOUR_FIRST.match(read, first) is not None and _UK_FIVE_FIRST.match(read, first) is None:
        refused |= _CARD_REFUSED  # (its first group of four digits or more: a row's, `_phone_before_card`)
    return refused


# (`_run_refused`'s run read from its start)
_FROM_START: Final = -2


def _run_refused(read: str, first: int, cut: int, rests: int = _FROM_START) -> int:
    """The readings as phones (`_Text.unaligned`) that the run of numbers at `first` in `read`, up to where it ends in
    it, rules out, read as phones from there: alike of a layout, each begun as its phones are (`_phones_alike`), or of
    layouts not alike (`_phones_written`), and where `cut` (the tail's start) is in a phone of these (`_written_rest`);
    `rests`: the run started before `read`, `first` maybe inside a phone, the rest of it the window before read it to
    (`_REST_SIZES`; 0: not read so, -1: no phones written). Its end, which the next window reads again, is taken as any
    phone's first characters. Matched at C speed, once each."""
    run = _RUN_IN_READ.match(read, first)  # (matches: a digit at `first`)
    end = run.end() if run is not None else first
    refused = 0
    for bit, pattern in enumerate(_ALIKE_FROM_START if rests == _FROM_START else _ALIKE_GOING_ON):
        if pattern.fullmatch(read, first, end) is None:
            refused |= 1 << bit
    if rests == _FROM_START:
        return refused | _written_rest(read, first, end, cut)
    if rests > 0:
        return refused | _written_on(read, end, rests, cut)
    return (
        refused
        if rests == 0 and _WRITTEN_GOING_ON.fullmatch(read, first, end) is not None
        else refused | _WRITTEN_REFUSED
    )


def _written_rest(read: str, first: int, end: int, cut: int) -> int:
    """Whether the run of numbers from `first` to `end` in `read` is phones of `_PHONE_LAYOUTS` one after another, each
    begun as theirs are, then any phone's first characters (`_WRITTEN_PHONES`): if so, where in a phone of them `cut`, a
    stream scanner's tail's start, is, as the sizes of its groups from there on (bits of `_Text.unaligned` above
    `_REST_SHIFT`), else `_WRITTEN_REFUSED`. The next window reads the run back from its end (`_phones_written`) to that
    rest only: read back to any phone's later groups, `see 212 ` then `020 7946 0958 ` x121 and a card (3-3-4 then
    4-3-4s from its start, a `212` left before 3-4-4s from its end, no phones whole) was phones and the card streamed
    past its first 1,280 characters, until 2026-12-06 (helper joins). Each phone is one layout's at most (read from its
    first groups): matched to `cut`, then on from there, the run is read once."""
    phones = _WRITTEN_PHONES.match(read, first, cut)  # (matches, if only "")
    done = phones.end() if phones is not None else first
    tiled = _WRITTEN_PHONES.match(read, done, end)  # (matches, if only "")
    if end - (tiled.end() if tiled is not None else done) > 14:
        return _WRITTEN_REFUSED
    if done >= cut:
        return _REST_INDEX[_AT_A_PHONE] << _REST_SHIFT
    sizes = tuple(map(len, read[done:cut].split()))
    north = "2" <= read[done] <= "9"
    if not north and (read[done] != "0" or read[done + 1] == "0"):
        return _WRITTEN_REFUSED  # (begun as no phone of a layout is)
    rests = frozenset(
        layout[len(sizes) :]
        for layout in _PHONE_LAYOUTS
        if layout[: len(sizes)] == sizes and north == (layout == _NORTH_AMERICAN)
    )
    return _REST_INDEX.get(rests, 0) << _REST_SHIFT if rests else _WRITTEN_REFUSED


def _written_on(read: str, end: int, rests: int, cut: int) -> int:
    """`_written_rest` of a run going on from a window's start in `read` to `end`, the rest of a phone `rests` the
    window before read it to (`_REST_SIZES`) first: `_WRITTEN_REFUSED` when no such rest starts it."""
    for rest in _REST_SIZES[rests]:
        at = 0
        for size in rest:
            gap = read.find(" ", at, at + size + 1)
            if gap != at + size:
                break
            at = gap + 1
        else:
            if at <= cut:
                return _written_rest(read, at, end, cut)
    return _WRITTEN_REFUSED


def _phone_led(read: str, start: int, first: int) -> int:
    """Where the run of numbers at `first` in `read` has its first phone read whole (`_phones_alike`, `_phone`), by
    what is joined before it (`start`: just after that): past a country's code after a `+`; -1 when none is read from
    it: after a `(` or a `+` `_phone` takes in (one space between at most), a `.`, or an underscore after a word's
    character; 0 when not read so (`_run_unaligned`). Read as unsure, the run read back from its end was phones alike,
    and phones and a card after them were found streamed, or fed whole beside a second output, none whole: `(`, `.`,
    `+` or `x_` then `555 123 4567 ` x121, until 2026-12-05 (helper revdetectors, the review's find)."""
    joined = read[start - 1]
    if joined in "(+" and first <= start + 1:
        if joined == "(" or first > start or (start > 1 and read[start - 2] in _PHONE_LEAD_NONE):
            return -1  # (`(555 …`, `+ 555 …`: the phone taken in from the `(` or the `+`, not the run's start; `x+1 …`)
        space = read.find(" ", start, start + 4)  # (a country's code of 1-3 digits: `+1 555 123 4567 …`)
        return space + 1 if space > 0 else -1
    if first > start:
        return 0
    if joined == ".":
        return -1  # (a decimal's fraction)
    if joined == "_":
        word = len(read[:start].rstrip("_"))
        return -1 if word > 0 and read[word - 1].isalnum() else 0  # (`x_555 …`, a word's; `_555 …`, emphasis)
    return 0


_DIGITS_AND_SPACE: Final = "0123456789 "
_ASCII_LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# what before a `+` joined to a number makes it no phone's (`_phone`): a word's character, a dot, another `+` or a `(`
_PHONE_LEAD_NONE: Final = "0123456789_+.(" + _ASCII_LETTERS
_SPACES: Final = re.compile(" *")
# the readings as phones a run of numbers a stream scanner's tail was cut in is none of (`_Text.unaligned`): phones
# alike of each of `_PHONE_LAYOUTS` (a bit each, in their order), phones of them not alike before a card, any phones
# before a card; all of them
_ALIKE_REFUSED: Final = (1 << len(_PHONE_LAYOUTS)) - 1
_WRITTEN_REFUSED: Final = 1 << len(_PHONE_LAYOUTS)
_CARD_REFUSED: Final = 2 << len(_PHONE_LAYOUTS)
_UNALIGNED: Final = _ALIKE_REFUSED | _WRITTEN_REFUSED | _CARD_REFUSED
# and a run a `-` or a bracket joins to a number before it, no phones but the card after phones (`_phone_among`)
_ROW_REFUSED: Final = 4 << len(_PHONE_LAYOUTS)
_REFUSALS: Final = _UNALIGNED | _ROW_REFUSED
# and above them, where the tail starts in a phone of phones written from the run's start (`_written_rest`): the index
# in `_REST_SIZES` of the sizes of that phone's groups from there on (0: not read so); at a phone's start, `()`
_REST_SHIFT: Final = len(_PHONE_LAYOUTS) + 3
# a phone of each of `_PHONE_LAYOUTS` split by spaces, begun as its phones are (`_phones_alike`)


def _layout_phone(layout: tuple[int, ...]) -> str:
    """A pattern of a phone of `layout` split by spaces, begun as its phones are: North America's with 2-9, the UK's
    with 0 then 1-9 (`_phones_alike`)."""
    lead, digits = ("[2-9]", 1) if layout == _NORTH_AMERICAN else ("0[1-9]", 2)
    first = f"{lead}[0-9]{{{layout[0] - digits}}}"
    return " ".join([first, *(f"[0-9]{{{size}}}" for size in layout[1:])])


_LAYOUT_PHONES: Final = tuple(map(_layout_phone, _PHONE_LAYOUTS))
# a run of numbers split by single spaces as it is read up to a window's end (`_run_refused`): phones of a layout, each
# with a space after it, from its start or from inside a phone (at most two groups of one first), then any phone's
# first characters
_ALIKE_FROM_START: Final = tuple(re.compile(rf"(?:{phone} )*+[0-9 ]{{0,14}}") for phone in _LAYOUT_PHONES)
_ALIKE_GOING_ON: Final = tuple(
    re.compile(rf"(?:[0-9]+ ){{0,2}}(?:{phone} )*+[0-9 ]{{0,14}}") for phone in _LAYOUT_PHONES
)
_WRITTEN_FROM_START: Final = re.compile(rf"(?:(?:{'|'.join(_LAYOUT_PHONES)}) )*+[0-9 ]{{0,14}}")
_WRITTEN_GOING_ON: Final = re.compile(rf"(?:[0-9]+ ){{0,2}}(?:(?:{'|'.join(_LAYOUT_PHONES)}) )*+[0-9 ]{{0,14}}")
_RUN_IN_READ: Final = re.compile(r"[0-9]+(?: [0-9]+)* ?")
_WRITTEN_PHONES: Final = re.compile(rf"(?:(?:{'|'.join(_LAYOUT_PHONES)}) )*+")


def _rest_sizes() -> tuple[frozenset[tuple[int, ...]], ...]:
    """Every set of rests of phones `_written_rest` may read, by their first groups, each once; an empty one first."""
    found: list[frozenset[tuple[int, ...]]] = [frozenset(), _AT_A_PHONE]
    for layout in _PHONE_LAYOUTS:
        for count in range(1, len(layout)):
            for north in (False, True):
                rests = frozenset(
                    other[count:]
                    for other in _PHONE_LAYOUTS
                    if other[:count] == layout[:count] and north == (other == _NORTH_AMERICAN)
                )
                if rests and rests not in found:
                    found.append(rests)
    return tuple(found)


_AT_A_PHONE: Final[frozenset[tuple[int, ...]]] = frozenset(((),))
_REST_SIZES: Final = _rest_sizes()
_REST_INDEX: Final = {rests: index for index, rests in enumerate(_REST_SIZES)}
# a number a `-` or a bracket joins to the run after it (`_run_unaligned`), read back from the run's first number (the
# spaces after the `-` counted too: `x 12  -` and 22 spaces before phones alike were none streamed at 5 cuts, phones
# whole), as far as `_PHONE` reaches (`_PHONE_REACH`: further, read whole as no number's; `12  ` and 40 dashes before
# phones alike were none streamed past the run's first 1,280 characters, phones whole, until 2026-12-06, helper joins3)
_ROW_JOINED: Final = re.compile(r"[0-9][ ().-]{0,24}\Z")
# a first group of four digits or more, and a UK number's first group of five (`_phone_before_card`, `_uk_five_first`)
_FOUR_FIRST: Final = re.compile(r"[0-9]{4}")
_UK_FIVE_FIRST: Final = re.compile(r"0[1-9][0-9]{3} (?:[0-9]{6}|[0-9]{3} [0-9]{3}) ")


def _held_run(window: str, before: str) -> int:
    """Where in `window` a stream tail read back to where its last `2 * _OVERLAP` characters were cut starts instead
    (`_tail_at_a_gap`: a run of numbers longer than them): at the token before the run, found within `_RUN_HELD`
    characters more, or at the window's start when the run starts there (the text's start, `before` "", or the tail
    before it started at a token, not at a number where it was cut in the run); -1 when the run goes on further. Its
    start held, the next window reads the run as the text whole does. Cut in it, the window read its card candidates
    from its first number, a phone's later group (`"555 123 4567 " * 30 + "1111 " + card`: no card at 31 of 413 cuts,
    the card alone whole; `"12 " * 100` then two phones and a card: the card at 6 of 529, none whole), and a number or
    a word joined before the run unseen (`"1 " + "555 123 4567 " * 40`: phones at 393 of 521 cuts, none whole) until
    2026-12-05 (helper detfuzz3). A longer run is read from the cut, as before."""
    low = max(0, len(window) - 2 * _OVERLAP - _RUN_HELD)
    cut = len(window) - _OVERLAP
    gap = max(window.rfind(" ", low, cut), window.rfind("\n", low, cut), window.rfind("\t", low, cut))
    if gap < 0 or (
        low > 0 and not window[low:gap].rstrip(_RUN_CHARACTERS) and _TWO_SPACES.search(window, low, gap) is None
    ):
        # (numbers alone back to `low`, one white space between each, stripped at C speed: a longer run, its 1 MB read
        # back no slower. Two white spaces end a run `_GROUPS_BEFORE` reads back: taken for a longer run, the run after
        # them in a window of more than 1,280 characters was read from the cut, the card after it streamed at 21
        # cuts, none whole, until 2026-12-05, helper revdetfuzz3)
        return -1
    back = _GROUPS_BEFORE.match(window[low : gap + 1][::-1])  # (matches: `window[gap]` is white space)
    start = gap + 1 - (back.end() if back is not None else 1)
    if start > low or (start == 0 and (before == "" or _A_NUMBER.match(window) is None)):
        return _past_spaces(window, start)
    return -1


def _past_spaces(window: str, start: int) -> int:
    """Where a stream tail that would start at `start` in `window` starts: past the last of two spaces or more between
    a run of numbers and a number before it, at the run's first number, so that `_run_unaligned` reads the run with that
    number, one row whole (`_ROW_ON`), which `_GROUPS_BEFORE` ends at the two spaces. Read from the spaces, the next
    window read the run as after white space, phones alike: `12  ` then `555 123 4567 ` x121, phones streamed at the
    cuts past its first 261 characters, none whole, until 2026-12-06, helper joins2. -1 when the spaces begin
    `window`, what is before them unknown (a stretch of the window: the tail is read from the cut then)."""
    pair = window[start - 1 : start + 1] if start > 0 else ""
    # (and dashes after them joined to its first number, a row's with it too, `_ROW_ON`: read from the dash on, as
    # after white space, `12  -555 123 4567 ` + `555 123 4567 ` x120 was phones streamed, none whole, until the
    # review of helper joins2's change; so as far as `_PHONE` reaches, 24 characters between the number's last digit
    # and the run's first, not 8 past the two spaces: `12  ` and 9-22 dashes were phones streamed, none whole, until
    # 2026-12-06, helper joins3)
    joiners = window[start + 1 : start + 1 + _PHONE_REACH]
    joined = len(joiners) - len(joiners.lstrip(" -"))
    at = start + 1 + joined
    if pair == "  " and "0" <= window[at : at + 1] <= "9":
        low = max(0, start - _OVERLAP)
        before = window[low:start]
        number = before.rstrip(" ")[-1:]
        if number in _ROW_JOINERS:  # (or "": the spaces begin `window`, what is before them unknown: the cut's)
            if not number:
                return -1
            if at - low - len(before.rstrip(" ().-")) <= _PHONE_REACH:
                return at
    return start


def _past_spaces_in(end: str, start: int, window: str, folded: bool) -> int:
    """`_past_spaces` of `end`, the last characters of `window` as the detectors read them, when the spaces begin it:
    read with the characters before it in `window`, where the number before them may be. Read as the window's start
    (-1, what is before unknown), the tail would begin at the second space, and the next window read the run as after
    white space: `12  ` then 3 to 20 dashes and `555 123 4567 ` x121 would be a phone at the 4-5 cuts where a window's
    last 256 characters begin at the spaces, none whole."""
    reach = len(end) + _PHONE_REACH + 1
    longer = _read_end(window, reach) if folded else window[-reach:]
    if len(longer) <= len(end) or not longer.endswith(end):
        return -1
    before = len(longer) - len(end)
    past = _past_spaces(longer, start + before)
    return past - before if past >= before else -1


# the most characters between two digits `_PHONE` reads as one candidate's (its `{6,24}`)
_PHONE_REACH: Final = 24
# more spaces than it reaches across: no number before them is a candidate's with one after (`_ROW_ON`)
_WIDE_GAP: Final = " " * (_PHONE_REACH + 1)


# what joins numbers split by spaces into one row read whole (`_ROW_ON`): a digit, a bracket, a dot or a dash
_ROW_JOINERS: Final = "0123456789().-"


# how many characters more than its `2 * _OVERLAP` a stream tail reads back for the start of a run of numbers it was
# cut in (`_held_run`), and a number first in a window (where a tail was cut in a run, `_tail_at_a_gap`)
_RUN_HELD: Final = 1024
_A_NUMBER: Final = re.compile(r"[0-9().+/:-]+\s")
_RUN_CHARACTERS: Final = "0123456789().+/:- \t\n\r"
_TWO_SPACES: Final = re.compile(r"\s\s")


# white space and the numbers and groups of four letters or digits (an IBAN's, `GB82 WEST 1234`) just before it,
# each after white space, and the token before them, read backwards from the white space: where a tail that would
# start after it starts instead. The white space is its whole run: after a run, a tail started with none of the token
# before, and an operand after `=` and a newline and an indent (`out =\n    emb@model.to(device)`) read first in it
# was an address in prose (`_in_prose`) until 2026-12-05 (helper revemails). A number followed by a comma or a
# semicolon is one of them, the one just before the white space only (a list of decimals split so was read back to a
# decimal cut, `…0.|0123456789`, a phone): a tail started with it (`0 1733356800,` | …), and a Unix time read
# without the number before it was a phone, none read whole. A token holding `@` takes the token before it too,
# and the numbers before that: a tail that started with it (`x = mb@mel.to(` | `\n`…, `return emb@model.to(`)
# read its operand as first in the text, an address in prose (2026-12-05, helper detfuzz)
_NUMBERS_BEFORE: Final = r"(?:[,;][0-9().+/:-]+\s)?(?:(?:[0-9().+/:-]+|[0-9A-Za-z]{4})\s)*"
_GROUPS_BEFORE: Final = re.compile(rf"\s+{_NUMBERS_BEFORE}(?:[^\s@]*@\S*\s+{_NUMBERS_BEFORE})*\S*")


# the first run of white space and what is before it (`_tail_at_a_gap`)
_FIRST_GAP: Final = re.compile(r"\S*\s*")


def _read_end(text: str, chars: int) -> str:
    """The last `chars` characters of `text` as the detectors read it: what a stream scanner reads again with its next
    piece. As they stood, a run of characters the detectors drop filled it where a reply's pieces were cut, and
    `alice@` + 400 zero-width spaces + `example.com` streamed was not found, where the same reply read whole was."""
    return _reading(text, chars, True)[0]


def read_edges(text: str, chars: int) -> str:
    """`text` as the detectors read it within `chars` characters of its start and of its end (a part's text where
    it meets the parts beside it, `boundary_windows`), a newline for what lies between; `text` itself when it reads
    as it stands. A run of characters the detectors drop, where two parts met, reached past the characters read
    around the meeting, and `alice@` + 5,000 zero-width spaces and `example.com` in two text parts was not found,
    where the same text in one part was."""
    if len(text) <= 2 * chars:
        if _plain(text):
            return text
    elif _plain(text[:chars]) and _plain(text[-chars:]):  # (a window reaches no further into a part than these)
        return text
    head, whole = _reading(text, chars, False)
    if whole is None:
        tail, whole = _reading(text, chars, True)
        if whole is None:
            return head + "\n" + tail
    return whole if len(whole) <= 2 * chars else whole[:chars] + "\n" + whole[-chars:]


def _unended(window: str) -> int:
    """Where the end of a stream scanner's window that may be a value cut there starts: its last token (no white space
    after it) and the numbers before it split by spaces or tabs, one or more (`… 1234 5698 7`), at most `_OVERLAP` characters
    (`len(window)` when none, or when the token is longer: read as before). Read as the window's end, it was read as
    the text's, and the text streamed found what the text whole holds not: `version 1.2.3.4.` | `5` an IPv4 address,
    `-124.` | `203753` or a UUID's first groups a phone, a row's first numbers (`15339 1917 11 ` | `1095 …`) a phone;
    127 of 5,519 cuts of 46 texts on 2026-12-04, none since."""
    end = window[-_OVERLAP:][::-1]
    unended = _UNENDED.match(end)  # (matches, if only "")
    size = unended.end() if unended is not None else 0
    if size == len(end) and len(end) < len(window):
        token = _FIRST_GAP.match(end)  # (matches: the last token, and the white space before it)
        if token is None or token.end() == len(end):
            # (a token longer than the end held: the number it ends with is held, read with what follows it in the
            # next window, as whole; read to the window's end, `…(4111111111111111` then `zz` was a card, none whole,
            # until 2026-12-06; a number filling the end is read as before)
            number = _NUMBER_ENDING.match(end)  # (matches, if only "")
            size = number.end() if number is not None else 0
            return len(window) - (size if size < len(end) else 0)
        # (numbers split by spaces fill it, their run longer: held from the first after white space in it, its first
        # cut; read to the window's end, a run the text holds longer was read as ending there, and `555 123 4567 ` x30
        # then `1111 4111 1111 1111 1111` cut in the run was a phone, none whole, until 2026-12-05, helper detfuzz2)
        first = _FIRST_GAP.match(window[-_OVERLAP:])  # (matches, if only "")
        return len(window) - len(end) + (first.end() if first is not None else 0)
    return len(window) - size


# the end `_unended` holds back, read backwards: the last token, and numbers before it each after a space or a tab, or
# a space NFKC reads as one (no-break, en, em, thin, ideographic: before 2026-12-05 a matrix's numbers split by no-break
# spaces, cut in a row, were read to the cut, and a row's first ten digits were a `pii:phone` at 220 of 543 cuts); one
# or more of them, as a table's aligned columns are split (before 2026-12-05 one only: 84 of 543 cuts with two spaces)
# (a number: its characters as the detectors read them, `_NUMERALS`, in any script's digits: before 2026-12-06, helper
# joins3, ASCII's alone; and in characters NFKC reads as digits, `⁵⁵⁵ ¹²³ ⁴⁵⁶⁷`, `①`: before, the review of helper
# joins3's change, not, and such phones and a card were none fed beside a second output, streamed at 313 of 1,593 cuts)
_NUMERALS: Final = "".join(chr(code) for code, read in {**_DECIMALS, **_NUMBER_FORMS}.items() if "0" <= read <= "9")
# (a time's hour, `_a_digit_before`: also a character NFKC makes two digits of, `⑫`, which the fold reads as them and
# `mask` reads in the text's own form)
_NUMERAL_SET: Final = frozenset(_NUMERALS) | frozenset(
    chr(code) for code, read in _NUMBERS_NFKC.items() if read.isdigit()
)
_UNENDED: Final = re.compile(
    rf"\S*(?:[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+[0-9().+/:{re.escape(_NUMERALS)}-]+(?=\s|\Z))*"
)


# the number a window's last token ends with, read backwards (`_unended`): its characters, as `_UNENDED` reads a number
_NUMBER_ENDING: Final = re.compile(rf"[0-9().+/:{re.escape(_NUMERALS)}-]*")


# a number, then spaces or tabs up to a window's end where `_unended` holds back a number after them: the run of numbers
# goes on on its line (`_Text.runs_on`). Not past a newline: a card written digit by digit before a matrix's first row,
# its run ended, is read where it ends
_NUMBER_FIRST: Final = frozenset("0123456789().+/:-" + _NUMERALS)
# a digit, one space or dash, a digit: where a stream scanner's tail starts in a run of numbers `_CARD` reads on through
_CUT_IN_A_RUN: Final = re.compile(r"[0-9][ -][0-9]")
_RUNS_ON: Final = re.compile(rf"[0-9().+/:{re.escape(_NUMERALS)}-][ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+\Z")


class StreamScanner:
    """Scans texts that arrive in pieces, each read with the tail of what was read before, so a value split
    across two chunks is still found. Short pieces wait until `BATCH` characters of them do (or a text is
    cut, or what was found is asked for) and are read together: the tail is read again once a batch or a
    piece at least as long as it, never once a short piece (a stream of one-character pieces read it 128
    times over), and cost stays linear. Texts fed one after the other (`end_text`) are read as a request's
    texts are: a newline between them."""

    OVERLAP = _OVERLAP
    BATCH = 4096

    def __init__(self, detectors: Detectors) -> None:
        self._detectors = detectors
        self._tail = ""
        self._scanned = 0  # characters fed (the scan limit counts them)
        self._waiting: list[str] = []  # short pieces not read yet
        self._waiting_size = 0
        self._found: set[str] = set()
        self._before = ""  # the character before the tail as the detectors read it, "" at the text's start
        self._unaligned = 0  # the readings as phones the run the tail was cut in is none of, whole (`_run_unaligned`)
        # whether the end of what was read, with a custom pattern, was read as not the end (`_Text.more`): read again
        # as the end, if asked for so, or as the text's (`found`, `end_text`); a `_PatternStreamScanner`'s windows read
        # no custom pattern (its tail read alone again, a local part cut at its start was an address)
        self._open = False
        self._reopens = detectors.patterns
        # whether the tail holds `@`, read as not the end: read again as the end for `email` alone (`_unfinished`)
        self._mail_open = False
        # how many of a window's last characters the next reads again, with a custom pattern (`_Text.more`)
        self._again = self.OVERLAP
        self._cards = detectors._reads_cards
        self._in_run = False  # the tail starts inside a run of numbers it was cut in (`_Text.in_run`)
        # what `found` answered mid-text, what waits read as the end, and how much was fed then (-1: not asked since a
        # cut); what was to be read, kept to be read again with what is fed next (`_keep`); how much was fed when a
        # text ended (`end_text`: `found` then reads what waits as the end it is, as `cut` does)
        self._ending: set[str] = set()
        self._asked = -1
        self._ended = -1
        self._kept: tuple[str, list[str], int, str, int, bool, bool, bool] = ("", [], 0, "", 0, False, False, False)

    @property
    def found(self) -> set[str]:
        """The labels of everything fed so far, what waits read as the end. A label that end alone gives, a value cut
        there (`555-123-4567` then `8`), is this answer's alone: what is fed after is read with that end again, not
        after it, so the labels once the stream ends are the text's read whole however often they were asked for
        before (until 2026-12-07, helper det19, they were kept: asked at a cut in `5551234567890123`, a phone the text
        whole lacks). Asked before each of many short pieces, what waits is read each time (at most `BATCH` and the
        tail): the proxy asks once, at the reply's end, after `end_text`."""
        if self._ended == self._scanned:  # (nothing fed since a text's end: read as the end it is)
            self._settle()
            return self._found
        if self._asked != self._scanned:
            found = self._found
            self._found = set(found)
            self._keep()
            self._settle()
            self._ending = self._found
            self._found = found
            self._back()
            self._asked = self._scanned
        return self._ending

    def _keep(self) -> None:
        """Keeps what a reading of what waits as the end changes (`found`), to be put back after it (`_back`)."""
        self._kept = (
            self._tail,
            list(self._waiting),
            self._waiting_size,
            self._before,
            self._unaligned,
            self._open,
            self._mail_open,
            self._in_run,
        )

    def _back(self) -> None:
        (
            self._tail,
            self._waiting,
            self._waiting_size,
            self._before,
            self._unaligned,
            self._open,
            self._mail_open,
            self._in_run,
        ) = self._kept
        self._kept = ("", [], 0, "", 0, False, False, False)

    def _settle(self) -> None:
        """Reads what waits, as the end of what was fed (`found`)."""
        if self._waiting:
            self._read(hold=False)
        elif self._open or self._mail_open:
            self._reread("")

    def _reread(self, ending: str) -> None:
        """Reads the tail again, `ending` after it, as the end, for the custom patterns alone (`_open`): a match they
        found at the end of a window read as not the end. (Read alone again, the tail read for every detector found
        what it holds cut at its start: a local part the text holds longer, an address.)"""
        custom, self._open = self._open, False
        mail, self._mail_open = self._mail_open, False
        long = self._detectors._long
        window = self._tail + ending
        if custom and long is not None and window:
            self._found |= long.scan(window, _fold_limit(len(window), long.max_chars), "", self._before)
        mail_detectors = self._detectors._mail
        if mail and mail_detectors is not None and window:
            self._found |= mail_detectors.scan(
                window, _fold_limit(len(window), mail_detectors.max_chars), "", self._before
            )

    def feed(self, piece: str) -> None:
        if not piece:
            return
        remaining = self._detectors.max_chars - self._scanned
        if remaining <= 0:
            self._found.add(TRUNCATED)
            self._asked = -1
            return
        if len(piece) > remaining:  # the rest is past the limit: unread
            piece = piece[:remaining]
            self._found.add(TRUNCATED)
        self._scanned += len(piece)
        if self._waiting or len(piece) < self.OVERLAP:
            self._wait(piece)
            return
        self._read_window(self._tail + piece)  # read at once: the tail read again is no longer than the piece

    def _wait(self, piece: str) -> None:
        self._waiting.append(piece)
        self._waiting_size += len(piece)
        if self._waiting_size >= self.BATCH:
            self._read()

    def _read(self, hold: bool = True) -> None:
        window = self._tail + "".join(self._waiting)
        self._waiting = []
        self._waiting_size = 0
        self._read_window(window, hold)

    def _read_window(self, window: str, hold: bool = True) -> None:
        """Reads `window` but its end that may be a value cut there (`_unended`), which waits for the next piece or the
        text's end, and keeps the end of what it read as the detectors read it for the next. A window of ASCII without
        escapes (most) is found so once, not again by `scan` and `_read_end` (`scan_unfolded`), and its end is kept as
        it stands unless it holds a control character (`_read_end` of a plain window cost ~5 times the slice)."""
        reread = self._tail  # (what `window` starts with)
        held = _unended(window) if hold else len(window)
        runs_on = (
            held < len(window)
            and window[held] in _NUMBER_FIRST
            and _RUNS_ON.search(window, max(0, held - _OVERLAP), held) is not None
        )
        if held < len(window):
            self._waiting = [window[held:]]
            self._waiting_size = len(window) - held
            window = window[:held]
        self._open = hold and self._reopens
        if window.isascii() and not _escapes(window):
            self._found |= self._detectors.scan_unfolded(
                window, reread, self._before, self._again if hold else 0, runs_on, self._unaligned, self._in_run
            )
            end = window[-2 * self.OVERLAP :]
            if not _controls(end.encode("ascii")):
                tail = _tail_at_a_gap(end, window, self._before)  # (the run held from its start, if near)
                self._in_run = self._cards and _CUT_IN_A_RUN.match(window, len(window) - len(tail) - 2) is not None
                self._tail = tail
                self._unaligned = (
                    _run_unaligned(window, tail, self._before, self._unaligned) if "0" <= tail[:1] <= "9" else 0
                )
                self._before = _before_tail(window, end, self._tail, 2 * self.OVERLAP, self._before)
                self._mail_open = hold and "@" in self._tail and self._detectors._mail is not None
                return
        else:
            # (all of it, however long it reads: the scan limit counts characters as they are fed. Read with a limit of
            # its length, a window holding U+FDFA was `scan:truncated` before 2026-12-05)
            more = self._again if hold else 0
            limit = _fold_limit(len(window), self._detectors.max_chars)
            if _MOST_FOLDED * len(window) > limit:  # (longer than `_FOLD_WHOLE`: it may fold past the limit)
                self._read_parts(window[len(reread) :], hold)
                return
            self._found |= self._detectors.scan(
                window, limit, reread, self._before, more, runs_on, self._unaligned, self._in_run
            )
        end = _read_end(window, 2 * self.OVERLAP)
        self._tail = _tail_at_a_gap(end, window, self._before, True)
        self._in_run = False
        if "0" <= self._tail[:1] <= "9":  # (the window as the detectors read it, all of it)
            reading, whole = _reading(window, len(window), True)
            read, tail = reading if whole is None else whole, self._tail
            cut_at = len(read) - len(tail) - 2
            self._in_run = self._cards and read.endswith(tail) and _CUT_IN_A_RUN.match(read, cut_at) is not None
            self._unaligned = _run_unaligned(read, tail, self._before, self._unaligned)
        else:
            self._unaligned = 0
        if len(self._tail) > len(end):  # (a run held from its start, as the detectors read the window)
            longer = _read_end(window, len(self._tail) + 1)
            self._before = longer[0] if len(longer) > len(self._tail) else self._before
        else:
            self._before = _before_tail(window, end, self._tail, 2 * self.OVERLAP, self._before)
        self._mail_open = hold and "@" in self._tail and self._detectors._mail is not None

    def _read_parts(self, new: str, hold: bool) -> None:
        """Reads a window's `new` characters after its tail, with the end it held back, as if fed in pieces of
        `_FOLD_PART` characters: each window then folds whole within `_FOLD_WHOLE` (`_fold_limit`), and the text is read
        all of it, as the limit counts characters as they come, however many NFKC makes of them. Read at once, a
        window folding past the limit was cut there, `scan:truncated`, its end unread, where the same text fed in
        shorter pieces was read whole, until 2026-12-05 (helper detectors)."""
        held = self._waiting
        self._waiting = []
        self._waiting_size = 0
        for at in range(0, len(new), _FOLD_PART):
            if self._waiting:  # (the end the window before held back)
                self._wait(new[at : at + _FOLD_PART])
            else:
                self._read_window(self._tail + new[at : at + _FOLD_PART])
        for piece in held:
            self._wait(piece)
        # (read as the end, as `_settle` reads it; a custom pattern's reading not, `_PatternStreamScanner`)
        if not hold:
            StreamScanner._settle(self)

    def end_text(self) -> None:
        """What was fed is a whole text (an output): its end reads as an end, not run on into the next (a
        newline between, unless it ends in one)."""
        self._ended = self._scanned
        if self._waiting:
            if not self._waiting[-1].endswith("\n"):
                self._waiting.append("\n")
        else:
            ending = "" if not self._tail or self._tail.endswith("\n") else "\n"
            if self._open or self._mail_open:  # (its end read again as the end, with the newline)
                self._reread(ending)
            self._tail += ending

    def cut(self) -> None:
        """What is fed next is a text of its own, not read run together with what came before."""
        self._asked = -1
        if self._waiting:
            self._read(hold=False)
        elif self._open or self._mail_open:
            self._reread("")
        self._tail = ""
        self._before = ""
        self._unaligned = 0
        self._in_run = False


# the most characters, as the detectors read them, of a value of a custom pattern that a streamed reply's record finds
# wherever its pieces were cut, as in the reply read whole (`_PatternStreamScanner`)
STREAM_VALUE_MAX: Final = WINDOW_WIDEST
# how much further back the tail it reads again with the next batch starts, at most, so as to start after white space
_LONG_GAP: Final = 256


class _PatternStreamScanner(StreamScanner):
    """A stream scanner of detectors with a custom pattern, whose value may be longer than the overlap a stream is
    read with (a PEM key: 26 lines, 1,700 characters): those patterns alone (`long`) are read again in windows of their
    own, a batch of at least `STREAM_VALUE_MAX` new characters after the last `STREAM_VALUE_MAX` read before (as the
    detectors read them, from the white space up to `_LONG_GAP` before them), so a value of theirs up to that long is
    found however the reply was cut. Before 2026-12-05 a PEM key streamed in pieces that a batch's end (4,096
    characters) cut was not found, where the same reply read whole was. The stream scanner's own windows read the
    built-in detectors alone (`detectors`, `Detectors._builtin`): until 2026-12-05 they read the custom patterns too,
    twice the work, and found one where these windows, as the reply read whole, stopped at the limit."""

    def __init__(self, detectors: Detectors, long: Detectors) -> None:
        super().__init__(detectors)
        self._long = long
        self._long_tail = ""
        self._long_waiting: list[str] = []  # pieces not read yet for the custom patterns
        self._long_size = 0
        self._long_before = ""  # (as `_before`, `_open` are for the stream scanner's tail)
        self._long_open = False
        self._long_kept: tuple[str, list[str], int, str, bool] = ("", [], 0, "", False)  # (as `_kept`)

    def _keep(self) -> None:
        super()._keep()
        self._long_kept = (
            self._long_tail,
            list(self._long_waiting),
            self._long_size,
            self._long_before,
            self._long_open,
        )

    def _back(self) -> None:
        super()._back()
        self._long_tail, self._long_waiting, self._long_size, self._long_before, self._long_open = self._long_kept
        self._long_kept = ("", [], 0, "", False)

    def feed(self, piece: str) -> None:
        scanned = self._scanned
        super().feed(piece)
        taken = self._scanned - scanned  # (what the scan limit lets be read of it)
        # (in parts, as `StreamScanner._read_parts` reads it: one NFKC may make longer, escapes too, `\\ufdfa`)
        if taken > _FOLD_PART and (not piece.isascii() or _escapes(piece)):
            for at in range(0, taken, _FOLD_PART):
                self._long_add(piece[at : min(at + _FOLD_PART, taken)])
        elif taken > 0:
            self._long_add(piece if taken == len(piece) else piece[:taken])

    def _long_add(self, piece: str) -> None:
        self._long_waiting.append(piece)
        self._long_size += len(piece)
        if self._long_size >= STREAM_VALUE_MAX:
            self._long_read(True)

    def _long_read(self, hold: bool) -> None:
        """Reads the tail and what waits for the custom patterns, but for the end that may be a value cut there
        (`_unended`, as `_read_window` holds it), and keeps the end of what it read for the next."""
        window = self._long_tail + "".join(self._long_waiting)
        self._long_waiting = []
        self._long_size = 0
        held = _unended(window) if hold else len(window)
        if held < len(window):
            self._long_waiting = [window[held:]]
            self._long_size = len(window) - held
            window = window[:held]
        # (read as `_read_window` reads its window: all of it, as the detectors read it)
        more = STREAM_VALUE_MAX if hold else 0  # (the tail holds the last `STREAM_VALUE_MAX`: `_long_tail`)
        limit = _fold_limit(len(window), self._long.max_chars)
        self._found |= self._long.scan(window, limit, "", self._long_before, more)
        self._long_open = hold
        end = _read_end(window, STREAM_VALUE_MAX + _LONG_GAP)
        self._long_tail = _long_tail(end)
        self._long_before = _before_tail(window, end, self._long_tail, STREAM_VALUE_MAX + _LONG_GAP, self._long_before)

    def _settle(self) -> None:
        super()._settle()
        if self._long_waiting or self._long_open:
            self._long_read(False)

    def end_text(self) -> None:
        """The newline after the text is read for the custom patterns with its end, which a window read as not the
        end (`_long_open`) is read again as, as `scan_output` reads a text with a custom pattern (before 2026-12-05
        only when the stream scanner read it then: `SECRET \\Z` was found in a text ending `SECRET ` fed whole, not in
        short pieces)."""
        super().end_text()
        ended = self._long_waiting[-1] if self._long_waiting else self._long_tail
        if ended and not ended.endswith("\n"):
            self._long_waiting.append("\n")
            self._long_size += 1

    def cut(self) -> None:
        super().cut()
        if self._long_waiting or self._long_open:
            self._long_read(False)
        self._long_tail = ""
        self._long_before = ""


def _before_tail(window: str, end: str, tail: str, chars: int, before: str) -> str:
    """The character before `tail`, the end of `end` (the last `chars` characters of `window` as the detectors read
    them): `before` (the one before `window`) when the tail is all of the window."""
    if len(tail) < len(end):
        return end[len(end) - len(tail) - 1]
    if len(end) < chars:
        return before
    if len(tail) > len(end):  # (a run of numbers held from its start, `_held_run`: `window` as it stands)
        return window[-len(tail) - 1] if len(tail) < len(window) else before
    longer = _read_end(window, chars + 1)
    return longer[0] if len(longer) > chars else before


def _long_tail(end: str) -> str:
    """The tail a `_PatternStreamScanner` reads again of `end` (the last `STREAM_VALUE_MAX` + `_LONG_GAP` characters
    of what it read, as the detectors read them): its last `STREAM_VALUE_MAX` characters from just after the white
    space nearest before them, or all of it when there is none."""
    cut = len(end) - STREAM_VALUE_MAX
    if cut <= 0:
        return end
    gap = max(end.rfind(" ", 0, cut), end.rfind("\n", 0, cut), end.rfind("\t", 0, cut))
    return end[gap + 1 :] if gap >= 0 else end
