"""A card in groups inside a run of numbers longer than it: none, wherever it lies, read whole, streamed in any cuts,
or fed whole beside a second output (helper detectors, 2026-12-05). Before, the run was read 19 digits at a time from
its start (`_CARD`'s candidates), and a card was found where such a candidate happened to start at it, or take it in
as its last groups: after `x` and n phones alike when n % 19 == 6, among single digits at 2 places in 19; a stream
scanner read its windows' runs otherwise, and found cards and phones the text read whole holds not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import protocols
from proxy.flow import Outcome
from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ
from tests.test_stream_window_edges_read_as_whole import _streamed

_CARD = "4111 1111 1111 1111"
_PHONE = "555 123 4567 "


@pytest.mark.parametrize(
    ("first", "unit", "found"),
    [
        ("x", _PHONE, set()),  # (phones a letter is joined to are none, and so is a card after them)
        ("\uff21", _PHONE, set()),
        ("1 ", _PHONE, set()),  # (begun by no phone of a layout: no phones alike)
        ("see ", "1 ", set()),
        ("see ", "7 2 ", set()),
        ("abc12 ", "12 ", set()),
        ("", "1234 ", set()),  # (groups of four: a table's row)
        ("see ", "555 1234 5678 ", set()),
        ("", _PHONE, {"pii:phone", "pii:credit_card"}),  # (after phones alike, found: `_phone_before_card`)
        ("see ", "020 7946 0958 ", {"pii:phone", "pii:credit_card"}),
    ],
)
def test_a_card_ending_a_long_run_is_found_or_not_however_many_numbers_are_before_it(
    first: str, unit: str, found: set[str]
) -> None:
    # before: the card at one count in 19 (`x` and 120 phones, `see ` and 19 single digits, `1234 ` x 19: a candidate
    # started at it), none at the others
    for count in range(20, 39):
        assert ALL.scan(first + unit * count + _CARD + "\n") == found, count


@pytest.mark.parametrize("unit", ["1 ", "7 2 ", "12 ", "1234 ", _PHONE])
def test_a_card_inside_a_long_run_is_none_wherever_it_lies(unit: str) -> None:
    # before: `see ` + `1 ` x n + the card + `1 ` x 20 was the card at n = 3, 22, 41, … (its candidates' last groups)
    for count in range(20, 39):
        assert "pii:credit_card" not in ALL.scan("see " + unit * count + _CARD + " " + unit * 20 + "\n"), count


@pytest.mark.parametrize(
    "text",
    [
        # before: window one, `The numbers: ` and eight groups of four up to the cut's held numbers, read its run as
        # ending there, two cards side by side, and found the first; the run goes on, none whole (~1 cut in 10,000 of
        # rows of random groups of four)
        "The numbers: 4111 1111 1111 1111 5500 0000 0000 0004 " + "1234 " * 40 + "ok",
        # (a card dictated, its expiry, at such a window's end: read as the run's end, the card; more numbers go on)
        "see 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 12 27 " + "3 " * 80 + "ok",
        # (a card first in a run, the window's last candidate cut short at its end: a card and an expiry's month)
        _CARD + " " + "12 " * 500,
    ],
)
def test_a_run_going_on_past_a_stream_window_is_not_read_as_ending_there(text: str) -> None:
    assert ALL.scan_output(text) == frozenset()
    assert _streamed_differ(ALL, text) == []


# runs of numbers split by single spaces, long enough that a stream scanner's tail is cut in them (past 1,280
# characters from their start, `_held_run`), a card in groups somewhere in them, and what joins them before
_UNITS = st.sampled_from(("1 ", "7 2 ", "12 ", "1234 ", "31 415 ", _PHONE, "020 7946 0958 ", "555 1234 5678 "))
_FIRSTS = st.sampled_from(("", "see ", "x", "ab", "\uff21", "1 ", "abc12 ", "\u00e9 ", "ok\n", "12345 "))
_CARDS = st.sampled_from((_CARD, "5500 0000 0000 0004", "3782 822463 10005", "4111111111111111", "4111-1111-1111-1111"))
_LASTS = st.sampled_from(("", " ok", "\n", " 1 2 3", " 1234 5678"))


@st.composite
def _runs(draw: st.DrawFn) -> str:
    unit = draw(_UNITS)
    count = (1400 + draw(st.integers(0, 200))) // len(unit)
    at = draw(st.integers(0, count))
    return draw(_FIRSTS) + unit * at + draw(_CARDS) + " " + unit * (count - at) + draw(_LASTS)


@settings(max_examples=8, deadline=None)
@given(_runs())
def test_a_card_in_a_long_run_streamed_in_two_pieces_is_read_as_whole_at_every_cut(text: str) -> None:
    # (phones too, since helper detectors of 2026-12-05's forty-fourth sitting: a card among phones alike, or a number
    # first, `12345 555 123 …`, was phones streamed past the run's first 1,280 characters, none whole, and compared
    # here for the card alone)
    assert _streamed_differ(ALL, text) == []


def _outputs(texts: list[str]) -> frozenset[str]:
    """The labels of a whole reply's outputs (`OutputText.add_output`: fed whole to one stream scanner)."""
    outcome = Outcome(0)
    output = protocols.OutputText(outcome, ALL, False)
    for text in texts:
        output.add_output(text)
    output.finish(ALL)
    return outcome.output_detected


