"""The supervisor's watchdog (`workers.Watchdog`) reads its workers' beats (`server.Beats`): which workers it calls
stalled, and for how long. A worker not beating yet (starting) or draining (its slot cleared) is never stalled; a
pause of the whole proxy (a terminal's Ctrl-Z then `fg`, `docker pause`: the supervisor stopped too) gives every worker
its whole bound again, counted from the supervisor's first look after it, so no worker that beats again is killed.
The clock is the test's: no time passes."""

from __future__ import annotations

from proxy.config import parse
from proxy.errors import ConfigError
from proxy.server import Beats
from proxy.workers import WATCH_GAP_S, Watchdog

S = 1_000_000_000  # ns
BASE = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
"""


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def walk(self, dog: Watchdog, seconds: float) -> int:
        """`seconds` pass, the supervisor looking every half WATCH_GAP_S, as its loop does (far more often); the last
        look's time."""
        end = self.now + int(seconds * S)
        step = int(WATCH_GAP_S * S / 2)
        while self.now < end:
            self.now = min(end, self.now + step)
            dog.look()
        return self.now


def test_only_a_worker_that_serves_and_stopped_beating_is_quiet() -> None:
    beats = Beats(2)
    beats.serve(1, 111, 0)  # its listener opens: its first beat
    beat = beats.quiet_since(1, 111)
    assert beat is not None and beats.quiet_since(1, 222) is None  # another pid's slot
    clock = Clock(beat)
    dog = Watchdog(beats, clock)
    now = clock.walk(dog, 31)
    assert dog.quiet(1, 111, now) == 31.0
    assert dog.quiet(2, 333, now) == 0.0  # worker-2 has not beaten yet: still starting
    assert dog.quiet(1, 444, now) == 0.0  # worker-1's slot is its predecessor's: the new one has not beaten yet
    beats.leave(1)  # it stops accepting: draining
    assert dog.quiet(1, 111, now) == 0.0


def test_a_pause_of_the_whole_proxy_starts_the_watch_again() -> None:
    beats = Beats(1)
    beats.serve(1, 111, 0)  # its listener opens: its first beat
    beat = beats.quiet_since(1, 111)
    assert beat is not None
    clock = Clock(beat)
    dog = Watchdog(beats, clock)
    now = clock.walk(dog, 3)
    assert dog.quiet(1, 111, now) == 3.0
    clock.now += 120 * S  # the supervisor (and its workers) stopped for two minutes
    now = dog.look()
    assert dog.quiet(1, 111, now) == 0.0  # from this look on, not from the beat before the pause
    now = clock.walk(dog, 4)
    assert dog.quiet(1, 111, now) == 4.0
    dog.waited()  # the supervisor waited for a worker's start: not a pause
    assert dog.quiet(1, 111, dog.look()) == 4.0
    clock.now += 60 * S
    dog.waited()
    assert dog.quiet(1, 111, dog.look()) == 64.0


def stall_problems(value: str) -> list[str]:
    text = BASE + f"limits: {{worker_stall_s: {value}}}\n"
    try:
        parse(text, env={})
    except ConfigError as exc:
        return [problem for problem in exc.problems if problem.startswith("limits.worker_stall_s:")]
    return []


def test_worker_stall_s_is_0_or_at_least_the_readiness_stall() -> None:
    assert parse(BASE, env={}).limits.worker_stall_s == 30.0
    assert stall_problems("0") == stall_problems("5") == stall_problems("600") == []
    assert stall_problems("2") == ["limits.worker_stall_s: must be 0 (never) or >= 5 (the stall /readyz reports: a "
                                   "worker is out of traffic before it is killed), got 2"]  # fmt: skip
    assert stall_problems("-1") == ["limits.worker_stall_s: must be >= 0, got -1"]
    assert stall_problems(".nan") and stall_problems("soon")
