"""A refusal naming a model longer than NAME_MAX_CHARS quotes its start, a digest and its length (`quoted_name`).
The digest was of the whole name, encoded whole first: a model named with 64 MiB (as long as a body may be) cost
~0.2 s of the event loop's time for each call refused naming it, and a copy of the name as large. It reads at most
QUOTED_DIGEST_CHARS of the name now, its start and its end, whatever the name's length."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from proxy import flow
from proxy.flow import NAME_MAX_CHARS, quoted_name


class _Hashed:
    """hashlib.sha256, counting the bytes each digest is made of (a seam outside the compiled modules)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.sha256 = hashlib.sha256

    def __call__(self, data: bytes = b"", **kwargs: Any) -> Any:
        self.sizes.append(len(data))
        return self.sha256(data, **kwargs)


def test_a_long_name_is_digested_from_a_bounded_part(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = _Hashed()
    monkeypatch.setattr(hashlib, "sha256", hashed)
    quoted = quoted_name("m" * (64 << 20))
    assert hashed.sizes and max(hashed.sizes) <= 1 << 16, hashed.sizes  # 64 MiB, hashed whole
    assert quoted.startswith(repr("m" * (NAME_MAX_CHARS - 26)) + "...sha256:")
    assert quoted.endswith(f" ({64 << 20} characters)") and len(quoted) < 2 * NAME_MAX_CHARS


def test_long_names_stay_apart_by_start_end_and_length() -> None:
    long = "m" * (1 << 20)
    quoted = quoted_name(long)
    assert quoted_name(long) == quoted  # one name, one reason
    assert quoted_name("x" + long[1:]) != quoted  # differs at its start (past the part shown, too)
    assert quoted_name(long[:-1] + "x") != quoted  # at its end
    assert quoted_name(long[:NAME_MAX_CHARS] + "x" + long[NAME_MAX_CHARS + 1 :]) != quoted  # just past what is shown
    assert quoted_name(long + "m") != quoted  # in its length
    # a name up to QUOTED_DIGEST_CHARS is digested whole, as before
    medium = "m" * flow.QUOTED_DIGEST_CHARS
    whole = hashlib.sha256(medium.encode()).hexdigest()[:16]
    assert f"...sha256:{whole} ({flow.QUOTED_DIGEST_CHARS} characters)" in quoted_name(medium)
    assert quoted_name("\ud800" * 1000) != quoted_name("\udc00" * 1000)  # lone surrogates are digested, not refused
    assert quoted_name("m" * NAME_MAX_CHARS) == repr("m" * NAME_MAX_CHARS)
