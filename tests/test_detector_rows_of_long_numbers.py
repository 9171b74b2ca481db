"""Rows of command output whose numbers of ten digits or more (sizes in bytes, Unix times) stand among others, as a
coding agent's tool results hold them: since the detector change of 2026-12-04 that read two bare phones side by side
(`13800138000 13800138000`), each such number in a row was a `pii:phone` (216 phones in 15 outputs of `stat`, `free`,
`df`, `ls`, `/proc` became 1,164), where a row of numbers was none before. A bare number is read as a phone alone only
in a list of phones now, every number of the run one (`_listed`). And a phone in international form before a bare
phone (`+44 20 7946 0958 13800138000`), as README says, is found: only one before a phone written with dashes was."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

import proxy.detectors as detectors
from proxy.config import DetectorSpec
from proxy.detectors import Detectors

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


@pytest.mark.parametrize(
    "row",
    [
        "28 1796420988 1676635049 1676635049 /usr/bin/FileCheck-14",  # stat -c '%s %X %Y %Z %n'
        "Mem:     25276194816  2872406016 19924230144    10465280  2805178368 22403788800",  # free -b
        "Mem: 25276194816 2872406016 19924230144 10465280 2805178368 22403788800",
        "/dev/vda 270553174016 26314276864 82630017024 25% /",  # df -B1
        "lo: 2692968027 126340 0 0 0 0 0 0 2692968027 126340 0 0 0 0 0 0",  # /proc/net/dev
        "0 0 17 1 0 0 0 0 0 94361918590000 94361918591616 94362503794688 140734967159510 140734967159530",  # /proc/self/stat
    ],
)
def test_a_row_of_command_output_holds_no_phone(row: str) -> None:
    text = f"the tool printed:\n{row}\nthat is all"
    assert "pii:phone" not in ALL.scan(text)
    assert "[pii:phone]" not in ALL.mask(text)  # (a Luhn-valid address in /proc/self/stat is a card, as before)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+44 20 7946 0958 13800138000", "[pii:phone] [pii:phone]"),  # before: the second alone
        ("call +44 20 7946 0958 07911123456 today", "call [pii:phone] [pii:phone] today"),
        ("13800138000 13800138000", "[pii:phone] [pii:phone]"),  # a list of phones, as before
        ("电话 13800138000 13912345678 谢谢", "电话 [pii:phone] [pii:phone] 谢谢"),
        ("+86 13812345678 13800138000", "+86 [pii:phone] [pii:phone]"),
        ("13800138000 (555) 123-4567", "[pii:phone] [pii:phone]"),
        ("28 1796420988 555-123-4567", "28 1796420988 [pii:phone]"),  # a written one among a row's
    ],
)
def test_phones_listed_side_by_side_are_each_found(text: str, masked: str) -> None:
    assert ALL.scan(text) == set(re.findall(r"\[(pii:\w+)\]", masked))
    assert ALL.mask(text) == masked


_PAD = "the model wrote this reply for you, which is long enough to be read at once, so here: " * 2


@pytest.mark.parametrize(
    "body",
    [
        "28 1796420988 1676635049 1676635049 /usr/bin/FileCheck-14",
        "Mem: 25276194816 2872406016 19924230144 10465280 2805178368 22403788800",
        "+44 20 7946 0958 13800138000",
        "+86 13812345678 13800138000",
    ],
)
def test_a_reply_streamed_finds_what_it_finds_whole_however_cut(body: str) -> None:
    text = _PAD + body + " ok " + _PAD
    whole = ALL.scan_output(text)
    differ = []
    for cut in range(len(_PAD) - 5, len(_PAD) + len(body) + 6):
        scanner = ALL.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        if scanner.found != whole:
            differ.append((text[:cut][-24:], sorted(scanner.found)))
    assert not differ, (sorted(whole), differ)


class _Counted:
    """A compiled pattern that counts the characters it is run over (to where a match or a search stops)."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.read = 0

    def search(self, string: bytes, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        found = self.pattern.search(string, pos, endpos)
        self.read += (found.end() if found is not None else min(endpos, len(string))) - pos
        return found

    def match(self, string: bytes, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        found = self.pattern.match(string, pos, endpos)
        self.read += (found.end() if found is not None else pos) - pos
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pattern, name)


@pytest.mark.interpreted  # (patches the patterns the compiled module reads)
@pytest.mark.parametrize("phone", ["13800138000", "555-123-4567"])
def test_a_long_list_of_phones_is_read_once_not_once_per_phone(monkeypatch: pytest.MonkeyPatch, phone: str) -> None:
    """Each phone of a list found was followed by a search of the rest of its run for a phone's separators (bare
    phones, since 2026-12-04) and a match of the rest of the run (either kind): 8,000 bare phones took 16 s, written
    ones 9 s, interpreted; README says scanning is linear in the text."""
    counted = []
    for name in ("_ROW_ON", "_WRITTEN_AS_A_PHONE", "_WRITTEN_OR_TEN"):
        if hasattr(detectors, name):
            counted.append(_Counted(getattr(detectors, name)))
            monkeypatch.setattr(detectors, name, counted[-1])
    phones = Detectors([DetectorSpec("phone")])
    text = " ".join([phone] * 2000)
    assert len(phones.findings(text)) == 2000
    assert sum(pattern.read for pattern in counted) < 10 * len(text)  # (it was 1,000-2,000 times the text)
