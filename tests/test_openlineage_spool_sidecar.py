"""A count event spooled at a stop (its backend down) is sent at the next start naming the sidecar that counted its
calls (`lineageProxy_sidecar`), as it was built: a sidecar renamed between the two (`lineage.sidecar`, read at start),
or another reading a shared spool directory, sent it under its own name, so a flow's calls were put on a deployment
that never served them."""

from __future__ import annotations

from pathlib import Path

import orjson

from proxy.config.model import OpenLineage
from proxy.record.openlineage import OpenLineageRecorder
from tests.harness import LoopThread
from tests.test_openlineage_spool import Down, Kept, counted, on_end


def sidecars(events: list[object]) -> list[str | None]:
    return [
        facet.name if (facet := e.run.facets.get("lineageProxy_sidecar")) is not None else None  # type: ignore[attr-defined]
        for e in events
        if "lineageProxy_count" in e.run.facets  # type: ignore[attr-defined]
    ]


def test_spooled_counts_keep_the_name_of_the_sidecar_that_counted_them(loop_thread: LoopThread, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    settings = OpenLineage(snapshot_interval_s=3600.0, spool=str(spool))
    before = OpenLineageRecorder(settings, transport=Down(), sidecar="model-a-eu")

    async def first() -> None:
        before.start()
        on_end(before, "team-a", 3)
        await before.stop()

    loop_thread.run(first())
    (path,) = spool.glob("*.jsonl")
    assert [orjson.loads(line)["sidecar"] for line in path.read_bytes().splitlines()] == ["model-a-eu"]

    kept = Kept()
    after = OpenLineageRecorder(settings, transport=kept, sidecar="model-a-renamed")  # the next start, renamed

    async def second() -> None:
        after.start()
        on_end(after, "team-a")
        await after.flush()

    loop_thread.run(second())
    try:
        assert sorted(zip(counted(kept.events), sidecars(kept.events), strict=True)) == [
            (1, "model-a-renamed"), (3, "model-a-eu")
        ]  # fmt: skip
        assert list(spool.glob("*.jsonl")) == []  # sent: removed
    finally:
        loop_thread.run(after.stop())


def test_an_event_that_named_no_sidecar_names_none_and_an_older_entry_this_one(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """A recorder given no name (None) spooled events naming none: they are sent so. An entry a release before
    2026-12-03 spooled has no `sidecar`: sent as it was then, naming the sidecar that sends it."""
    spool = tmp_path / "spool"
    settings = OpenLineage(snapshot_interval_s=3600.0, spool=str(spool))
    unnamed = OpenLineageRecorder(settings, transport=Down())

    async def first() -> None:
        unnamed.start()
        on_end(unnamed, "team-a", 2)
        await unnamed.stop()

    loop_thread.run(first())
    (path,) = spool.glob("*.jsonl")
    (entry,) = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert entry["sidecar"] is None
    older = {name: value for name, value in entry.items() if name != "sidecar"}
    older["runId"] = "00000000-0000-4000-8000-000000000001"
    older["count"] = 5
    (spool / "older.jsonl").write_bytes(orjson.dumps(older) + b"\n")

    kept = Kept()
    after = OpenLineageRecorder(settings, transport=kept, sidecar="model-b")

    async def second() -> None:
        after.start()
        await after.flush()

    loop_thread.run(second())
    try:
        assert sorted(zip(counted(kept.events), sidecars(kept.events), strict=True), key=str) == [
            (2, None), (5, "model-b")
        ]  # fmt: skip
    finally:
        loop_thread.run(after.stop())
