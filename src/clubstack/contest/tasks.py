"""The contest's jobs.

Two queues. ``sandbox_huey`` (queue "clubstack-contest-sandbox") holds ``execute`` jobs: they
carry source, kind and inputs, run on sandbox nodes (`clubstack contest worker`) that share only
the job store with the site, and hand their raw answer back as a ``conclude`` job on the main
queue. ``conclude`` and the periodic jobs run on the site's own workers (`clubstack worker`),
which have the database.
"""

from __future__ import annotations

import logging
from typing import Any

from huey import crontab
from huey.storage import MemoryStorage

from clubstack.contest import challenges, judge
from clubstack.contest.models import Challenge
from clubstack.contest.settings import ContestSettings
from clubstack.core.db import session_scope
from clubstack.core.jobs import ClubHuey, huey
from clubstack.settings import Settings, get_settings, service_settings

log = logging.getLogger("clubstack.contest")
SANDBOX_QUEUE = "clubstack-contest-sandbox"

sandbox_huey = ClubHuey(SANDBOX_QUEUE, storage_class=MemoryStorage, utc=True)
_configured: tuple[Any, ...] | None = None


def sandbox_queue(settings: Settings | None = None) -> ClubHuey:
    """The sandbox queue, on the same store (Redis or the instance's SQLite) as the main one."""
    global _configured
    settings = settings or get_settings()
    key = (settings.redis_url, str(settings.instance), settings.jobs_immediate)
    if key != _configured:
        sandbox_huey.configure(settings)
        _configured = key
    return sandbox_huey


@sandbox_huey.task(retries=1, retry_delay=10, context=True, name="contest.execute")
def execute(challenge_id: int, payload: dict, task: Any = None) -> None:
    """On a sandbox node: compile and test, then queue the answer for the site."""
    progress(challenge_id, "started")
    try:
        answer = judge.execute_job(payload, on_compiled=lambda: progress(challenge_id, "compiled"))
    except Exception:
        if task is not None and task.retries > 0:
            raise  # Huey runs it once more
        log.exception("judging challenge %s failed twice", challenge_id)
        answer = {"stage": "error", "message": "the judge failed; try again later"}
    conclude(challenge_id, answer)


@huey.task(name="contest.progress")
def progress(challenge_id: int, stage: str) -> None:
    with session_scope() as session:
        challenges.record_progress(session, challenge_id, stage)


@huey.task(name="contest.conclude")
def conclude(challenge_id: int, answer: dict) -> None:
    with session_scope() as session:
        challenge = challenges.record_answer(session, challenge_id, answer,
                                             service_settings(ContestSettings))
        if challenge is not None:
            log.info("challenge %s: %s", challenge.name, challenge.status)


def enqueue(challenge: Challenge, settings: ContestSettings) -> None:
    """Queue a stored challenge for judging (call after the challenge is committed)."""
    payload = challenges.job_payload(challenge, settings)
    challenge_id = challenge.id
    sandbox_queue()
    execute(challenge_id, payload)


@huey.periodic_task(crontab(minute="*/5"), name="contest.maintenance")
def maintenance() -> tuple[int, int, int]:
    """Recompute scores; retry (once) or fail jobs whose sandbox worker died."""
    settings = service_settings(ContestSettings)
    lost: list[Challenge] = []
    with session_scope() as session:
        retried, failed = challenges.reap_lost_jobs(session, settings, lost.append)
        payloads = [(c.id, challenges.job_payload(c, settings)) for c in lost]
        scored = challenges.recompute_scores(session, settings)
    sandbox_queue()
    for challenge_id, payload in payloads:
        execute(challenge_id, payload)
    return scored, retried, failed


# The organiser's desk queues rejudges on the same two queues.
from clubstack.contest import desk_tasks  # noqa: E402, F401
