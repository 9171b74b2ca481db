"""The checks an ordinary event-stream read meets in C (`sse._sdk_line`, `sse._open_data`) decide as the searches they
stand for did (`_SDK_LINE` searched for in the whole read, `(?:\\A\\n?|\\n\\n)data:...\\n\\Z` searched for): a read that
may hold a line at which the openai SDK dispatches an event without data, or that leaves an ordinary event open, is
found as before. Those searches tried their patterns at every byte of every read (1.7-4.9 us a 259-byte read, 8-17 us
one of five events); the checks look for a line end first (helper ssefast)."""

from __future__ import annotations

import random
import re

import pytest

from proxy.protocols import sse

# `_SDK_OPEN_DATA` as it was searched for (before 2026-12-05's helper ssefast)
_OPEN_DATA_SEARCHED = re.compile(rb"(?:\A\n?|\n\n)data:(?! ?\[DONE\])[ \t]*[^ \t\n][^\n]*\n\Z")
_CHAT = b'data: {"choices":[{"index":0,"delta":{"content":" ana@example.org"}}]}\n\n'
# the forms `_SDK_LINE` finds, on the read's first line and after one, and those that come near them
_PIECES = (b"data:", b"data", b"data: ", b"data:  ", b"data:\t", b"data: \t", b"id", b"id:", b"id: 7", b"id: ", b"idle",
           b"retry:", b"retry: 5", b"retry: x", b"retry:\x1c5", b"event:", b"event: x", b"event: error", b"event",
           b":", b": ping", b" ", b"\t", b"x", b"d", b"ata:", b"{}", b"[DONE]", b" [DONE]", b"\xff",
           b'{"choices":[{"index":0,"delta":{"content":"a"}}]}', b"\n", b"\n", b"\n", b"\n\n")  # fmt: skip


def _sdk_line_searched(data: bytes) -> bool:
    return sse._SDK_LINE.search(data) is not None


@pytest.mark.parametrize(
    "data",
    [
        _CHAT,
        _CHAT * 5,
        b"data: [DONE]\n\n",
        b"id: 1\n" + _CHAT,
        _CHAT + b"id: 1\n\n",
        b"retry: 5\n\n",
        _CHAT + b"retry: 5\n\n",
        b"event: x\n\n",
        b"event: x\n" + _CHAT,
        _CHAT + b"event: x\n\n",
        b"data\n\n",
        b"data:\n\n",
        b"data: \t\n\n",
        _CHAT + b"data:  \n\n",
        b"data: 1\ndata: 2\n\n",
        _CHAT + b"data: 1\ndata: 2\n\n",
        _CHAT + b"data: 1\n: ping\ndata: 2\n\n",
        b": ping\n" + _CHAT,
        b"\n" + _CHAT,
        b"\n\n" + _CHAT,
    ],
)
def test_sdk_lines_found_as_searched(data: bytes) -> None:
    assert sse._sdk_line(data) == _sdk_line_searched(data)


@pytest.mark.parametrize(
    "data",
    [
        _CHAT[:-1],
        b"\n" + _CHAT[:-1],
        _CHAT + _CHAT[:-1],
        b": ping\n" + _CHAT[:-1],
        b"data: [DONE]\n",
        b"data:  [DONE]\n",
        b"data: x\n",
        b"data:\n",
        b"data: \n",
        b"id: 1\ndata: x\n",
        b"\n",
        b"\n\n",
        _CHAT,
        b"",
    ],
)
def test_open_data_found_as_searched(data: bytes) -> None:
    assert sse._open_data(data) == (_OPEN_DATA_SEARCHED.search(data) is not None)


def test_random_reads_decide_as_searched() -> None:
    """Reads of random lines, of the forms that are such lines and of those near them: found as searched for."""
    chance = random.Random(20261205)
    found = opened = 0
    for _ in range(20_000):
        data = b"".join(chance.choice(_PIECES) for _ in range(chance.randint(0, 12)))
        if chance.random() < 0.3:
            data = _CHAT + data
        assert sse._open_data(data) == (_OPEN_DATA_SEARCHED.search(data) is not None), data
        opened += sse._open_data(data)
        if data.endswith(b"\n"):  # (the reads `_sdk_line` is given: whole lines)
            assert sse._sdk_line(data) == _sdk_line_searched(data), data
            found += sse._sdk_line(data)
    assert found > 1000 and opened > 100  # (both kinds met, many times)
