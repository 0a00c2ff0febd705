"""The contest's jobs.

Three queues on the same store (Redis, or the instance's SQLite):
- "clubstack-contest-sandbox" holds ``execute`` jobs: source, kind and inputs. Sandbox nodes
  (`clubstack contest worker`) run them and share only the job store with the site;
- "clubstack-contest-answers" carries their ``progress`` and ``conclude`` messages back. The
  site's `clubstack worker` drains it in one thread of its own (started with the consumer);
- the main queue keeps the periodic ``maintenance``.
Both contest queues carry JSON, checked when read (queue.py): no pickle crosses between a
sandbox node and the site.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from huey import crontab
from huey.storage import MemoryStorage

from clubstack.contest import challenges, judge, queue
from clubstack.contest.models import Challenge
from clubstack.contest.settings import ContestSettings
from clubstack.core.db import session_scope
from clubstack.core.jobs import ClubHuey, huey
from clubstack.settings import Settings, get_settings, service_settings

log = logging.getLogger("clubstack.contest")
SANDBOX_QUEUE = "clubstack-contest-sandbox"
ANSWERS_QUEUE = "clubstack-contest-answers"

_NAME = f"{__name__}.contest."  # Huey names a message after the task's module and name
_DESK = "clubstack.contest.desk_tasks.contest."  # the organisers' rejudge jobs
sandbox_huey = ClubHuey(
    SANDBOX_QUEUE,
    storage_class=MemoryStorage,
    utc=True,
    serializer=queue.JsonSerializer(
        {_NAME + "execute": queue.check_execute, _DESK + "rejudge_execute": queue.check_execute}
    ),
)
answers_huey = ClubHuey(
    ANSWERS_QUEUE,
    storage_class=MemoryStorage,
    utc=True,
    serializer=queue.JsonSerializer(
        {
            _NAME + "progress": queue.check_progress,
            _NAME + "conclude": queue.check_conclude,
            _DESK + "rejudge_conclude": queue.check_conclude,
        }
    ),
)
_configured: tuple[Any, ...] | None = None


def sandbox_queue(settings: Settings | None = None) -> ClubHuey:
    """The sandbox queue (and the answers queue), on the same store as the main one."""
    global _configured
    settings = settings or get_settings()
    key = (settings.redis_url, str(settings.instance), settings.jobs_immediate)
    if key != _configured:
        sandbox_huey.configure(settings)
        answers_huey.configure(settings)
        _configured = key
    return sandbox_huey


def answers_queue(settings: Settings | None = None) -> ClubHuey:
    sandbox_queue(settings)
    return answers_huey


def drain_answers(limit: int = 100) -> int:
    """Run the sandbox nodes' answers waiting on the answers queue; returns how many."""
    answers = answers_queue()
    done = 0
    while done < limit:
        try:
            task = answers.dequeue()
        except queue.InvalidMessage as exc:
            log.warning("refused a message on %s: %s", ANSWERS_QUEUE, exc)
            done += 1
            continue
        if task is None:
            break
        answers.execute(task)
        done += 1
    return done


_drainer_lock = threading.Lock()
_drainer: threading.Thread | None = None
_stop = threading.Event()


def _drain_forever(stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            if drain_answers() == 0:
                stop.wait(0.2)
        except Exception:  # the store was unreachable a moment: keep the thread alive
            log.exception("draining %s failed", ANSWERS_QUEUE)
            stop.wait(2)


@huey.on_startup()
def start_answer_drain() -> None:
    """One thread per site worker process reads the answers queue (not the main consumer:
    Huey reads one queue per consumer, and this one must not be pickled)."""
    global _drainer
    if huey.immediate:
        return
    with _drainer_lock:
        if _drainer is None or not _drainer.is_alive():
            _stop.clear()
            _drainer = threading.Thread(
                target=_drain_forever, args=(_stop,), name="contest-answers", daemon=True
            )
            _drainer.start()


def stop_answer_drain(timeout: float = 5.0) -> None:
    with _drainer_lock:
        _stop.set()
        if _drainer is not None:
            _drainer.join(timeout)


@sandbox_huey.task(retries=1, retry_delay=10, context=True, name="contest.execute")
def execute(challenge_id: int, payload: dict, task: Any = None) -> None:
    """On a sandbox node: compile and test, then queue the answer for the site."""
    answers_queue()
    progress(challenge_id, "started")
    try:
        answer = judge.execute_job(payload, on_compiled=lambda: progress(challenge_id, "compiled"))
    except Exception:
        if task is not None and task.retries > 0:
            raise  # Huey runs it once more
        log.exception("judging challenge %s failed twice", challenge_id)
        answer = {"stage": "error", "message": "the judge failed; try again later"}
    conclude(challenge_id, answer)


@answers_huey.task(name="contest.progress")
def progress(challenge_id: int, stage: str) -> None:
    with session_scope() as session:
        challenges.record_progress(session, challenge_id, stage)


@answers_huey.task(name="contest.conclude")
def conclude(challenge_id: int, answer: dict) -> None:
    answer = queue.validate_answer(answer)
    settings = service_settings(ContestSettings)
    with session_scope() as session:
        challenge = challenges.record_answer(session, challenge_id, answer, settings)
        if challenge is not None:
            log.info("challenge %s: %s", challenge.name, challenge.status)
        following = (
            challenges.release_next(session, challenge.owner_id) if challenge is not None else None
        )
        payload = challenges.job_payload(following, settings) if following else None
        following_id = following.id if following else None
    if following_id is not None and payload is not None:
        sandbox_queue()
        execute(following_id, payload)


def enqueue(challenge: Challenge, settings: ContestSettings) -> None:
    """Queue a stored challenge for judging (call after the challenge is committed).

    Fair to members: a member has at most one submission on the sandbox queue; the others
    wait (``queued_at`` unset) and go on the queue one by one as the previous one concludes,
    so one account's burst cannot starve everyone else's.
    """
    if challenge.queued_at is None:
        return
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
        lost.extend(challenges.release_waiting(session))
        payloads = [(c.id, challenges.job_payload(c, settings)) for c in lost]
        scored = challenges.recompute_scores(session, settings)
    sandbox_queue()
    for challenge_id, payload in payloads:
        execute(challenge_id, payload)
    return scored, retried, failed


# The organiser's desk queues rejudges on the same two queues.
from clubstack.contest import desk_tasks  # noqa: E402, F401
