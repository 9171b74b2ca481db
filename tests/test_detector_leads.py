"""The checks `Detectors.scan` makes before calling the phone and IBAN finders (`_LEADS_IN`: nine digits and phone
separators in a row; two letters before two digits) rule out only texts the finders find nothing in, at their
edges too: a phone of exactly nine digits between characters that are no phone's, an IBAN whose letters are the
text's first characters. Differential, against the finders searching everything (`tests/test_detector_prechecks`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_detector_prechecks import BUILTIN, WITH_KEYS, searching_everything

REFERENCES = [(found_by, searching_everything(found_by)) for found_by in (BUILTIN, WITH_KEYS)]

# runs of digits near a phone's fewest (nine), with a phone's separators in them; IBANs
_DIGIT_RUNS = st.builds(
    lambda digits, seps: "".join(digit + (seps[i] if i < len(seps) else "") for i, digit in enumerate(digits)),
    st.text(alphabet="0123456789", min_size=7, max_size=16),
    st.lists(st.sampled_from(["", "", "", " ", "-", ".", "(", ")"]), max_size=16),
) | st.sampled_from(["NO9386011117947", "GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00"])  # and IBANs
# what may stand around them: characters no phone holds (a comma, a slash), a phone's own, letters (an IBAN's)
_EDGES = st.sampled_from(["", ",", ";", "/", "#", "+", " ", "(", "x", "GB", "de", "GB82 ", "1", "."])


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(_EDGES, _DIGIT_RUNS, _EDGES), min_size=1, max_size=4))
def test_the_checks_before_the_phone_and_iban_finders_skip_only_what_they_find_nothing_in(
    parts: list[tuple[str, str, str]],
) -> None:
    text = "".join(before + run + after for before, run, after in parts)
    for found_by, reference in REFERENCES:
        assert found_by.scan(text) == reference.scan(text), text


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("123456789", {"pii:phone"}),  # nine digits: a run of nine, no more
        (",123456789,", {"pii:phone"}),
        ("+123456789", {"pii:phone"}),
        ("call 12345678 now", set()),  # eight: too few
        ("GB82WEST12345698765432", {"pii:iban"}),  # its letters the text's first characters
        ("NO9386011117947", {"pii:iban"}),  # and the only letters before digits in it
        # (found with the full stop after it: before 2026-12-04 the stop hid it; its account number was a phone too
        # until 2026-12-04, `_in_iban`)
        ("pay GB82 WEST 1234 5698 7654 32.", {"pii:iban"}),
        ("built from 1887 to 1889, opened in 1889", set()),
    ],
)
def test_values_at_the_edges_of_the_checks_are_found(text: str, labels: set[str]) -> None:
    for found_by, reference in REFERENCES:
        assert found_by.scan(text) == reference.scan(text) == labels


def test_the_checks_search_their_needles_as_text() -> None:
    """Each check's needle is text, searched in its stretch decoded (str's `find`): a bytes needle searched with
    `in` over bytes is first read as an int, and the TypeError that fails is formatted and dropped before the
    search, a string made and about 1,450 instructions a check compiled (callgrind, the benchmark's reply: two
    checks a reply)."""
    from proxy.detectors import _LEADS_IN

    assert _LEADS_IN and all(type(needle) is str and needle.isascii() for _, needle, _ in _LEADS_IN.values())
