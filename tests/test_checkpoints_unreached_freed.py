"""A discovery round that finds its upstream unreachable leaves none of its frames in a reference cycle for the
collector: the error it says (`unreached`, kept until the warning is logged, after the `except` block) held, by its
traceback, the round's frame, which held it. Before 2026-12-06 each such round that logged left `_round` and the
frames the error came through (a gRPC upstream's `model_metadata`, the dialect's `discover`) in a cycle. Run
interpreted, where frames exist."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from proxy import checkpoints
from proxy.config import parse
from proxy.config.model import Upstream
from proxy.protocols import Fetch


async def _refused(upstream: Upstream, path: str) -> Any:
    raise ConnectionError("connection refused")


@pytest.mark.interpreted
def test_a_round_that_finds_its_upstream_unreachable_leaves_no_frame_in_a_reference_cycle() -> None:
    config = parse("""
listen: {http: 127.0.0.1:0}
upstreams: [{name: oip, url: "http://127.0.0.1:1", protocol: oip}]
routes: [{model: "*", upstream: oip}]
""", source="t.yaml")  # fmt: skip
    book = checkpoints.CheckpointBook(config.upstreams, Fetch(_refused))
    gc.collect()
    gc.disable()
    try:
        asyncio.run(book.refresh(config.upstreams[0]))  # never probed: logged
        assert not book.reachable["oip"]
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [
            o.f_code.co_name for o in gc.garbage if type(o).__name__ == "frame" and "/proxy/" in o.f_code.co_filename
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
