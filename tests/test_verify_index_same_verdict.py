"""`verify`/`report --baseline` match a flow only against the entries naming its caller and purpose as they are and
the entries with a pattern there (`check`'s index). Any entry form gives the verdict every entry matched in turn
gives: names with glob characters (sets, unclosed `[`, `!`, `?`, `*`, a backslash), any-caller and any-purpose entries,
empty names, label sets and patterns, checkpoint sets, decisions and rules."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.baseline import Approval, Baseline
from proxy.record.store import EdgeKey, EdgeRow
from proxy.verify import check
from tests.test_verify_many_entries import _as_lists, _brute

NAMES = st.text(alphabet="ab*?[]!-\\", max_size=4)
PATTERNS = st.lists(NAMES, max_size=2).map(tuple)
APPROVALS = st.builds(
    Approval,
    NAMES,
    NAMES,
    st.lists(NAMES, max_size=3).map(tuple),
    st.one_of(st.just(("*",)), PATTERNS),
    st.sampled_from([("allow",), ("deny",), ("allow", "deny")]),
    st.one_of(st.just(("*",)), PATTERNS),
)
ROWS = st.builds(
    lambda caller, purpose, labels, checkpoint, decision, rule: EdgeRow(
        EdgeKey(caller, purpose, ",".join(labels), checkpoint, "", decision, rule), 1.0, 2.0, 1, None
    ),
    NAMES,
    NAMES,
    st.lists(st.text(alphabet="ab*[-", min_size=1, max_size=3), max_size=2, unique=True),
    NAMES,
    st.sampled_from(["allow", "deny"]),
    NAMES,
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(APPROVALS, max_size=8), st.lists(ROWS, max_size=8))
def test_the_indexed_verdict_is_every_entrys(approvals: list[Approval], rows: list[EdgeRow]) -> None:
    baseline = Baseline(tuple(approvals))
    assert _as_lists(check(rows, baseline), baseline) == _brute(rows, baseline)
