"""How fast an account spends, asked of the services that spend (compute) without importing them.

A service that charges by the hour registers a burn source once at import time, in the module
its Service loads in both the web app and the worker (its package __init__ or tasks module):

    from clubstack.billing.burn import register_burn_source
    register_burn_source(lambda session, user_id: plan_burn(session, user_id))

Billing adds all sources up for its runway display and its low-credit warnings.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

BurnSource = Callable[[Session, int], int]
_sources: list[BurnSource] = []


def register_burn_source(source: BurnSource) -> BurnSource:
    """Add a callable(session, user_id) -> cents per hour; registering twice is harmless.

    Returns the source, so it can be used as a decorator."""
    if source not in _sources:
        _sources.append(source)
    return source


def unregister_burn_source(source: BurnSource) -> None:
    if source in _sources:
        _sources.remove(source)


def hourly_burn(session: Session, user_id: int) -> int:
    """What the account spends per hour now, in cents, summed over every registered source."""
    return sum(max(int(source(session, user_id)), 0) for source in _sources)
