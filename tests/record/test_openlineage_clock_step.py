"""A count event's nominal window ends no earlier than it starts when the wall clock was stepped back (NTP
correcting a VM's clock) while the window ran: its end was the wall time read at the snapshot, an hour before its
start after a step back of an hour, a window OpenLineage consumers take as empty or reject."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.harness import LoopThread
from tests.record.test_openlineage import Marquez, chat, check_run_event, config, marquez, sink

__all__ = ["marquez"]  # the Marquez stand-in's fixture, shared


def test_a_window_over_a_clock_step_back_ends_after_it_starts(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any, loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, upstream = vllm
    backend, url = marquez
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600}}'), UPSTREAM=upstream)
    chat(proxy)
    backend.wait_for(1)  # the new flow's event
    wall = time.time
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: wall() - 3600)  # the wall clock stepped back an hour
        loop_thread.run(sink(proxy).flush())  # what the snapshot timer does every snapshot_interval_s
    (snapshot,) = backend.wait_for(2)[1:]
    check_run_event(snapshot)
    assert snapshot["run"]["facets"]["lineageProxy_count"]["count"] == 1
    window = snapshot["run"]["facets"]["nominalTime"]
    assert window["nominalStartTime"] <= window["nominalEndTime"], window
