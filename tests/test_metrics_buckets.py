"""A histogram series' bucket for a value (`_Buckets.observe`): the index `bisect.bisect_left` gives over the
bounds (the first bound >= the value, `le`; the last bucket +Inf), for values on, between and past the bounds,
ints, infinities and NaN, over every bucket layout the per-call histograms use."""

from __future__ import annotations

import bisect
import math
import random

from proxy.metrics import CALL_BUCKETS, FIRST_CHUNK_BUCKETS, OVERHEAD_BUCKETS, _Buckets


def test_a_values_bucket_is_the_one_bisect_left_finds() -> None:
    rng = random.Random(3)
    for bounds in (CALL_BUCKETS, OVERHEAD_BUCKETS, FIRST_CHUNK_BUCKETS, (1.0,), ()):
        values: list[float] = [*bounds, *(math.nextafter(b, math.inf) for b in bounds)]
        values += [math.nextafter(b, -math.inf) for b in bounds]
        values += [0.0, -0.0, -1.0, 0, 7, 10**6, math.inf, -math.inf, math.nan]
        values += [rng.uniform(0, 700) for _ in range(200)] + [rng.uniform(0, 0.002) for _ in range(200)]
        series = _Buckets(bounds)
        want = [0] * (len(bounds) + 1)
        for value in values:
            want[bisect.bisect_left(bounds, value)] += 1
            series.observe(value)
            assert series.counts == want, (bounds, value)
