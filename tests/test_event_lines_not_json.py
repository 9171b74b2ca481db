"""An event stream's lines that no JSON reader reads cost one parse a line, as before Python's `json` was asked to
read what orjson refuses: `json` is asked for at most a few of them a reply (a hostile or broken upstream's 16 MiB
of `data: {` lines cost two parses a line, twice the CPU, and a whole reply read so held the loop for seconds), and
a line that is no object (never read as an event) is not parsed at all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver


@pytest.fixture
def json_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    texts: list[str] = []
    loads = json.loads

    def counted(text: str, **kw: Any) -> Any:
        texts.append(text)
        return loads(text, **kw)

    monkeypatch.setattr(json, "loads", counted)
    return texts


@pytest.mark.parametrize("line", [b"data: {\n", b"data: {x\n", b"data: x\n", b"data: 1\n"])
@pytest.mark.parametrize("whole", [False, True])
def test_lines_no_json_reader_reads_are_not_given_to_json_each(json_reads: list[str], line: bytes, whole: bool) -> None:
    observer = ReplyObserver(Outcome(started_ns=0), Detectors([DetectorSpec("email")]), False)
    body = line * 1000 + b'data: {"choices": [{"index": 0, "delta": {"content": "to bob@example.org"}}]}\n\n'
    if whole:
        observer.head(200, lambda name: "application/json")
        observer.body(body)
    else:
        observer.head(200, lambda name: "text/event-stream")
        observer.chunk(body)
    observer.finish()
    assert len(json_reads) <= 16
    assert observer.outcome.output_detected == {"pii:email"}  # the event after them read all the same