@pytest.mark.parametrize("first", ["x", "ab", "\uff21"])
@pytest.mark.parametrize("end", ["", _CARD])
def test_phones_a_letter_is_joined_to_fed_whole_beside_a_second_output_are_none(first: str, end: str) -> None:
    # before: a phone beside `ok` (`OutputText` feeds a stream scanner each output whole: a window cut in the run, read
    # back from its end as phones alike), none alone or read whole
    text = first + _PHONE * 120 + end
    assert _outputs([text, "ok"]) == _outputs([text]) == ALL.scan(text + "\n") == frozenset()


@settings(max_examples=60, deadline=None)
@given(_runs())
def test_a_long_run_fed_whole_beside_a_second_output_is_read_as_alone(text: str) -> None:
    # before: `x` (or a fullwidth `A`) and 120 phones alike, beside `ok`, were a phone, read in a stream's two windows;
    # alone, or read whole, none
    assert _outputs([text, "ok"]) == _outputs([text]) == ALL.scan_output(text)


@pytest.mark.parametrize(
    ("first", "found"),
    [
        ("(", set()),
        ("( ", set()),
        (".", set()),
        ("+", set()),
        ("x+1 ", set()),
        ("x_", set()),
        ("+1 ", {"pii:phone", "pii:credit_card"}),  # (a country's code: phones alike after it, and the card)
        ("_", {"pii:phone", "pii:credit_card"}),  # (Markdown's emphasis: read past)
    ],
)
def test_phones_led_by_a_bracket_a_dot_or_a_plus_are_read_streamed_as_whole(first: str, found: set[str]) -> None:
    # the review's find (helper revdetectors): read whole, `(`, `.`, `+` or `x_` joined to the run's first phone make
    # it none (`_phone`), and the phones alike after it with it; a stream scanner read the run as unsure, back from its
    # end, phones alike, and found phones and the card after them at 8 of 70 cuts (1 in 23), and always fed whole
    # beside a second output
    text = first + _PHONE * 121 + _CARD + " ok"
    assert ALL.scan(text + "\n") == _outputs([text]) == _outputs([text, "ok"]) == found
    assert _streamed_differ(ALL, text) == []


