"""Data labels: the grammar every label obeys and the parsing of label lists from the wire.

What a call sends (`x-data-labels`, the OIP parameter `data_labels`, `x-purpose`; `check --explain`'s
`--labels` and `--purpose` alike) is normalised first (`normalize`: `BAD` is `bad`), then held to the
grammar. What a config writes is held to the grammar as written (`is_label`): its labels and purposes
must already be in that form, lower case (`labels: [Secret]` is refused by `check`), and a baseline's
patterns are refused unless lower case, so a policy names each label one way only."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Final

from proxy.errors import InvalidRequest, echoed

MAX_LABELS: Final = 64
# a call's labels with those it builds on (its OIP sequence's earlier requests, the stored reply it goes on from, its
# stream's earlier messages): each request sends 64 at most, and without a bound a client sending new ones on every
# request of a sequence made each call's record hold them all (400 requests: a 3.3 GB lineage store)
MAX_CALL_LABELS: Final = 256
_LABEL_MAX: Final = 128
GRAMMAR: Final = "[a-z0-9][a-z0-9._:/-]{0,127}"  # of labels and purposes, as the errors that refuse one say it
_LABEL: Final = re.compile(GRAMMAR)  # at most _LABEL_MAX characters
# a purpose refused (`x-purpose`, `check --explain --purpose`): what it must be, as normalised (`Customer Support`
# is `customer support`, its space no purpose's)
PURPOSE_GRAMMAR: Final = f": purposes match {GRAMMAR}, once lower-cased"
# characters that render as nothing: a label or purpose spelt with one is the same word to a reader
INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u034f\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")
)


def normalize(text: str) -> str:
    """The one normalisation of purposes and labels, applied before the decision and the record:
    surrounding white space dropped, lower case, invisible characters removed, Unicode compatibility
    forms folded (NFKC: fullwidth and styled letters become ASCII). Look-alikes from other scripts
    (Cyrillic 'а') stay what they are, and then fail the ASCII grammar: refused, never a new label."""
    text = text.strip()
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text.translate(INVISIBLE)).strip().lower()


def is_label(text: str) -> bool:
    return _LABEL.fullmatch(text) is not None


def given_label(given: str) -> str | None:
    """`given` normalised (`normalize`) when that is a label, else None (it is not, or is empty); memoised
    for up to `_KEPT` spellings (of a label's length or about: a few kilobytes at most; emptied when full), as
    the same purposes and labels come on call after call."""
    found = _GIVEN.get(given)
    if found is None:
        label = normalize(given)
        if _LABEL.fullmatch(label) is None:
            return None
        if len(given) <= 2 * _LABEL_MAX:
            if len(_GIVEN) >= _KEPT:  # full (of spellings sent once, maybe): begun again, never turned off
                _GIVEN.clear()
            _GIVEN[given] = label
        found = label
    return found


def parse_labels(raw: str | None, *, source: str = "x-data-labels") -> frozenset[str]:
    """Split a comma-separated label list; a malformed entry is an InvalidRequest naming it."""
    if not raw:
        return frozenset()
    return check_labels(raw.split(","), source=source)


def check_labels(labels: Sequence[object], *, source: str) -> frozenset[str]:
    """Normalise and validate labels from `source`; empty entries are ignored."""
    kept = []
    for given in labels:
        if not isinstance(given, str):
            raise InvalidRequest(f"{source}: every label must be a string, got {echoed(repr(given))}", param=source)
        label = given_label(given)
        if label is None:
            if not normalize(given):
                continue
            raise InvalidRequest(
                f"{source}: invalid label {echoed(given.strip())}: labels match {GRAMMAR}",
                param=source,
            )
        kept.append(label)
    if len(kept) > MAX_LABELS:
        raise InvalidRequest(f"{source}: {len(kept)} labels given, at most {MAX_LABELS} allowed", param=source)
    return frozenset(kept)


class KnownLabels:
    """The labels a call may send (`policy.known_labels`): the config's own (`exact`) and those matching one of
    `patterns` (shell-style, `team-*`). A label outside them is refused with an InvalidRequest naming it: a
    misspelt label (`heath` for `health`) is data no zone holds, and labels new on every call are flows without
    end in the record."""

    def __init__(self, exact: frozenset[str], patterns: tuple[str, ...]) -> None:
        self.exact = exact
        self.patterns = patterns
        self._matched: set[str] = set()  # labels a pattern matched, up to `_KEPT` (emptied when full)

    def check(self, labels: frozenset[str], *, source: str) -> None:
        """Raise InvalidRequest when one of `labels` is not known."""
        for label in labels - self.exact:
            if not self.knows(label):
                # (the labels it knows are not listed: a caller learns no more of the policy than it is told)
                raise InvalidRequest(
                    f"{source}: unknown label {label!r}: this proxy takes only the labels its config names "
                    "(policy.known_labels)",
                    param=source,
                )

    def knows(self, name: str) -> bool:
        """Whether `name` is known: the config's own, or one a pattern matches (remembered, up to `_KEPT`). The
        purposes a call may name (`policy.known_purposes`) are held to one of these too."""
        if name in self.exact or name in self._matched:
            return True
        if not any(fnmatchcase(name, pattern) for pattern in self.patterns):
            return False
        if len(self._matched) >= _KEPT:
            self._matched.clear()
        self._matched.add(name)
        return True


_KEPT: Final = 4096  # label sets (and spellings, `given_label`) remembered: the same few recur on every call
# what a label set's entry may cost, about (its characters and `_LABEL_COST` a label), past which it is not
# remembered: a call may send 64 labels of 128 characters, and 4,096 such sets, each a new one, kept ~90 MB in the two
# tables below; counted in characters alone, 256 labels of two characters (carried by a sequence) kept as much, each
# label ~100 bytes beside its characters
_KEPT_COST: Final = 2048
_LABEL_COST: Final = 100  # a label's set slot and string header in the entry's key, and its slot in the sorted form
_GIVEN: Final[dict[str, str]] = {}
_SORTED: Final[dict[frozenset[str], tuple[str, ...]]] = {}
_FORMATTED: Final[dict[frozenset[str], str]] = {}


def sorted_labels(labels: frozenset[str]) -> tuple[str, ...]:
    """The labels in order, memoised (a set costing up to `_KEPT_COST`: a few labels; up to `_KEPT` sets, emptied
    when full: a caller sending a new set on every call once filled it for good, and no other set was memoised)."""
    found = _SORTED.get(labels)
    if found is None:
        found = tuple(sorted(labels))
        if sum(map(len, found)) + _LABEL_COST * len(found) <= _KEPT_COST:
            if len(_SORTED) >= _KEPT:  # full (of sets sent once, maybe): begun again, as `_GIVEN` is
                _SORTED.clear()
            _SORTED[labels] = found
    return found


# the longest `x-data-labels` a reply carries (`reply_labels`): a call may hold MAX_CALL_LABELS labels of 128 characters
# (33 KB), and a reply's header or metadata that long fails the call at its client after the model answered: a grpc
# channel refuses metadata past 8 KiB at random and past 16 KiB always (RESOURCE_EXHAUSTED), aiohttp a header line past
# 8,190 bytes, Node.js a head past 16 KiB, httpx past 100 KiB. The record keeps every label
REPLY_LABELS_MAX_CHARS: Final = 4096
_CUT_ROOM: Final = 64  # what the marker of the labels left out takes, at most


def reply_labels(labels: frozenset[str]) -> str:
    """The labels as a reply's `x-data-labels` carries them: their wire form (`format_labels`) when it is at most
    REPLY_LABELS_MAX_CHARS long, else the first labels (in order) that fit and a marker naming how many were left
    out, `+N more (cut: the lineage record has them all)`, which is no label (the grammar has no `+` nor spaces):
    a client or a next hop taking the header on as a request's labels is refused (400 naming it), never given a
    part of them as if whole."""
    return _first_labels(labels, REPLY_LABELS_MAX_CHARS, " more (cut: the lineage record has them all)")


def _first_labels(labels: frozenset[str], limit: int, more: str) -> str:
    """`labels`' wire form when at most `limit` characters long, else the first labels (in order) that fit beside
    the marker `,+N<more>` naming how many were left out."""
    formatted = format_labels(labels)
    if len(formatted) <= limit:
        return formatted
    ordered = sorted_labels(labels)
    kept = 0
    size = 0
    for label in ordered:
        size += len(label) + 1
        if size > limit - _CUT_ROOM:
            break
        kept += 1
    return ",".join(ordered[:kept]) + f",+{len(ordered) - kept}{more}"


# what a log line shows of a call's labels (`logged_labels`) and of a sentence naming them (`bounded_text`), at most: a call
# may carry MAX_CALL_LABELS labels of 128 characters, and the unapproved-flow WARNING printed them in full twice (the
# flow's, and the finding's new ones), ~66 KB a line, past what a log pipeline keeps of one (Docker's: 16 KiB)
LOG_LABELS_MAX_CHARS: Final = 1024


def logged_labels(labels: frozenset[str]) -> str:
    """`labels` as a log line shows them: their wire form when at most LOG_LABELS_MAX_CHARS long, else the first (in
    order) that fit and `+N more`; `-` for none. The record keeps every label."""
    return _first_labels(labels, LOG_LABELS_MAX_CHARS, " more") or "-"


def bounded_text(text: str) -> str:
    """A sentence that may name many labels (a baseline finding's) as a log line, a refusal's error body and its stored
    reason show it: whole when at most LOG_LABELS_MAX_CHARS long, else its start, cut after a whole word, and how many
    characters were left out (64 labels of 128 characters made a 403 body of ~8 KB and a stored reason as long, once
    per flow row). Only a reason cut: an edge is keyed by its flow (caller, purpose, labels, checkpoint, output labels,
    decision, rule), never by its reason, so two flows whose reasons differ only past the cut stay two rows."""
    if len(text) <= LOG_LABELS_MAX_CHARS:
        return text
    room = LOG_LABELS_MAX_CHARS - _CUT_ROOM
    cut = max(text.rfind(" ", 0, room), room // 2)
    return f"{text[:cut].rstrip(',')} ... (+{len(text) - cut} characters more)"


def format_labels(labels: frozenset[str]) -> str:
    """The wire form: sorted, comma-separated (stable, so headers and edge keys compare equal); memoised (a set
    costing up to `_KEPT_COST`: a few labels; up to `_KEPT` sets, emptied when full)."""
    found = _FORMATTED.get(labels)
    if found is None:
        found = ",".join(sorted(labels))
        if len(found) + _LABEL_COST * len(labels) <= _KEPT_COST:
            if len(_FORMATTED) >= _KEPT:  # full: begun again, never closed to the sets that come next
                _FORMATTED.clear()
            _FORMATTED[labels] = found
    return found
