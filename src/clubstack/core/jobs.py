"""The task queue: Huey on SQLite by default, on Redis when CLUBSTACK_REDIS_URL is set.

Huey takes a task off the queue before running it, so a worker killed mid-task would lose it.
We keep a lease for every running task (in the queue's own key-value store) and put leased tasks
back on the queue when their worker is gone (same host, process dead) or the lease ran out.
Every ClubHuey keeps leases, the contest's sandbox queue too, so a sandbox node killed mid-run
gets its job back when a sandbox worker starts again on that machine. A lease is JSON and holds
the task as the queue's own serializer wrote it: no pickle enters the JSON-only contest queues.
"""

from __future__ import annotations

import base64
import json
import logging
import os
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
_WORKER = f"{socket.gethostname()}:{os.getpid()}"


class ClubHuey(Huey):
    """A Huey whose storage is chosen from settings after the tasks are declared, and which
    keeps a lease on every task it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pre_execute(name="clubstack-lease")(self._take_lease)
        self.post_execute(name="clubstack-lease")(self._drop_lease)

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

    def _take_lease(self, task: Task) -> None:
        if self.immediate:
            return
        lease = {
            "worker": _WORKER,
            "since": time.time(),
            "task": base64.b64encode(self.serialize_task(task)).decode(),
        }
        self.storage.put_data(LEASE_PREFIX + task.id, json.dumps(lease).encode())

    def _drop_lease(self, task: Task, value: Any, exc: BaseException | None) -> None:
        if not self.immediate:
            self.storage.pop_data(LEASE_PREFIX + task.id)


huey = ClubHuey("clubstack", storage_class=MemoryStorage, utc=True)


def configure_jobs(settings: Settings) -> ClubHuey:
    huey.configure(settings)
    return huey


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


def _read_lease(raw: bytes) -> dict[str, Any] | None:
    try:
        lease = json.loads(raw)
    except ValueError:
        return None
    if (
        isinstance(lease, dict)
        and isinstance(lease.get("worker"), str)
        and isinstance(lease.get("since"), (int, float))
        and isinstance(lease.get("task"), str)
    ):
        return lease
    return None


def requeue_lost_tasks(queue: ClubHuey | None = None, now: float | None = None) -> int:
    """Put back the tasks of ``queue`` (the main one by default) whose worker died while
    running them; returns how many."""
    queue = huey if queue is None else queue
    now = time.time() if now is None else now
    requeued = 0
    for key, raw in list(queue.storage.result_items().items()):
        name = key.decode() if isinstance(key, bytes) else key
        if not name.startswith(LEASE_PREFIX):
            continue
        lease = _read_lease(raw)
        if lease is None:  # not ours to read (an older release's pickle): never unpickled
            log.warning("dropping an unreadable lease %s on %s", name, queue.name)
            queue.storage.pop_data(name)
            continue
        if lease["worker"] == _WORKER:
            continue
        if _worker_alive(lease["worker"]) and now - lease["since"] < LEASE_SECONDS:
            continue
        if queue.storage.pop_data(name) is None:
            continue  # another worker got there first
        task = queue.deserialize_task(base64.b64decode(lease["task"]))
        log.warning(
            "requeueing task %s (%s) of %s lost by worker %s",
            task.id, task.name, queue.name, lease["worker"],
        )  # fmt: skip
        queue.enqueue(task)
        requeued += 1
    return requeued


__all__ = ["ClubHuey", "configure_jobs", "huey", "requeue_lost_tasks"]
