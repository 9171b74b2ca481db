"""Protocol adapters: how to read a call and its reply in each wire protocol (no sockets here).

Each adapter turns a request body into a `Request` (what the policy and recorder need) and offers an
observer that fills an Outcome from the reply, whole or chunk by chunk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.detectors import Detectors, StreamScanner
from proxy.flow import Outcome


@dataclass(frozen=True, slots=True)
class Request:
    """What an adapter read from one request body."""

    model: str
    operation: str
    stream: bool = False
    texts: tuple[str, ...] = ()  # the content to scan and digest, in order
    params: tuple[tuple[str, Any], ...] = ()
    labels: tuple[str, ...] = ()  # labels carried in the body (OIP `data_labels` parameter)
    version: str | None = None
    digest: str | None = None  # set when the adapter digests something other than `texts`


def text_digest(texts: tuple[str, ...] | list[str]) -> str | None:
    """`sha256:<hex>` of the content: the text pieces in order, each followed by a newline."""
    if not texts:
        return None
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def bytes_digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return "sha256:" + h.hexdigest()


class Observer(Protocol):
    """Watches a reply go by and fills the call's Outcome."""

    def body(self, data: bytes) -> None: ...

    def chunk(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


class OutputText:
    """Incremental digest, detection and (optional) capture of reply text as it passes."""

    __slots__ = ("_capture", "_hash", "_scanner", "_seen", "outcome")

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        self.outcome = outcome
        self._hash = hashlib.sha256()
        self._scanner: StreamScanner | None = detectors.stream() if detectors else None
        self._capture: list[str] | None = [] if capture else None
        self._seen = False

    def add(self, text: str) -> None:
        if not text:
            return
        self._seen = True
        self._hash.update(text.encode("utf-8", "surrogatepass"))
        if self._scanner is not None:
            self._scanner.feed(text)
        if self._capture is not None:
            self._capture.append(text)

    def end_piece(self) -> None:
        """Mark the end of one output (a choice); keeps digests of whole and streamed replies equal."""
        self._hash.update(b"\n")

    def finish(self, masker: Detectors | None = None) -> None:
        if self._seen:
            self.outcome.output_digest = "sha256:" + self._hash.hexdigest()
        if self._scanner is not None:
            self.outcome.output_detected = frozenset(self._scanner.found)
        if self._capture:
            text = "".join(self._capture)
            self.outcome.content = (masker.mask(text) if masker else text,)
