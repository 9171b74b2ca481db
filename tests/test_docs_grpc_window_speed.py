"""Since the proxy's channels to upstreams took the listener's window (`call_window`: at most bodies_max_bytes /
grpc_max_calls, 2 MiB with the defaults), README still said they moved 32 MiB a round trip (400 MiB/s at 80 ms) and
told operators with far upstreams to raise grpc_stream_window_bytes, which with the defaults changes nothing; and
config/example.yaml said the same. README's bound on gRPC calls did not say it is each `--workers` worker's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from proxy.config import Limits
from proxy.transport.grpc_channels import call_window

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_cure_for_far_upstreams_changes_the_window() -> None:
    limits = Limits()
    raised = dataclasses.replace(limits, grpc_stream_window_bytes=4 * limits.grpc_stream_window_bytes)
    assert call_window(raised) == call_window(limits) == 2 << 20  # raising it alone changes nothing
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "32 MiB is about 400 MiB/s at 80 ms, 160 MiB/s at 200 ms (the proxy's channels to upstreams)" not in readme
    assert "Raise `grpc_stream_window_bytes` when upstreams are further away" not in readme
    assert "raising `grpc_stream_window_bytes` alone changes nothing with the defaults" in readme
    example = (ROOT / "config" / "example.yaml").read_text()
    assert "raise it for clients or upstreams far away" not in example


def test_the_call_limit_is_said_to_be_each_workers() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    start = readme.index("The gRPC listener takes at most `limits.grpc_max_calls` calls at once")
    assert "in each `--workers` worker" in readme[start : readme.index("RESOURCE_EXHAUSTED", start)]
