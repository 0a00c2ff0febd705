"""Background jobs of the lookup desk."""

from __future__ import annotations

from huey import crontab

from clubstack.core.db import session_scope
from clubstack.core.jobs import huey
from clubstack.lookup.batches import execute_batch, purge_cache


@huey.task()
def run_lookup_batch(batch_id: str) -> None:
    execute_batch(batch_id)


@huey.periodic_task(crontab(minute="17"))
def purge_lookup_cache() -> int:
    with session_scope() as session:
        return purge_cache(session)
