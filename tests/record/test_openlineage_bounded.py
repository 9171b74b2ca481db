"""The OpenLineage recorder's memory of flows is bounded as the edge store's is: a caller sending other labels on
every call (a new flow a call) cannot grow it without end. The flows seen are forgotten past the bound (each one's
first event sent again when next seen); a window of counts past it ends early, its counts queued as at the
interval's end; with the queue full, a further flow's call is not counted, and that is counted as a drop; an outage
holds at most the bound of flows' counts, the rest counted as dropped."""

from __future__ import annotations

from proxy.config import OpenLineage
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record.edges import edge_key, flow_size
from proxy.record.openlineage import OpenLineageRecorder, _NewFlow, _Snapshot

CALL = Call("openai", "chat", "m", TraceContext(trace_id=1, span_id=2))


def decision(n: int) -> Decision:
    return Decision(ALLOW, None, labels=frozenset({"team-a", f"n{n}"}))


def bound(flows: int) -> int:
    """`kept_bytes` for `flows` flows (each `decision(n)`'s, n < 100, is of one size)."""
    return flows * flow_size(edge_key(decision(10), Outcome(started_ns=1), frozenset()))


def recorder(flows: int, queue_size: int = 1024) -> OpenLineageRecorder:
    """Not started: what it queues stays in its queue, to be read."""
    settings = OpenLineage(snapshot_interval_s=3600.0, queue_size=queue_size)
    return OpenLineageRecorder(settings, transport=None, kept_bytes=bound(flows))


def call(sink: OpenLineageRecorder, n: int) -> None:
    sink.on_end(CALL, decision(n), Outcome(started_ns=1), frozenset())


def queued(sink: OpenLineageRecorder) -> list[object]:
    return list(sink._queue.queue)


def test_flows_seen_past_the_bound_are_forgotten_and_announced_again() -> None:
    sink = recorder(3)
    for n in range(10, 15):
        call(sink, n)
    assert len(sink._seen) <= 3
    firsts = [item.key.input_labels for item in queued(sink) if isinstance(item, _NewFlow)]
    assert firsts == [f"n{n},team-a" for n in range(10, 15)]
    call(sink, 14)  # still remembered: no second first event
    call(sink, 10)  # forgotten: announced again
    firsts = [item.key.input_labels for item in queued(sink) if isinstance(item, _NewFlow)]
    assert firsts[5:] == ["n10,team-a"]


def test_a_window_past_the_bound_ends_early_and_no_count_is_lost() -> None:
    sink = recorder(3)
    for n in range(10, 17):
        call(sink, n)
        call(sink, n)
    snapshots = [item for item in queued(sink) if isinstance(item, _Snapshot)]
    assert len(snapshots) == 2  # ended at the 4th flow and at the 7th
    assert all(len(s.flows) == 3 for s in snapshots) and len(sink._window) == 1
    counted = sum(count for s in snapshots for _, count, _ in s.flows)
    assert counted + sum(t.count for t in sink._window.values()) == 14
    assert sink.counts["dropped"] == 0


def test_with_the_queue_full_a_further_flow_s_call_is_counted_as_dropped() -> None:
    sink = recorder(2, queue_size=4)
    for n in range(10, 12):  # two flows: two first events, the window at its bound
        call(sink, n)
    call(sink, 12)  # ends the window: its snapshot and 12's first event fill the queue
    assert len(queued(sink)) == 4 and sink.counts["dropped"] == 0
    call(sink, 12)
    call(sink, 13)  # counted in the new window; its first event dropped
    assert sink.counts["dropped"] == 1
    call(sink, 14)  # the window past its bound and the queue refusing it: this call's count is not sent
    assert sink.counts["dropped"] == 1 + 3  # the refused window, 14's call, 14's first event
    assert sum(t.count for t in sink._window.values()) == 3  # 12 twice and 13, kept for the interval's end
    call(sink, 15)  # no second try before the interval's end: dropped at once
    assert sink.counts["dropped"] == 6 and len(sink._window) == 2


def test_an_outage_holds_the_counts_of_at_most_the_bound_of_flows() -> None:
    sink = recorder(3)
    facts = [(edge_key(decision(n), Outcome(started_ns=1), frozenset()), 2, None) for n in range(10, 16)]
    sink._hold(facts, 1.0)  # type: ignore[arg-type]
    assert len(sink._held) == 3 and sink.counts["dropped"] == 3
    sink._hold(facts[:2], 2.0)  # type: ignore[arg-type]
    assert [count for count, _ in sink._held.values()] == [4, 4, 2]  # flows held go on being counted
