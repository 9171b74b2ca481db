"""A baseline's label or purpose that a call's would never be recorded as: the proxy normalises what calls send
(white space around dropped, lower case, invisible characters removed, Unicode compatibility forms folded: `labels`
module), so ` pii:email` (quoted with its space), `ｐｉｉ:*` (fullwidth), `pii\\u200b:ssn` (a zero-width space pasted
in) loaded and never matched: every flow it was meant to approve was reported unapproved, and nothing said why.
Each is refused now as a bad baseline (exit 2), its one line naming it and the form to write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.baseline import BaselineError, parse_baseline
from proxy.record.store import EdgeKey, SqliteStore

WRITTEN = [
    ('" pii:email"', "label ' pii:email' never matches", "this one as 'pii:email': write that"),
    ('"pii:email "', "label 'pii:email ' never matches", "this one as 'pii:email': write that"),
    ("ｐｉｉ:*", "label 'ｐｉｉ:*' never matches", "this one as 'pii:*': write that"),
    ("pii\u200b:email", "label 'pii\\u200b:email' never matches", "this one as 'pii:email': write that"),
    ("Pii:Email", "label 'Pii:Email' never matches", "this one as 'pii:email': write that"),
    ("ﬁnance", "label 'ﬁnance' never matches", "this one as 'finance': write that"),  # the ligature fi
    ('"\u2060"', "label '\\u2060' never matches", "this one as nothing: remove it"),
]


@pytest.mark.parametrize(("label", "named", "cure"), WRITTEN, ids=[w[1].split("'")[1] for w in WRITTEN])
def test_a_label_not_in_its_normal_form_is_refused(label: str, named: str, cure: str) -> None:
    with pytest.raises(BaselineError) as refused:
        parse_baseline(f"version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a, {label}]\n",
                       source="b.yaml")  # fmt: skip
    assert len(refused.value.problems) == 1, refused.value.problems
    problem = refused.value.problems[0]
    assert problem.startswith(f"b.yaml:5: flows[0].labels[1]: {named}: a call's labels are recorded normalised"), (
        problem
    )
    assert problem.endswith(cure) and "\n" not in problem, problem


@pytest.mark.parametrize("purpose", ['" assistant"', "ａｓｓｉｓｔａｎｔ", "Assistant", "assis\u00adtant"])
def test_a_purpose_not_in_its_normal_form_is_refused(purpose: str) -> None:
    with pytest.raises(BaselineError) as refused:
        parse_baseline(f"version: 1\nflows:\n  - caller: app\n    purpose: {purpose}\n", source="b.yaml")
    problem = refused.value.problems[0]
    assert problem.startswith("b.yaml:4: flows[0].purpose: purpose ") and "never matches" in problem, problem
    assert problem.endswith("this one as 'assistant': write that"), problem


def test_names_in_their_normal_form_load() -> None:
    baseline = parse_baseline("version: 1\nflows:\n  - {caller: App, purpose: '', labels: [a, 'pii:*', '[ab]x']}\n"
                              "  - {caller: '*', purpose: 'assist*', labels: ['team-?/x.y_z']}\n")  # fmt: skip
    assert [entry.labels for entry in baseline.approvals] == [("a", "pii:*", "[ab]x"), ("team-?/x.y_z",)]


def test_verify_refuses_it_as_a_bad_baseline(tmp_path: Path) -> None:
    """The flow it was meant to approve was reported UNAPPROVED (exit 1), the label that never matched unsaid."""
    store = tmp_path / "lineage.db"
    written = SqliteStore(store)
    written.upsert([(EdgeKey("app", "assistant", "pii:email", "ck", "", "allow"), 100.0, 100.0, 1, None)])
    written.close()
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [ｐｉｉ:email]\n",
                        encoding="utf-8")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(store), "--baseline", str(baseline)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "UNAPPROVED" not in done.stdout, done.stdout + done.stderr
    assert f"{baseline}:5: flows[0].labels[0]: label 'ｐｉｉ:email' never matches" in done.stderr, done.stderr
    assert "this one as 'pii:email': write that" in done.stderr


NONE_MATCH = [
    ('"pii: email"', "label 'pii: email' never matches: no call's label does (it is not one, [a-z0-9]"),
    ("pii:\u0435mail", "label 'pii:\u0435mail' never matches: no call's label does (it is not one, [a-z0-9]"),
    ('"-pii"', "label '-pii' never matches: no call's label does (it is not one, [a-z0-9]"),
    ("pii:\u00e9*", "label 'pii:\u00e9*' never matches: no call's label does (none holds '\u00e9' ([a-z0-9]"),
    ('"pii *"', "label 'pii *' never matches: no call's label does (none holds ' ' ([a-z0-9]"),
]


@pytest.mark.parametrize(("label", "named"), NONE_MATCH, ids=["space", "cyrillic e", "hyphen first", "é", "pattern"])
def test_a_label_no_call_can_send_is_refused(label: str, named: str) -> None:
    """In its normal form, and still no label: one with a space in it, a Cyrillic look-alike (which the proxy leaves
    as it is, and refuses on the wire), a character no label holds outside a pattern's sets. It loaded and never
    matched, as a label not normalised did (review revproof12)."""
    with pytest.raises(BaselineError) as refused:
        parse_baseline(f"version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a, {label}]\n",
                       source="b.yaml")  # fmt: skip
    assert len(refused.value.problems) == 1, refused.value.problems
    assert refused.value.problems[0].startswith(f"b.yaml:5: flows[0].labels[1]: {named}"), refused.value.problems


def test_a_purpose_no_call_can_send_is_refused_and_patterns_of_labels_load() -> None:
    with pytest.raises(BaselineError) as refused:
        parse_baseline("version: 1\nflows:\n  - caller: app\n    purpose: for ads\n", source="b.yaml")
    assert refused.value.problems[0].startswith("b.yaml:4: flows[0].purpose: purpose 'for ads' never matches"), (
        refused.value.problems
    )
    baseline = parse_baseline(
        "version: 1\nflows:\n  - {caller: app, purpose: '[!x ]*', labels: ['pii:[! ]*', '[éa]']}\n"
    )
    assert baseline.approvals[0].labels == ("pii:[! ]*", "[éa]")  # (a set one character of which a label holds)


NO_SET_MATCHES = [
    ("'pii:[\u0435]mail'", "[\u0435]"),  # (a Cyrillic look-alike alone in a set)
    ("'[\u00e9]'", "[\u00e9]"),
    ("'pii:[ ]*'", "[ ]"),
    ("'[!a-z0-9._:/-]*'", "[!a-z0-9._:/-]"),  # (all a label holds excluded)
    ("'pii:[]]*'", "[]]"),  # (`]` first is a member, as fnmatch reads it)
    ("'pii:[\u0435\u0430]*'", "[\u0435\u0430]"),
]


@pytest.mark.parametrize(("label", "members"), NO_SET_MATCHES)
def test_a_pattern_whose_set_holds_no_character_a_label_holds_is_refused(label: str, members: str) -> None:
    """A `[...]` set was not read: one of characters no label holds loaded and never matched, and each flow it was
    meant to approve was reported (helper det13)."""
    with pytest.raises(BaselineError) as refused:
        parse_baseline(f"version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a, {label}]\n",
                       source="b.yaml")  # fmt: skip
    assert len(refused.value.problems) == 1, refused.value.problems
    assert refused.value.problems[0].startswith("b.yaml:5: flows[0].labels[1]: label "), refused.value.problems
    assert f"(its set {members} holds no character one holds ([a-z0-9]" in refused.value.problems[0]
    with pytest.raises(BaselineError) as refused:
        parse_baseline(f"version: 1\nflows:\n  - caller: app\n    purpose: {label}\n", source="b.yaml")
    assert refused.value.problems[0].startswith("b.yaml:4: flows[0].purpose: purpose "), refused.value.problems


@pytest.mark.parametrize("label", ["'pii:[!]]*'", "'pii:[.-]x'", "'[\u00e9a]*'", "'pii:[! ]*'", "'[a-c]*'"])
def test_a_pattern_whose_sets_each_hold_a_character_a_label_holds_loads(label: str) -> None:
    baseline = parse_baseline(f"version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [{label}]\n")
    assert baseline.approvals[0].labels == (label.strip("'"),)
