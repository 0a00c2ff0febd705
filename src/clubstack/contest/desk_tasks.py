"""Rejudge jobs: the same sandbox queue and the same JSON payload as a submission, but the
answer goes to the rejudge log (desk.record_rejudge) instead of the submission's verdict."""

from __future__ import annotations

import logging
from typing import Any

from clubstack.contest import desk, judge, queue
from clubstack.contest.settings import ContestSettings
from clubstack.contest.tasks import answers_huey, answers_queue, sandbox_huey, sandbox_queue
from clubstack.core.db import session_scope
from clubstack.settings import service_settings

log = logging.getLogger("clubstack.contest")


@sandbox_huey.task(retries=1, retry_delay=10, context=True, name="contest.rejudge_execute")
def rejudge_execute(item_id: int, payload: dict, task: Any = None) -> None:
    """On a sandbox node: compile and test again, then queue the answer for the site."""
    answers_queue()
    try:
        answer = judge.execute_job(payload)
    except Exception:
        if task is not None and task.retries > 0:
            raise
        log.exception("rejudging item %s failed twice", item_id)
        answer = {"stage": "error", "message": "the judge failed"}
    rejudge_conclude(item_id, answer)


# on the JSON answers queue, like a submission's answer (tasks.py, queue.py)
@answers_huey.task(name="contest.rejudge_conclude")
def rejudge_conclude(item_id: int, answer: dict) -> None:
    answer = queue.validate_answer(answer)
    with session_scope() as session:
        item = desk.record_rejudge(session, item_id, answer, service_settings(ContestSettings))
        if item is not None:
            log.info("rejudged %s: %s -> %s", item.challenge_name, item.old_status, item.new_status)


def enqueue_rejudge(jobs: list[tuple[int, dict]]) -> None:
    """Queue a committed rejudge's jobs (desk.payloads) on the sandbox queue."""
    sandbox_queue()
    for item_id, payload in jobs:
        rejudge_execute(item_id, payload)
