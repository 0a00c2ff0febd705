"""The core's own periodic jobs."""

from __future__ import annotations

from huey import crontab

from clubstack.core.accounts.login import purge_expired
from clubstack.core.db import session_scope
from clubstack.core.jobs import huey, requeue_lost_tasks


@huey.periodic_task(crontab(minute="*/15"))
def purge_login_records() -> int:
    with session_scope() as session:
        return purge_expired(session)


@huey.periodic_task(crontab(minute="*/5"))
def requeue_lost() -> int:
    return requeue_lost_tasks()
