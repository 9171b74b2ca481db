"""Content detectors: find personal data in request and reply text and name it with `pii:<kind>` labels.

Each detector is a precompiled candidate pattern plus an optional validator (Luhn, IBAN mod-97, address
ranges), so near-misses such as version numbers or invalid card numbers are not labelled. Every pattern
is linear in the text scanned, and at most `limits.scan_max_chars` characters are scanned per call and
direction; a longer text gets the label `scan:truncated` so nobody mistakes "not scanned" for "clean".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from proxy.config import DetectorSpec

TRUNCATED = "scan:truncated"


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: str) -> bool:
    digits = match.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _phone(match: str) -> bool:
    digits = sum(c.isdigit() for c in match)
    return 9 <= digits <= 15


def _ipv4(match: str) -> bool:
    return all(int(part) <= 255 and (part == "0" or not part.startswith("0")) for part in match.split("."))


def _ipv6(match: str) -> bool:
    if match.count(":") < 2 or len(match) < 6:
        return False
    try:
        ipaddress.IPv6Address(match)
    except ValueError:
        return False
    return True


def _iban(match: str) -> bool:
    compact = match.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


@dataclass(frozen=True, slots=True)
class Detector:
    label: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    hint: str | None = None  # a substring every match contains: skip the regex when absent


_BUILTIN: dict[str, list[Detector]] = {
    "email": [
        Detector(
            "pii:email",
            re.compile(
                r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"
            ),
            hint="@",
        )
    ],
    "phone": [
        Detector(
            "pii:phone",
            re.compile(r"(?<![\w+.])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w.])"),
            _phone,
        ),
        Detector("pii:phone", re.compile(r"(?<![\w+])\+\d{9,15}(?!\w)"), _phone, hint="+"),
    ],
    "credit_card": [Detector("pii:credit_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card)],
    "ip_address": [
        Detector("pii:ip_address", re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"), _ipv4, hint="."),
        Detector(
            "pii:ip_address", re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"), _ipv6, ":"
        ),
    ],
    "iban": [Detector("pii:iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), _iban)],
}


class Detectors:
    """The configured set, compiled once. `scan` is the hot-path entry point."""

    __slots__ = ("_detectors", "max_chars")

    def __init__(self, specs: Iterable[DetectorSpec], max_chars: int = 1_000_000) -> None:
        detectors: list[Detector] = []
        for spec in specs:
            if spec.pattern is None:
                detectors.extend(_BUILTIN[spec.name])
            else:
                detectors.append(Detector(f"pii:{spec.name}", re.compile(spec.pattern)))
        self._detectors = tuple(detectors)
        self.max_chars = max_chars

    def __bool__(self) -> bool:
        return bool(self._detectors)

    def scan(self, text: str) -> frozenset[str]:
        """The labels of everything found in `text` (capped at max_chars, see the module doc)."""
        if not self._detectors or not text:
            return frozenset()
        found: set[str] = set()
        if len(text) > self.max_chars:
            text = text[: self.max_chars]
            found.add(TRUNCATED)
        for detector in self._detectors:
            if detector.label in found or (detector.hint is not None and detector.hint not in text):
                continue
            for match in detector.pattern.finditer(text):
                if detector.valid is None or detector.valid(match.group()):
                    found.add(detector.label)
                    break
        return frozenset(found)

    def scan_all(self, texts: Iterable[str]) -> frozenset[str]:
        return self.scan("\n".join(texts)) if self._detectors else frozenset()

    def mask(self, text: str) -> str:
        """`text` with every detected value replaced by `[pii:<kind>]` (for captured content)."""
        for detector in self._detectors:
            if detector.hint is not None and detector.hint not in text:
                continue

            def replace(match: re.Match[str], detector: Detector = detector) -> str:
                value = match.group()
                return f"[{detector.label}]" if detector.valid is None or detector.valid(value) else value

            text = detector.pattern.sub(replace, text)
        return text

    def stream(self) -> StreamScanner:
        return StreamScanner(self)


class StreamScanner:
    """Scans a text that arrives in pieces. Each piece is scanned together with the tail of the
    previous ones, so a value split across two chunks is still found; cost stays linear."""

    __slots__ = ("_detectors", "_scanned", "_tail", "found")
    OVERLAP = 128

    def __init__(self, detectors: Detectors) -> None:
        self._detectors = detectors
        self._tail = ""
        self._scanned = 0
        self.found: set[str] = set()

    def feed(self, piece: str) -> None:
        if not piece or not self._detectors:
            return
        remaining = self._detectors.max_chars - self._scanned
        if remaining <= 0:
            self.found.add(TRUNCATED)
            return
        piece = piece[:remaining]
        self._scanned += len(piece)
        window = self._tail + piece
        self.found |= self._detectors.scan(window)
        self._tail = window[-self.OVERLAP :]
