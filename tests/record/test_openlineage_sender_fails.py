"""The OpenLineage sending thread raising what is no failed send (`_emit` takes those: an odd backend's reply, a
reset, a redirect loop): a custom transport's SystemExit, a bug. The thread ended, saying nothing (threading's hook
is silent for a SystemExit) and counting nothing; no event went out for the process's life, no backlog file was
written (a kill lost every count since), and a flush waited for it forever."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import attr
import pytest
from openlineage.client.transport import Config, Transport

from proxy.config.model import OpenLineage
from proxy.record.openlineage import OpenLineageRecorder
from tests.harness import LoopThread
from tests.record.test_openlineage import chat, config, metric, sink, spooled_runs
from tests.test_openlineage_spool import Kept, counted


@attr.define
class ExitsConfig(Config):
    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> ExitsConfig:
        return cls()


class Exits(Transport):
    """Your own transport by dotted path, whose emit ends the thread it runs on (a library's sys.exit)."""

    kind = "exits"
    config_class = ExitsConfig

    def __init__(self, config: ExitsConfig) -> None:
        pass

    def emit(self, event: Any) -> None:
        raise SystemExit(3)


def test_a_sending_thread_that_fails_is_said_counted_and_its_counts_spooled(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _, upstream = vllm
    spool = tmp_path / "spool"
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.openlineage"):
        proxy = make_proxy(config(f"{{transport: {{type: {__name__}.Exits}}, spool: {spool}}}"), UPSTREAM=upstream)
        chat(proxy)  # the new flow's event: the thread fails on it
        chat(proxy)
        loop_thread.run(asyncio.wait_for(sink(proxy).flush(), 10))  # (waited forever)
    (said,) = [r.getMessage() for r in caplog.records if "failed (" in r.getMessage()]
    assert said.startswith("openlineage: the thread sending events to ")
    assert f"failed (SystemExit: 3, raised at {__file__}:" in said and " in emit); no more events will be sent" in said
    assert metric(proxy, "lineage_proxy_openlineage_outages_total") == 1
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="failed"}') == 1  # the new flow's

    loop_thread.run(proxy.process.stop())
    assert sorted(spooled_runs(spool).values()) == [("user-interaction", 2)]
    kept = Kept()
    again = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0, spool=str(spool)), transport=kept)

    async def next_start() -> None:
        again.start()
        await again.stop()

    loop_thread.run(next_start())
    assert counted(kept.events) == [2]


class ExitsOnClose(Exits):
    """`Exits`, whose close ends the thread it runs on too (the same library's sys.exit)."""

    kind = "exits-on-close"

    def close(self, timeout: float = -1) -> bool:
        raise SystemExit(4)


def test_a_failed_sending_thread_whose_transport_s_close_fails_too_still_answers_flushes_and_spools(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The failed thread closes its transport before it holds what comes for the stop (`_hold_all`): a close that
    raised what no close should (a SystemExit) ended the thread there, and a flush waited for it forever again."""
    _, upstream = vllm
    spool = tmp_path / "spool"
    transport = f"{{type: {__name__}.ExitsOnClose}}"
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.openlineage"):
        proxy = make_proxy(config(f"{{transport: {transport}, spool: {spool}}}"), UPSTREAM=upstream)
        chat(proxy)  # the new flow's event: the thread fails on it, then its transport's close
        chat(proxy)
        loop_thread.run(asyncio.wait_for(sink(proxy).flush(), 10))  # (waited forever)
    assert any("transport failed to close (SystemExit: 4)" in r.getMessage() for r in caplog.records), caplog.text
    loop_thread.run(proxy.process.stop())
    assert sorted(spooled_runs(spool).values()) == [("user-interaction", 2)]
