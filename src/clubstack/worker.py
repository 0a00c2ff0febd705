"""`clubstack worker`: the Huey consumer for every enabled service's jobs."""

from __future__ import annotations

import logging

from clubstack.core.db import db
from clubstack.core.jobs import configure_jobs, huey, requeue_lost_tasks
from clubstack.core.logs import setup_logging
from clubstack.services import enabled
from clubstack.settings import Settings

log = logging.getLogger("clubstack.worker")


def load_all_tasks(settings: Settings) -> None:
    from clubstack.core import tasks  # noqa: F401 - registers the core's periodic jobs

    for service in enabled(settings):
        service.load_tasks()


def run_worker(settings: Settings, workers: int, periodic: bool = True) -> None:
    setup_logging(settings, "worker")
    db.init(settings.sqlalchemy_url)
    configure_jobs(settings)
    load_all_tasks(settings)
    lost = requeue_lost_tasks()
    if lost:
        log.warning("requeued %d task(s) whose worker died", lost)
    consumer = huey.create_consumer(
        workers=workers, worker_type="thread", periodic=periodic, check_worker_health=True
    )
    log.info("worker started with %d thread(s)", workers)
    consumer.run()
