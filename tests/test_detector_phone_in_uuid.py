"""A UUID's groups of digits are no phone: `9bdc24bc-0068-4187-9491-f176b0fe97e3` held `0068-4187-9491`, nine digits
and dashes, and 0.22 % of random uuid4 values were labelled `pii:phone` (about 1 call in 455 refused where phones are
forbidden, once a KServe route read `user`, `metadata` and `prompt_cache_key`, which are often UUIDs). A phone written
beside a UUID, or in a token only shaped partly like one, is still found."""

from __future__ import annotations

import random
import uuid

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors

PHONE = Detectors([DetectorSpec("phone")])


def test_random_uuids_are_no_phones() -> None:
    draw = random.Random(20261204)
    uuids = [str(uuid.UUID(int=draw.getrandbits(128), version=4)) for _ in range(20_000)]
    labelled = [text for text in uuids if PHONE.scan(f"user {text}")]
    assert labelled == []  # before: 44 of them (0.22 %), e.g. 9bdc24bc-0068-4187-9491-f176b0fe97e3
    assert not PHONE.scan("9bdc24bc-0068-4187-9491-f176b0fe97e3")
    assert not PHONE.scan('{"prompt_cache_key": "9BDC24BC-0068-4187-9491-F176B0FE97E3"}')


@pytest.mark.parametrize(
    "text",
    [
        "call 555-123-4567 tomorrow",
        "order 9bdc24bc-0068-4187-9491-f176b0fe97e3, call 555-123-4567",  # beside one
        "ticket-555-123-4567",  # a dash before, no UUID
        "ref-0068-4187-9491",  # a UUID's middle, no UUID round it
        "9bdc24bc-0068-4187-9491",  # a UUID's start alone
        "call +1 (555) 123-4567",
    ],
)
def test_phones_beside_or_shaped_partly_like_uuids_are_found(text: str) -> None:
    assert PHONE.scan(text) == {"pii:phone"}
