"""The task queue: Huey on SQLite by default, on Redis when CLUBSTACK_REDIS_URL is set.

Huey takes a task off the queue before running it, so a worker killed mid-task would lose it.
We keep a lease for every running task (in the queue's own key-value store) and put leased tasks
back on the queue when their worker is gone (same host, process dead) or the lease ran out.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from typing import Any

from huey import Huey
from huey.api import Task
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

from clubstack.core.files import private_dir, private_sqlite
from clubstack.settings import Settings

log = logging.getLogger("clubstack.jobs")
LEASE_PREFIX = "lease:"
LEASE_SECONDS = 3600  # a task running longer than this on a silent worker is presumed lost


class ClubHuey(Huey):
    """A Huey whose storage is chosen from settings after the tasks are declared."""

    def configure(self, settings: Settings) -> None:
        if settings.redis_url:
            self.storage_class = RedisStorage
            self.storage_kwargs = {"url": settings.redis_url}
        else:
            private_dir(settings.instance)
            private_sqlite(settings.instance / "jobs.db")
            self.storage_class = SqliteStorage
            self.storage_kwargs = {"filename": str(settings.instance / "jobs.db")}
        self._immediate = settings.jobs_immediate
        self.storage = self.create_storage()


huey = ClubHuey("clubstack", storage_class=MemoryStorage, utc=True)
_WORKER = f"{socket.gethostname()}:{os.getpid()}"


def configure_jobs(settings: Settings) -> ClubHuey:
    huey.configure(settings)
    return huey


@huey.pre_execute()
def _take_lease(task: Task) -> None:
    if huey.immediate:
        return
    lease = {"worker": _WORKER, "since": time.time(), "task": huey.serialize_task(task)}
    huey.storage.put_data(LEASE_PREFIX + task.id, pickle.dumps(lease))


@huey.post_execute()
def _drop_lease(task: Task, value: Any, exc: BaseException | None) -> None:
    if not huey.immediate:
        huey.storage.pop_data(LEASE_PREFIX + task.id)


def _worker_alive(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's worker: only the lease age tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return int(pid) != os.getpid() or worker == _WORKER


def requeue_lost_tasks(now: float | None = None) -> int:
    """Put back the tasks whose worker died while running them; returns how many."""
    now = time.time() if now is None else now
    requeued = 0
    for key, raw in list(huey.storage.result_items().items()):
        name = key.decode() if isinstance(key, bytes) else key
        if not name.startswith(LEASE_PREFIX):
            continue
        lease = pickle.loads(raw)  # noqa: S301 - written by our own workers into our own store
        if lease["worker"] == _WORKER:
            continue
        if _worker_alive(lease["worker"]) and now - lease["since"] < LEASE_SECONDS:
            continue
        if huey.storage.pop_data(name) is None:
            continue  # another worker got there first
        task = huey.deserialize_task(lease["task"])
        log.warning(
            "requeueing task %s (%s) lost by worker %s", task.id, task.name, lease["worker"]
        )
        huey.enqueue(task)
        requeued += 1
    return requeued


__all__ = ["configure_jobs", "huey", "requeue_lost_tasks"]
