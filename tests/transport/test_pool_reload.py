"""A reload that changes an upstream gives it a new connection pool; the old one lets its calls in flight
finish. A call decided before the reload, forwarded after it, goes through the old pool: it never retires
the new one (each such call would otherwise replace the pool the calls after the reload use, and the next of
those replace it back). Pools replaced and done with are let go."""

from __future__ import annotations

import dataclasses

from proxy.config import Upstream
from proxy.transport.pool import UpstreamPool

OLD = Upstream(name="u", url="http://127.0.0.1:9", timeout_s=5.0)


def test_a_call_decided_before_a_reload_uses_the_pool_it_was_decided_for() -> None:
    pools = UpstreamPool()
    new = dataclasses.replace(OLD, timeout_s=6.0)
    first = pools.pool(OLD)
    current = pools.pool(new)  # the first call after the reload
    assert current is not first and first.retired and not current.retired
    assert pools.pool(OLD) is first  # decided before the reload: the retired pool, the new one kept
    assert pools.pool(new) is current and not current.retired
    assert pools.pool(dataclasses.replace(new)) is current  # an identical upstream (a reload changing nothing else)


def test_pools_replaced_by_reloads_are_let_go_once_done() -> None:
    pools = UpstreamPool()
    for n in range(100):  # a reload a minute, each changing the upstream, no call in flight on the pool it replaces
        pools.pool(dataclasses.replace(OLD, timeout_s=float(n + 1)))
    assert len(pools._retired) == 1  # the one just replaced (its calls may still be in flight)
    busy = pools.pool(dataclasses.replace(OLD, timeout_s=500.0))
    busy.open = 1  # a call in flight on it
    pools.pool(dataclasses.replace(OLD, timeout_s=501.0))
    pools.pool(dataclasses.replace(OLD, timeout_s=502.0))
    assert busy in pools._retired  # kept until its calls are done
