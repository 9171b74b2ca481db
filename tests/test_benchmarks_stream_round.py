"""`benchmarks.run`'s stream measure: hops interleaved stream by stream, so the machine's drift over a round
stays out of a hop's added time to first and last event."""

from __future__ import annotations

import argparse
import statistics

import pytest

from benchmarks import run
from benchmarks.run import Bench, Hop

ADDED = {1000: 0.0, 1001: 40.0, 1002: 110.0, 1003: 300.0}  # port -> what the hop adds to a stream, µs
SLOPE = 25.0  # µs the machine drifts a stream: 20 turns × 4 hops drift 2,000 µs, far more than any hop adds


def test_the_added_ttfb_is_the_hop_s_own_under_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def stream(port: int) -> tuple[float, float]:  # a machine slowing down stream by stream
        calls.append(port)
        drift = SLOPE * len(calls)
        return 1000.0 + drift + ADDED[port], 160_000.0 + drift + 2 * ADDED[port]

    monkeypatch.setattr(run, "stream", stream)
    hops = [Hop("direct" if port == 1000 else f"hop {port}", f"http://127.0.0.1:{port}", 0) for port in ADDED]
    bench = Bench(argparse.Namespace())
    try:
        bench.stream_round(hops, 20)
    finally:
        bench.stop()

    turns = [calls[i : i + len(hops)] for i in range(0, len(calls), len(hops))]
    assert len(turns) == 20 and all(sorted(turn) == sorted(ADDED) for turn in turns)
    assert {turn[0] for turn in turns} == set(ADDED)  # the order rotated: every hop goes first in some turn
    assert "added_ttfb_us" not in hops[0].results
    for hop, added in zip(hops[1:], list(ADDED.values())[1:], strict=True):
        # off by at most the drift within one turn, not the round's
        assert abs(hop.results["added_ttfb_us"][0] - added) <= SLOPE * len(hops)
        assert abs(hop.results["added_ttlb_us"][0] - 2 * added) <= SLOPE * len(hops)
    for hop, port in zip(hops, ADDED, strict=True):
        # each hop's own times to the first and last event: the median of its streams' (not another hop's, whose
        # added times differ), the machine's drift in them
        own = [index for index, called in enumerate(calls, 1) if called == port]
        assert hop.results["ttfb_us"] == [statistics.median(1000.0 + SLOPE * i + ADDED[port] for i in own)]
        assert hop.results["ttlb_us"] == [statistics.median(160_000.0 + SLOPE * i + 2 * ADDED[port] for i in own)]
