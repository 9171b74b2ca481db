"""A whole reply whose type names a charset is read in it as its client reads it (`_in_charset`): each reading that
is other JSON than the UTF-8 one has its strings read beside. A reading that is the very text orjson read (an ASCII
reply under `charset=iso-8859-1`, the commonest such type) was parsed again by Python's `json`, in the loop's turn:
76-155 ms of 15 MiB on a loaded machine, for the same value. Since 2026-12-05 it is not."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from proxy.flow import Outcome
from proxy.protocols import kserve
from tests.protocols.test_oip_grpc import EMAIL


def _read(body: bytes, charset: str) -> Outcome:
    outcome = Outcome(started_ns=0)
    observer = kserve.ReplyObserver(outcome, EMAIL, False)
    observer.head(200, lambda name: f"application/json; charset={charset}" if name == "content-type" else None)
    observer.body(body)
    observer.finish()
    return outcome


@pytest.mark.interpreted  # (counts what a compiled module hands to a function of Python's)
def test_a_reply_in_a_charset_whose_reading_is_its_utf8_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    body = orjson.dumps({"predictions": ["write to alice@example.com"] + ["some text here"] * 1_000})
    parsed: list[int] = []
    loads = json.loads

    def counting(text: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(len(text))
        return loads(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    for charset in ("iso-8859-1", "us-ascii", "cp1252"):
        outcome = _read(body, charset)
        assert outcome.output_detected == {"pii:email"}
        assert not [size for size in parsed if size >= len(body)], charset  # (parsed again before)
    other = body.replace(b"alice@example.com", b"alice+AEA-example.com")  # UTF-7: other text, other JSON
    assert _read(other, "utf-7").output_detected == {"pii:email"}
    assert [size for size in parsed if size >= len(body) - 4]  # (that reading parsed)
