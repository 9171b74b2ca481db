"""An event stream's lines that no JSON reader reads are given to `json` for at most a few of them a reply (a
hostile or broken upstream's 16 MiB of `data: {` lines cost two parses a line, and a whole reply read so held the
loop for seconds): past 16 the rest of the reply is not read; a line that is no object (never read as an event) is
not parsed at all, and the events after such lines are read. Either way the output is labelled `scan:truncated`."""

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
    if line.startswith(b"data: {") or line == b"data: 1\n":
        # past 16 no reader reads, the rest (the event after them) is not read; `data: 1` lines are JSON each, read
        # joined with the event's other lines as the openai SDK reads them since 2026-12-05 (b409cd0): no JSON then
        assert observer.outcome.output_detected == {"scan:truncated"}
    else:  # never parsed: the event after them read all the same
        assert observer.outcome.output_detected == {"pii:email", "scan:truncated"}
