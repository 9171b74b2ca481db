"""The lines of a write stderr refuses are counted in `lineage_proxy_log_lines_dropped_total` and said in one ERROR line
once stderr takes a write again (tests/test_log_lines_refused_counted.py). Two ways that count said what was not so
(review revrec12), on a real tmpfs filled to its last byte:
- the write that found the disk full wrote the lines it had room for, whole, and all of its lines were counted lost:
  of 20 lines of 300 bytes with 3096 bytes of room, 10 in the file whole and 20 counted lost;
- the ERROR line saying N lines were lost, refused in turn (the disk full again), was counted as one line lost and its
  N were said nowhere again: the lines said lost summed to 1, the count to 21 (and one saying N lines were dropped
  past the bound, refused so, left those N said nowhere).
Now a line the disk took whole is not counted, and the N of an ERROR line refused are said in the next one: every line
is in the file whole or counted, and the lines said lost sum to the count."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import BinaryIO

import pytest

from proxy import logs
from tests.harness import fill

LINE = 300  # bytes a line, its newline among them


def test_every_line_is_written_whole_or_counted_and_the_counts_said_sum_to_it(tiny_disk: Path) -> None:
    log = tiny_disk / "proxy.log"
    filler = tiny_disk / "filler"
    before = logs.dropped()
    with log.open("ab") as stream:
        emit, handler = _logger_to(stream, "revrec12.refused")
        try:
            emit.info("a" * 999)  # 1000 bytes: the file's page has 3096 bytes of room left
            assert handler._writer is not None and handler._writer.flush(10)
            fill(tiny_disk)
            writer = handler._writer
            with writer._cond:  # (the lines queued before the thread takes them: one write)
                for n in range(20):
                    emit.info("%02d%s", n, "b" * (LINE - 3))
            assert writer.flush(10)
            assert log.stat().st_size == 4096  # (the room taken: 10 lines whole and 96 bytes of the 11th)
            os.truncate(filler, filler.stat().st_size - 4096)  # one page free: a line of 4096 bytes fits, no more
            emit.info("c" * 4095)  # written; the ERROR line after it is refused
            assert writer.flush(10)
            filler.unlink()
            emit.info("d")  # written, and the ERROR line after it
            assert writer.flush(10)
        finally:
            emit.removeHandler(handler)
    counted = logs.dropped() - before
    text = log.read_bytes().decode()
    # (the c line follows the 96 bytes of the one the full disk cut, on its line: whole all the same)
    whole = [line for line in text.split("\n")[:-1]
             if re.fullmatch(r"a{999}|\d\db{297}|(\d\db*)?c{4095}|d|\d+ log lines .*", line)]  # fmt: skip
    said = [int(line.split()[0]) for line in whole if "were lost: stderr refused" in line]
    logged = 1 + 20 + 1 + 1 + 2  # (two ERROR lines: the one refused, the one written)
    assert (len(whole), counted) == (logged - counted, 11), (len(whole), counted)  # 10 b lines whole, 10 and 1 lost
    assert said == [counted], said  # the lines of the refused ERROR line, itself among them


def test_a_drops_line_refused_is_said_with_the_next_write(tiny_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ERROR line saying N lines were dropped past the bound, refused in turn: its N was counted and said nowhere
    (review revrec12); now said by the next such line, the refused line itself counted among the lines lost."""
    monkeypatch.setattr(logs, "BUFFER_BYTES", 4096)  # (a line of 4096 bytes held, the next dropped)
    log = tiny_disk / "proxy.log"
    filler = tiny_disk / "filler"
    before = logs.dropped()
    with log.open("ab") as stream:
        emit, handler = _logger_to(stream, "revrec12.dropped")
        try:
            emit.info("a" * 4095)  # the file's first page, whole
            assert handler._writer is not None and handler._writer.flush(10)
            fill(tiny_disk)
            os.truncate(filler, filler.stat().st_size - 4096)  # one page free: a line of 4096 bytes fits, no more
            writer = handler._writer
            with writer._cond:
                for line in ("c" * 4095, "x", "y"):  # the first held, the next two dropped past the bound
                    emit.info(line)
            assert writer.flush(10)  # written, and the ERROR line saying the 2 dropped refused
            filler.unlink()
            emit.info("d")
            assert writer.flush(10)
        finally:
            emit.removeHandler(handler)
    text = log.read_text()
    assert re.findall(r"^(\d+) log lines \(access lines among them\) were (dropped|lost)", text, re.M) == [
        ("2", "dropped"),
        ("1", "lost"),
    ], text[-600:]
    assert logs.dropped() - before == 3


def _logger_to(stream: BinaryIO, name: str) -> tuple[logging.Logger, logs.WholeLineHandler]:
    """The logger `name`, writing each message alone through the proxy's line writer to `stream` (its handler to
    remove after)."""
    handler = logs.WholeLineHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    emit = logging.getLogger(name)
    emit.propagate, emit.level = False, logging.INFO
    emit.addHandler(handler)
    return emit, handler
