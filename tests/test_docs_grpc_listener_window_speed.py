"""The README's speed of a gRPC stream over a long link was the 32 MiB window's (about 400 MiB/s at 80 ms) with "raise
it when clients or upstreams are further away"; since the listener's window is at most bodies_max_bytes /
grpc_max_calls (2 MiB by default, `call_window`), a client's stream moves about 25 MiB/s at 80 ms, and raising
grpc_stream_window_bytes alone changes nothing for it. The numbers the README gives are the code's."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.config import Limits
from proxy.transport.grpc_channels import call_window

README = (Path(__file__).parent.parent / "README.md").read_text()
MIB = 1 << 20


def _speed(window: int, rtt_s: float) -> int:
    """MiB a second that a window a round trip moves."""
    return round(window / rtt_s / MIB)


def test_the_readme_gives_the_listeners_window_and_its_speed() -> None:
    limits = Limits()
    window = call_window(limits)
    assert window == 2 * MIB
    text = re.sub(r"\s+", " ", README)
    said = re.search(r"that window is (\d+) MiB on both sides, about (\d+) MiB/s at 80 ms, (\d+) MiB/s at 200 ms", text)
    assert said is not None, "the README says what the listener's window lets a client's stream move"
    assert int(said[1]) * MIB == window
    assert (int(said[2]), int(said[3])) == (_speed(window, 0.08), _speed(window, 0.2))
    assert f"32 MiB, about {_speed(limits.grpc_stream_window_bytes, 0.08)} MiB/s at 80 ms" in text  # what it was
    assert "Each side's window is the smaller of `grpc_stream_window_bytes` and `bodies_max_bytes` / " in text
