"""Results cached per (indicator, check) with a TTL: a second look-up within the TTL spends
no quota and says "as of <time>"."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Protocol

from clubstack.core.clock import utcnow
from clubstack.lookup.findings import CheckResult, Status

CACHEABLE = frozenset({Status.OK, Status.NOT_APPLICABLE})


class ResultCache(Protocol):
    def get(self, indicator_key: str, check: str) -> CheckResult | None: ...

    def put(self, indicator_key: str, result: CheckResult) -> None: ...


class MemoryCache:
    """Per process; for the CLI and tests. The web side uses the database cache."""

    def __init__(self, ttl: timedelta, clock: object = None) -> None:
        self.ttl = ttl
        self._clock = clock or utcnow
        self._items: dict[tuple[str, str], CheckResult] = {}
        self._lock = threading.Lock()

    def get(self, indicator_key: str, check: str) -> CheckResult | None:
        with self._lock:
            result = self._items.get((indicator_key, check))
        if result is None or result.as_of + self.ttl <= self._clock():  # type: ignore[operator]
            return None
        copy = CheckResult.from_dict(result.to_dict())
        copy.cached = True
        return copy

    def put(self, indicator_key: str, result: CheckResult) -> None:
        if result.status in CACHEABLE:
            with self._lock:
                self._items[(indicator_key, result.check)] = result