def _read_as_whole_alone_beside_another_and_streamed(text: str, found: set[str]) -> None:
    """`text` found as `found` read whole and fed whole beside a second output, and streamed in two pieces as whole
    wherever `_streamed_differ` cuts it."""
    assert ALL.scan_output(text) == _outputs([text]) == found
    assert _outputs([text, "ok"]) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a card, or other phones, after the run's first phone: no phones alike whole (helper detectors, 2026-12-05)
        ("555 123 4567 " + _CARD + " " + _PHONE * 120, set()),
        ("555 123 4567 " + _CARD + " " + _PHONE * 120 + _CARD, set()),
        ("020 7946 0958 " + _PHONE * 120 + "ok", set()),
        # a number first that with the first phone's groups is a phone of another layout (`12345 555 123`, 5-3-3;
        # `1555 123 4567`, 4-3-4, begun by no UK number's 0), or a card joined by dashes
        ("12345 " + _PHONE * 120 + _CARD, set()),
        ("1" + _PHONE * 121 + "ok", set()),
        ("_1" + "020 7946 0958 " * 121 + _CARD + " ok", set()),
        ("4111-1111-1111-1111 " + _PHONE * 120, {"pii:credit_card"}),
        # joined by a `-` or a bracket to a number before: a row's, no phones; a card after them is read as after any
        ("2024-01-15 " + _PHONE * 120 + "ok", set()),
        ("(12) " + _PHONE * 120 + _CARD, {"pii:credit_card"}),
        ("1-" + "020 7946 0958 " * 120 + _CARD, {"pii:credit_card"}),
        # a UK layout whose first group is of four before a card: no phones, no card (`_phone_before_card`), but
        # phones alike without one
        ("0161 496 0000 " * 121 + _CARD, set()),
        ("0161 496 0000 " * 121 + "ok", {"pii:phone"}),
        ("01632 960123 " * 121 + _CARD, {"pii:phone", "pii:credit_card"}),
        # and a number, or the run, joined to a character no number holds (`#`, `$`, `|`, `é`): read from it as whole
        # (before, the review of helper detectors' change, helper revdetectors: unsure, phones, and the card, streamed
        # at 173-311 cuts, and fed whole beside a second output)
        ("#12 " + _PHONE * 121 + "ok", set()),
        ("see \u00e912 " + _PHONE * 121 + _CARD, set()),
        ("$" + _PHONE * 60 + _CARD + " " + _PHONE * 61 + "ok", set()),
        ("|12 " + "020 7946 0958 " * 121 + _CARD, set()),
        ("ok\n" + _CARD + " " + _PHONE * 121, {"pii:credit_card"}),  # (a line's break before it, as before)
        # a card first, the run begun by no phone of a layout: the card alone, no phones alike, after a time's minutes
        # too (one phone after it is found: `4111 1111 1111 1111 555 123 4567`, `_phone_after_card`)
        ("at 12:30 " + _CARD + " " + _PHONE * 121 + "ok", {"pii:credit_card"}),
        # phones of layouts not alike, each begun as theirs are, before a card: phones and the card, streamed too
        ("020 7946 0958 " + _PHONE * 120 + _CARD, {"pii:phone", "pii:credit_card"}),
    ],
)
def test_a_long_run_its_start_makes_no_phones_streamed_or_beside_a_second_output_is_read_as_whole(
    text: str, found: set[str]
) -> None:
    # before (helper detectors of the forty-fourth sitting; the last sitting's residuals): `_run_unaligned` looked at
    # the run's first phone alone, and a window cut in the run past its first 1,280 characters read it back from its
    # end as phones alike (and phones before the card): phones, and the card, at 24-49 of ~230 two-piece cuts (every
    # 7th), and always fed whole beside a second output, none whole
    _read_as_whole_alone_beside_another_and_streamed(text, found)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a number a `/` or a `:` joins before the run, or a `-` or a `)` no number is before: read from the run's
        # first number as whole, as white space before it is (a UK layout's first group of four: no phones before a
        # card, and no card; a card amid phones alike: no phones)
        ("12/" + "0161 496 0000 " * 121 + _CARD, set()),
        ("a-" + "0161 496 0000 " * 121 + _CARD, set()),
        ("12:" + _PHONE * 60 + _CARD + " " + _PHONE * 61 + "ok", set()),
        ("/" + "020 7946 0958 " * 60 + _CARD + " " + "020 7946 0958 " * 61 + "ok", set()),
        ("a)" + _PHONE * 60 + _CARD + " " + _PHONE * 61 + "ok", set()),
        ("12: " + "0161 496 0000 " * 121 + "ok", {"pii:phone"}),
        # a date's last number first in the run: a row's whole, no phones; a time's minutes: read without them
        # (`test_phones_after_a_times_minutes_are_found_whole_and_streamed`)
        ("12:30 " + _PHONE * 121 + "ok", {"pii:phone"}),
        ("2024/01/15 " + _PHONE * 121 + _CARD, set()),
    ],
)
def test_a_long_run_a_slash_a_colon_or_a_dash_joins_a_number_to_is_read_streamed_as_whole(
    text: str, found: set[str]
) -> None:
    # before (helper joins): `_run_unaligned` read such a run as unsure, and a window cut in it past its first 1,280
    # characters read it back from its end as phones alike (and phones before the card): phones, and the card, at
    # 25-63 of ~230 two-piece cuts (every 7th), and always fed whole beside a second output, none whole
    _read_as_whole_alone_beside_another_and_streamed(text, found)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a number, two spaces or more, then the run: one row whole, read from the number, no phones
        ("12  " + _PHONE * 121 + "ok", set()),
        ("12:30  " + _PHONE * 121 + "ok", set()),
        ("1234   " + _PHONE * 121 + "ok", set()),
        (_PHONE * 2 + " " + _PHONE * 121 + "ok", set()),
        # a card after phones alike from the last two spaces on: read from there, as after white space, the card alone
        ("12  " + _PHONE * 121 + _CARD, {"pii:credit_card"}),
        ("1 " + _PHONE * 11 + " " + _PHONE * 129 + _CARD, {"pii:credit_card"}),
        # a dash after the spaces joined to the run's first number: a row's with the number too (before, the review of
        # helper joins2's change: phones streamed at 1,145 of 1,579 two-piece cuts, none whole)
        ("12  -" + _PHONE * 121 + "ok", set()),
        ("12  - " + _PHONE * 121 + _CARD, {"pii:credit_card"}),
        # no number before the spaces, or a tab among them: the run's own start, phones
        ("see  " + _PHONE * 121 + "ok", {"pii:phone"}),
        ("12\t " + _PHONE * 121 + "ok", {"pii:phone"}),
    ],
)
def test_a_long_run_a_number_and_two_spaces_are_before_is_read_streamed_as_whole(text: str, found: set[str]) -> None:
    # before (helper joins2): a run holding two spaces was read as unsure, and a window cut in it past its first 1,280
    # characters read it back from its end as phones alike; a window holding its start kept it from the spaces, and the
    # next read it as after white space: phones at 1,317 of 1,584 two-piece cuts (every one from the 262nd character
    # on), none whole (the reread of helper joins' change: 40 of 456 texts with two spaces before such a run)
    _read_as_whole_alone_beside_another_and_streamed(text, found)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # more than 8 dashes or spaces after the two spaces, as far as `_PHONE` reaches (24 characters between the
        # number's last digit and the run's first): one row whole, no phones
        ("12  " + "-" * 9 + _PHONE * 121 + "ok", set()),
        ("12  " + " -" * 9 + " " + _PHONE * 121 + _CARD, {"pii:credit_card"}),
        # further: the run read alone, phones
        ("12  " + "-" * 40 + _PHONE * 121 + "ok", {"pii:phone"}),
    ],
)
def test_a_long_run_many_dashes_after_a_number_and_two_spaces_are_before_is_read_streamed_as_whole(
    text: str, found: set[str]
) -> None:
    # before (helper joins3): a tail looked 8 characters past the two spaces for the run's first number, and read from
    # the spaces, the next window read the run as after white space, phones at 92 of 110 two-piece cuts, none whole; a
    # number 40 dashes before was read joined to the run (`_ROW_JOINED`), no phones at 11 cuts past 1,400 characters
    _read_as_whole_alone_beside_another_and_streamed(text, found)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("at 12:30 555 123 4567 555 123 4568 ok", [("555 123 4567", "pii:phone"), ("555 123 4568", "pii:phone")]),
        ("at 12:30 555 123 4567 " + _CARD, [("555 123 4567", "pii:phone"), (_CARD, "pii:credit_card")]),
        ("at 12:30 " + _CARD + " 555 123 4567", [(_CARD, "pii:credit_card"), ("555 123 4567", "pii:phone")]),
        ("at 9:05:30 020 7946 0958 020 7946 0959", [("020 7946 0958", "pii:phone"), ("020 7946 0959", "pii:phone")]),
        # as before: one phone after the minutes; a number between, a row
        ("at 12:30 555 123 4567", [("555 123 4567", "pii:phone")]),
        ("at 12:30 45 555 123 4567 555 123 4568", []),
    ],
)
def test_phones_after_a_times_minutes_are_found_whole_and_streamed(text: str, found: list[tuple[str, str]]) -> None:
    # before (the review of helper joins' change, helper revjoins): the run was read from the time's minutes, `30 555
    # 123 4567 …`, a row's, and phones alike or a card after a phone were none, though one phone alone was found
    raw = text.encode()
    assert [(raw[f.start : f.end].decode(), f.label) for f in ALL.findings(text)] == found
    assert _streamed_differ(ALL, text) == []
    labels = {label for _, label in found}
    long = text.replace("555 123 4567 ", _PHONE * 121).replace("020 7946 0958 ", "020 7946 0958 " * 121)
    assert ALL.scan_output(long) == _outputs([long, "ok"]) == labels
    for sizes in ([97], [500], [1333], [4000, 7]):
        assert _streamed(ALL.stream(), long, sizes) == labels


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a time's hour in digits of another script (fullwidth, Arabic-Indic: read as ASCII's) in a reply holding a `%`
        # or a `&` (what the fold leaves an escape's first character in is kept as it stands, `_read_once`)
        ("100% at \uff11\uff12:30 " + _PHONE * 121 + "ok", {"pii:phone"}),
        ("a&b at \u0661\u0662:30 " + _PHONE * 121 + _CARD, {"pii:phone", "pii:credit_card"}),
        ("100% \u0661\u0662  " + _PHONE * 121 + "ok", set()),  # (and a number so written before two spaces)
        # and two spaces such a reply writes as others NFKC reads as spaces (a no-break space, an ideographic space):
        # before (the review of helper joins2's change), phones fed whole beside a second output, streamed at 83 of 89
        # cuts, none whole
        ("100% 12 \u00a0" + _PHONE * 121 + "ok", set()),
        ("a&b 12\u3000 " + _PHONE * 121 + _CARD, {"pii:credit_card"}),
        # a time's colon so written (fullwidth): before (the review of helper joins2's change), no phones fed whole
        # beside a second output, nor streamed at the cuts from the 1,411th character on, found whole
        ("100% at 12\uff1a30 " + _PHONE * 121 + "ok", {"pii:phone"}),
    ],
)
def test_a_long_run_after_a_time_in_other_digits_is_read_streamed_as_whole(text: str, found: set[str]) -> None:
    # before (helper joins2): the tail's run was read in the window as it stood, its digits not ASCII, so the hour
    # was none and the minutes were the run's first number, a row's: no phones (nor the card) at the cuts past its
    # first 1,280 characters, found whole; the time's minutes were skipped by a copy of `_after_minutes` on the string
    _read_as_whole_alone_beside_another_and_streamed(text, found)


