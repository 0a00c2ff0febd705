"""Scores as in WhibOx edition 3: performance, strawberries (designers), bananas (attackers).

performance  = 1 - log2(f_size) - log2(f_ram) - log2(f_time), each factor the measured value
               over its limit (object size; RAM and CPU time per call averaged after dropping
               the 5 lowest and 5 highest calls). A factor is clamped to [2^-40, 1] so a zero
               measurement cannot give an infinite score.
strawberries = performance * (minutes since publication / 1440)^2 while unbroken; after the
               first break at minute b it falls symmetrically, performance * ((2b - m)/1440)^2,
               down to 0 at minute 2b; time stops at the final deadline (frozen). The peak
               (the value at the first break, or now/at the deadline) is kept for ranking.
bananas      = for an attacker, the largest strawberry count a challenge had at the moment they
               broke it (edition 3 keeps the maximum; edition 2 scored carrots the same way at
               half weight: pass weight=0.5).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

MIN_FACTOR = 2.0**-40
TRIM = 5


def trimmed_mean(values: Sequence[float], trim: int = TRIM) -> float:
    """Mean without the ``trim`` lowest and highest values (plain mean when too few)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) > 2 * trim:
        ordered = ordered[trim : len(ordered) - trim]
    return sum(ordered) / len(ordered)


def _factor(measured: float, limit: float) -> float:
    return min(1.0, max(MIN_FACTOR, measured / limit))


def performance(
    size: float, size_limit: float, ram: float, ram_limit: float, time: float, time_limit: float
) -> float:
    return (
        1.0
        - math.log2(_factor(size, size_limit))
        - math.log2(_factor(ram, ram_limit))
        - math.log2(_factor(time, time_limit))
    )


def _minutes(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 60.0


def strawberries(
    perf: float,
    published: datetime,
    now: datetime,
    first_break: datetime | None = None,
    final_deadline: datetime | None = None,
) -> float:
    """Current strawberry count of a challenge."""
    if final_deadline is not None and now > final_deadline:
        now = final_deadline
    if now <= published:
        return 0.0
    elapsed = _minutes(now, published)
    if first_break is None or first_break >= now:
        return perf * (elapsed / 1440.0) ** 2
    broke_at = max(0.0, _minutes(first_break, published))
    remaining = max(0.0, 2 * broke_at - elapsed)
    return perf * (remaining / 1440.0) ** 2


def peak_strawberries(
    perf: float,
    published: datetime,
    now: datetime,
    first_break: datetime | None = None,
    final_deadline: datetime | None = None,
) -> float:
    """The highest count reached so far (at the first break, or now / at the deadline)."""
    until = now if first_break is None or first_break > now else first_break
    return strawberries(perf, published, until, None, final_deadline)


def bananas(strawberries_at_breaks: Iterable[float], weight: float = 1.0) -> float:
    values = list(strawberries_at_breaks)
    return weight * max(values) if values else 0.0
