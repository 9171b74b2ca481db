"""Server-sent events, read as they pass: the one splitter every streamed JSON API shares.

Lines (ended by LF, CRLF or a bare CR) may be split anywhere across chunks; `data:` lines carry one
JSON event each (other lines, `event:` and comments, are framing). `data: [DONE]` (OpenAI) marks the
end; APIs whose end is an event of their own (Responses, Anthropic Messages) set `ended` from `event`.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import Header, OutputText


class SseObserver:
    """Base of the observers of SSE-streamed JSON replies: subclasses read one event (`event`) and a
    whole reply (`body`), and say at `done` what they kept for the end."""

    __slots__ = ("_partial", "_text", "detectors", "ended", "outcome")

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        self.outcome = outcome
        self.detectors = detectors
        self.ended = False
        self._text = OutputText(outcome, detectors, capture)
        self._partial = b""

    def head(self, status: int, header: Header) -> None:
        pass

    def body(self, data: bytes) -> None:
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(reply, dict):
            self.whole(reply)

    def chunk(self, data: bytes) -> None:
        if b"\r" in data:  # CRLF, or a bare CR, ends a line too (WHATWG EventSource); a CRLF split between
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # two chunks only adds an empty line
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                self._data(line[5:].strip())

    def _data(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            self.ended = True
            return
        if not payload:
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if isinstance(event, dict):
            self.event(event)

    def finish(self) -> None:
        if self._partial.startswith(b"data:"):
            self._data(self._partial[5:].strip())
            self._partial = b""
        self.done()
        self._text.finish(self.detectors)

    # -- shared by the subclasses

    def identify(self, reply: dict[str, Any]) -> None:
        """The reply's model and id, as first named."""
        outcome = self.outcome
        if outcome.response_model is None and isinstance(reply.get("model"), str):
            outcome.response_model = reply["model"]
        if outcome.response_id is None and isinstance(reply.get("id"), str):
            outcome.response_id = reply["id"]

    def usage(self, usage: Any, input_key: str = "input_tokens", output_key: str = "output_tokens") -> None:
        if isinstance(usage, dict):
            if isinstance(usage.get(input_key), int):
                self.outcome.input_tokens = usage[input_key]
            if isinstance(usage.get(output_key), int):
                self.outcome.output_tokens = usage[output_key]

    def add_pieces(self, pieces: dict[int, list[str]]) -> None:
        """Streamed text kept per output (by index): each output's text in order, then its end."""
        for index in sorted(pieces):
            for piece in pieces[index]:
                self._text.add(piece)
            self._text.end_piece()

    # -- what a subclass reads

    def whole(self, reply: dict[str, Any]) -> None:
        """A reply that was not streamed."""

    def event(self, event: dict[str, Any]) -> None:
        """One streamed event."""

    def done(self) -> None:
        """The stream is over: add what was kept per output, in order."""