_FULLWIDTH = str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")
_ARABIC_INDIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
_SUPERSCRIPT = str.maketrans("0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")
_SUBSCRIPT = str.maketrans("0123456789", "\u2080\u2081\u2082\u2083\u2084\u2085\u2086\u2087\u2088\u2089")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # phones themselves in digits of another script (read as ASCII's) in a reply holding a `%`, a `&` or a
        # backslash (what the fold leaves an escape's first character in is kept as it stands, `_read_once`)
        ("100% 1 " + _PHONE.translate(_FULLWIDTH) * 121 + "ok", set()),
        ("100% 1 " + _PHONE.translate(_ARABIC_INDIC) * 121 + "ok", set()),
        ("100% at 12:30 " + _PHONE.translate(_ARABIC_INDIC) * 121 + "ok", {"pii:phone"}),
        ("a&b x" + _PHONE.translate(_FULLWIDTH) * 121 + _CARD, set()),
        ("a\\b " + "020 7946 0958 ".translate(_ARABIC_INDIC) * 121 + _CARD, {"pii:phone", "pii:credit_card"}),
        # in characters NFKC reads as digits or dashes (superscripts, fullwidth): before (the review of helper joins3's
        # change), phones or none at 408-1,317 cuts, and none fed beside a second output, phones whole
        ("100% 1 " + _PHONE.translate(_SUPERSCRIPT) * 121 + "ok", set()),
        ("100% at 12:30 " + _PHONE.translate(_SUPERSCRIPT) * 121 + "ok", {"pii:phone"}),
        ("a\\b " + "020 7946 0958 ".translate(_SUBSCRIPT) * 121 + _CARD, {"pii:phone", "pii:credit_card"}),
        ("100% 12  " + "\uff0d" * 9 + _PHONE * 121 + "ok", set()),
    ],
)
def test_a_long_run_of_phones_in_other_digits_in_a_reply_holding_a_percent_sign_is_read_streamed_as_whole(
    text: str, found: set[str]
) -> None:
    # before (the residual of helper joins2's change): `_read_once` kept such a window's digits as they stood, which
    # the held run (`_held_run`, `_GROUPS_BEFORE`) and the tail's start read as none: read from the cut, phones (or
    # none) at 14 cuts past the run's first 1,280 characters, and fed whole beside a second output, none (or phones)
    # whole
    _read_as_whole_alone_beside_another_and_streamed(text, found)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # numbers in digits of another script at a window's end, in any reply (`_unended` holds them back)
        ("12  " + _PHONE.translate(_FULLWIDTH) * 30 + _CARD.translate(_FULLWIDTH), {"pii:credit_card"}),
        ("\u00e9 " + _PHONE * 121 + _CARD.translate(_ARABIC_INDIC), {"pii:phone", "pii:credit_card"}),
        ("\u00e9 " + (_PHONE * 121 + _CARD).translate(_FULLWIDTH), {"pii:phone", "pii:credit_card"}),
        # in characters NFKC reads as digits, no script's digits (superscripts, subscripts): before (the review of
        # helper joins3's change), none fed beside a second output, and streamed at 313 of 1,593 cuts
        ("\u00e9 " + (_PHONE * 121 + _CARD).translate(_SUPERSCRIPT), {"pii:phone", "pii:credit_card"}),
        ("\u00e9 " + (_PHONE * 121 + _CARD).translate(_SUBSCRIPT), {"pii:phone", "pii:credit_card"}),
    ],
)
def test_numbers_in_other_digits_ending_a_stream_window_are_held_back_as_ascii_ones(text: str, found: set[str]) -> None:
    # before (helper joins3): `_unended` and `_RUNS_ON` read ASCII digits alone, so a window cut in such a run read it
    # to the cut as its end: the card missed at 4 cuts in its last group, or phones and the card at 313 of 1,593 cuts,
    # none whole
    _read_as_whole_alone_beside_another_and_streamed(text, found)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a number first that with the first phones' groups makes phones of layouts not alike from the run's start
        # (`212 020 7946`, 3-3-4, then `0958 020 7946`, 4-3-4, ...), read back from its end another way (3-3-4s, `212`
        # left over): no phones before the card whole, nor the card
        ("see 212 " + "020 7946 0958 " * 121 + _CARD, set()),
        ("see \u00b212 " + "020 7946 0958 " * 121 + _CARD, set()),
        ("555 " + "020 7946 0958 " * 121 + _CARD, set()),
        # phones of layouts not alike that are so both ways: phones and the card, streamed too
        (_PHONE + "020 7946 0958 " * 121 + _CARD, {"pii:phone", "pii:credit_card"}),
    ],
)
def test_phones_written_from_a_long_runs_start_are_read_so_streamed_as_whole(text: str, found: set[str]) -> None:
    # before (helper joins): a window cut in the run past its first 1,280 characters read it back from its end to any
    # phone's later groups (`_layout_cut`), the window before having read it from its start as phones written another
    # way: phones and the card at 45 of 75 two-piece cuts (every 7th), none whole
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []
    long = text.replace("020 7946 0958 " * 121, "020 7946 0958 " * 700)  # (cut in several windows)
    assert ALL.scan_output(long) == found
    for sizes in ([97], [500], [1333], [4000, 7]):
        assert _streamed(ALL.stream(), long, sizes) == found
