"""`verify --baseline` (and `report --baseline`) match a flow only against the entries that could name its caller
and purpose: those naming them as they are, and those with a pattern there. Every flow was matched against every
entry, a pattern match of its caller (and purpose) per entry: a fleet's store of 100,000 flows against the 300 entries
`verify --write-baseline` made of it took 70 s (over a minute in a CI gate, and in `report`), 1 s now. Counted, not
timed: the pattern matches a check costs. The verdict is the one every entry matched in turn gives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy import baseline as baseline_module
from proxy.baseline import Approval, Baseline
from proxy.record.store import EdgeKey, EdgeRow
from proxy.verify import Verdict, check, edge_flow

CALLERS = 300
FLOWS = 1000


@pytest.fixture
def matches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many pattern matches the baseline makes (proxy/baseline.py is not compiled: its global is a seam)."""
    count = [0]
    match = baseline_module.fnmatchcase

    def counted(name: str, pattern: str) -> bool:
        count[0] += 1
        return match(name, pattern)

    monkeypatch.setattr(baseline_module, "fnmatchcase", counted)
    yield count


def _row(caller: str, purpose: str, labels: str = "team-a", decision: str = "allow", rule: str = "") -> EdgeRow:
    return EdgeRow(EdgeKey(caller, purpose, labels, "ckpt@v1", "", decision, rule), 1.0, 2.0, 1, None)


def _brute(rows: list[EdgeRow], baseline: Baseline) -> tuple[list[EdgeRow], list[EdgeRow], list[int]]:
    """The verdict as every entry matched in turn gives it: approved rows, unapproved rows, unused entries."""
    approved, unapproved, used = [], [], set()
    for row in rows:
        hits = {i for i, entry in enumerate(baseline.approvals) if entry.matches(edge_flow(row))}
        (approved if hits else unapproved).append(row)
        used |= hits
    return approved, unapproved, [i for i in range(len(baseline.approvals)) if i not in used]


def _as_lists(verdict: Verdict, baseline: Baseline) -> tuple[list[EdgeRow], list[EdgeRow], list[int]]:
    unseen = [i for i, entry in enumerate(baseline.approvals) if any(entry is u for u in verdict.unseen)]
    return list(verdict.approved), [row for row, _ in verdict.unapproved], unseen


def test_a_flow_is_matched_against_the_entries_naming_its_caller_alone(matches: list[int]) -> None:
    baseline = Baseline(tuple(Approval(f"caller-{n}", "assistant", ("team-*",)) for n in range(CALLERS)))
    rows = [_row(f"caller-{n % CALLERS}", "assistant") for n in range(FLOWS)]
    verdict = check(rows, baseline)
    assert len(verdict.approved) == FLOWS and not verdict.unapproved and not verdict.unseen
    # its entry's patterns (`team-*`, and `*` for any rule and checkpoint): 3 a flow; every entry's caller too was 302,000
    assert matches[0] <= 3 * FLOWS, matches[0]


def test_the_verdict_is_every_entrys(matches: list[int]) -> None:
    """Entries with patterns in the caller or the purpose, names with a set or a `?`, several entries per caller,
    denials: each flow approved, and each entry used, exactly as when every entry is matched in turn."""
    baseline = Baseline((
        Approval("app-1", "assistant", ("team-a",)),
        Approval("app-1", "assistant", ("team-*",), note="a second entry for the same caller"),
        Approval("app-2", "*", ("team-a",)),
        Approval("app-[34]", "assistant", ("team-a",)),
        Approval("app-?", "analytics", ("team-b",)),
        Approval("*", "ads", ("team-a",), decisions=("deny",), rules=("zone:*",)),
        Approval("app-9", "assistant", ("team-a",)),  # used by nothing
        Approval("app-1", "assist*", ("team-c",)),
    ))  # fmt: skip
    rows = [
        _row("app-1", "assistant"), _row("app-1", "assistant", "team-b"), _row("app-1", "assistance", "team-c"),
        _row("app-2", "anything"), _row("app-3", "assistant"), _row("app-5", "assistant"),
        _row("app-5", "analytics", "team-b"), _row("app-7", "ads", "team-a", "deny", "zone:x"),
        _row("app-7", "ads", "team-a", "deny", ""), _row("other", "assistant"), _row("app-1", "", "team-a"),
    ]  # fmt: skip
    verdict = check(rows, baseline)
    assert _as_lists(verdict, baseline) == _brute(rows, baseline)
    assert [row.key.caller for row, _ in verdict.unapproved] == ["app-5", "app-7", "other", "app-1"]
