"""The drop's periodic job: purge expired rows of the SQL store (Redis expires keys itself)."""

from __future__ import annotations

import logging

from huey import crontab

from clubstack.core.db import db
from clubstack.core.jobs import huey
from clubstack.drop.store import SqlStore

log = logging.getLogger("clubstack.drop")


def purge_expired_messages() -> int:
    """Delete the expired rows; returns how many."""
    assert db.engine is not None
    removed = SqlStore(db.engine).purge()
    if removed:
        log.info("purged %d expired drop messages", removed)
    return removed


@huey.periodic_task(crontab(minute="*/10"))
def purge_drops() -> int:
    return purge_expired_messages()
