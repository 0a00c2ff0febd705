"""The one clock: timezone-aware UTC, movable in tests (billing warnings, metering, expiry)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utcnow() -> datetime:
    return datetime.now(UTC) + _offset


@contextmanager
def moved(by: timedelta) -> Iterator[None]:
    """Run the block with the clock moved forward (tests only)."""
    global _offset
    before = _offset
    _offset = before + by
    try:
        yield
    finally:
        _offset = before


def travel(by: timedelta) -> None:
    """Move the clock forward for good (tests only; reset with reset())."""
    global _offset
    _offset += by


def reset() -> None:
    global _offset
    _offset = timedelta(0)
