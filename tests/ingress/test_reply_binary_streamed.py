"""A binary reply passed on as it arrives (chunked audio, an image, a gRPC-web frame) whose first byte is a NUL or a
UTF-16 or UTF-32 byte order mark's (`\\xff\\xfb` an MP3 frame's, `\\xff\\xd8` a JPEG's, `\\x00` a gRPC-web frame's):
from 2026-12-05 (85976e1) such a first byte alone had it kept whole as JSON in UTF-16 or UTF-32 may be, up to 16 MiB
held a reply and read at its end in one step (a 2 MB one: ~15 MB at its peak, 0.1-0.2 s of the event loop, where
read as it passes it held 0.3 MB and took 10 ms), for the same labels. Now it is kept only when its first bytes begin
JSON in them; a binary reply is read as before, and JSON in UTF-16 or UTF-32 still as read whole."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.ingress.test_compressed_replies_read import CHAT
from tests.ingress.test_reply_json_utf16_streamed import DETECTORS, observed

PIECE = 64 * 1024
SIZE = 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("lead", "content_type"),
    [
        (b"\xff\xfb\x90\x64", "audio/mpeg"),  # an MP3 frame's sync, no ID3 tag
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"\x00\x00\x00\x01\x00", "application/grpc-web+proto"),  # a gRPC-web data frame
        (b"\x00\x01\x02\x03", "application/octet-stream"),
        (b"\xff\xfeh\x00i\x00", "text/plain"),  # text in UTF-16 with its mark: no JSON
        (b"\xfe\xff\x00h\x00i", "text/plain"),
    ],
)
def test_a_binary_reply_passed_on_is_not_kept_whole(lead: bytes, content_type: str) -> None:
    data = lead + random.Random(7).randbytes(SIZE)
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False)
    observer.head(200, {"content-type": content_type}.get)
    tracemalloc.start()
    try:
        for start in range(0, len(data), PIECE):
            observer.chunk(data[start : start + PIECE])
        observer.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.output_detected == {"scan:truncated"}  # (as before, and as read whole)
    # before: 8-16 MB (the reply kept, then joined); read as it passes, some pieces at a time (~0.3 MB)
    assert peak < SIZE // 4, peak


@pytest.mark.parametrize("encoding", ["utf-32-be", "utf-32-le", "utf-16-be", "utf-16-le"])
@pytest.mark.parametrize("spaces", [0, 20])
def test_json_in_utf16_or_utf32_after_much_white_space_is_still_kept(encoding: str, spaces: int) -> None:
    """Past the bytes that tell (white space alone in them, 20 spaces in UTF-32: 80 bytes), kept as JSON all the same;
    in pieces of a byte each, so that a reply's first bytes are told across pieces."""
    data = (" " * spaces + CHAT.decode()).encode(encoding)
    whole = observed(data, "application/json", None)
    assert whole.output_detected == {"pii:email"}
    for pieces in (1, 2, 5, 64):
        assert observed(data, "application/json", pieces).output_detected == {"pii:email"}, pieces


def test_a_reply_too_short_to_tell_is_read_at_its_end() -> None:
    """A NUL and a byte: too few to tell, read whole at the end as any kept reply (no JSON: as an event stream)."""
    outcome = observed(b"\x00{", "application/json", 1)
    assert outcome.output_detected == {"scan:truncated"}
    assert observed(b"\x00{", "application/json", None).output_detected == outcome.output_detected
