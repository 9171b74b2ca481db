"""CHANGELOG.md tells a user what the proxy did before and since when: it names no helper, review or reread of the
project's own process ("until a review on 2026-12-05", "since the review of that change"), which a reader cannot
date or follow; such a change is "a later change that day" or its date."""

from __future__ import annotations

import re

from tests.test_docs_markdown import ROOT

PROCESS_WORDS = re.compile(r"\b(helpers?|reviews?|reread)\b", re.IGNORECASE)


def test_the_changelog_names_no_helper_nor_review() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    named = [f"{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if PROCESS_WORDS.search(line)]
    assert named == [], "\n".join(named)
