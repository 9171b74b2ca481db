"""README.md and CHANGELOG.md render as written on GitHub: a table row has as many cells as its header, and a `\\|`
is written only where GitHub's Markdown reads it as a `|`, in a table row."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "CHANGELOG.md")
DELIMITER_ROW = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
CODE_SPAN_WITH_ESCAPED_BAR = re.compile(r"`[^`]*\\\|[^`]*`")


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each line with its number, but those of fenced code blocks, where what is written is what is shown."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def cells(row: str) -> int:
    """A row's cells as GitHub counts them: every `|` not escaped splits, inside backticks too."""
    return len(re.split(r"(?<!\\)\|", row.strip().removeprefix("|").removesuffix("|")))


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_table_row_has_its_headers_cells(name: str) -> None:
    lines = list(prose_lines((ROOT / name).read_text(encoding="utf-8")))
    wrong = []
    for index, (_, line) in enumerate(lines[:-1]):
        if not line.startswith("|") or not DELIMITER_ROW.match(lines[index + 1][1]):
            continue
        want = cells(line)
        for number, row in lines[index + 2 :]:
            if not row.startswith("|"):
                break
            if cells(row) != want:
                wrong.append(f"{name}:{number}: {cells(row)} cells, its header {want}: {row[:80]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_an_escaped_bar_is_written_only_in_a_table_row(name: str) -> None:
    """Outside a table a backslash in a code span is shown as it is: `0\\|[1-9][0-9]*` would read as a regex of a
    literal `|`."""
    wrong = [
        f"{name}:{number}: {line.strip()[:100]}"
        for number, line in prose_lines((ROOT / name).read_text(encoding="utf-8"))
        if not line.startswith("|") and CODE_SPAN_WITH_ESCAPED_BAR.search(line)
    ]
    assert not wrong, "\n".join(wrong)
