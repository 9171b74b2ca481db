"""The report's tables fit its cards at a common window width: at 1400 px in headless Chromium the "Every flow" table
was 12 px wider than its card (its headers held on one line each, `FIRST SEEN (UTC)` wider than its dates), so its
last column sat past the card's right edge, reachable only by a sideways scroll (and cut in a screenshot). Headers,
rule names and dates now wrap where a table would not fit; a table that still cannot fit scrolls."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.baseline import parse_baseline
from proxy.record.store import EdgeKey, EdgeRow
from proxy.report import render
from tests.test_report import browse

T = 1_796_000_000.0
# a page's own measure of each table's box: how wide its content is, how wide it is shown (the report's policy allows
# no script: the measure is added to a copy, with its Content-Security-Policy taken out)
MEASURE = (
    '<script>document.addEventListener("DOMContentLoaded", () => document.body.setAttribute("data-widths", '
    '[...document.querySelectorAll(".scroll")].map(d => d.closest("section").id + ":" + d.scrollWidth + "/" + '
    'd.clientWidth).join(" ")))</script>'
)


def rows() -> list[EdgeRow]:
    """Flows as an operator's walk recorded them (llama.cpp and MLServer behind the proxy), refusals by zone and
    caller, and a baseline (the `approved` column)."""
    return [
        EdgeRow(EdgeKey("eval", "evaluation", "customer", "", "", "deny", "zone:customer-data"), T, T, 3, "no"),
        EdgeRow(EdgeKey("app", "assistant", "", "iris:1", "", "allow"), T, T + 60, 2, None),
        EdgeRow(EdgeKey("(unknown key)", "", "", "", "", "deny", "callers"), T, T, 1, "no key"),
        EdgeRow(EdgeKey("app", "ads", "", "", "", "deny", "caller:app"), T, T, 1, "not for ads"),
        EdgeRow(EdgeKey("app", "assistant", "", "smollm2", "", "allow"), T, T, 1, None),
        EdgeRow(EdgeKey("app", "assistant", "pii:email", "smollm2", "pii:email", "allow"), T, T, 1, None),
    ]


@pytest.mark.parametrize("baseline", [False, True], ids=["no-baseline", "baseline"])
def test_every_table_fits_its_card_at_1400_px(tmp_path: Path, baseline: bool) -> None:
    approved = parse_baseline("version: 1\nflows:\n  - {caller: app, purpose: assistant}\n") if baseline else None
    text = render(rows(), store="lineage.db", window="all recorded", baseline=approved)
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text).replace("</body>", MEASURE + "</body>")
    page = tmp_path / "report.html"
    page.write_text(text, encoding="utf-8")
    dom = browse(page, tmp_path / "profile", "--window-size=1400,1000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-widths="([^"]*)"', dom.stdout)
    assert found is not None, dom.stdout[-2000:]
    widths = [re.fullmatch(r"([a-z]+):(\d+)/(\d+)", item).groups() for item in found.group(1).split()]  # type: ignore[union-attr]
    assert "flows" in {section for section, _, _ in widths}
    over = [(section, int(content) - int(shown)) for section, content, shown in widths if int(content) > int(shown)]
    assert over == [], f"tables wider than their card (section, px over): {over}"
