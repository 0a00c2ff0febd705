"""A sandbox node killed mid-run: its job is leased (as JSON) and taken back at the next start."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from clubstack.contest import judge, tasks
from clubstack.contest.kinds import KINDS, ContestLimits
from clubstack.core import jobs
from clubstack.settings import Settings, clear_settings_cache

from .conftest import SAMPLES


@pytest.fixture
def sandbox_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> jobs.ClubHuey:
    monkeypatch.setenv("CLUBSTACK_INSTANCE", str(tmp_path))
    monkeypatch.delenv("CLUBSTACK_REDIS_URL", raising=False)
    clear_settings_cache()
    monkeypatch.setattr(tasks, "_configured", None)
    queue = tasks.sandbox_queue(Settings(instance=tmp_path))
    yield queue
    monkeypatch.setattr(tasks, "_configured", None)
    clear_settings_cache()


def _dead_worker() -> str:
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def test_job_of_a_dead_sandbox_node_is_requeued(
    sandbox_queue: jobs.ClubHuey, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = judge.make_payload(
        KINDS["aes"], (SAMPLES / "aes.c").read_text(), [bytes(16)], ContestLimits()
    )
    task = tasks.execute.s(7, payload)
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "_WORKER", _dead_worker())
        sandbox_queue._take_lease(task)  # what the node did before it died mid-run
    raw = sandbox_queue.storage.peek_data(jobs.LEASE_PREFIX + task.id)
    lease = json.loads(raw)  # JSON, never a pickle, on the sandbox's queue
    assert set(lease) == {"worker", "since", "task"}
    assert sandbox_queue.pending_count() == 0

    assert jobs.requeue_lost_tasks(sandbox_queue) == 1
    (again,) = sandbox_queue.pending()
    assert again.name == task.name and again.args == (7, payload)
    assert jobs.requeue_lost_tasks(sandbox_queue) == 0  # requeued once, not twice


def test_job_of_a_live_sandbox_node_stays_leased(sandbox_queue: jobs.ClubHuey) -> None:
    payload = judge.make_payload(
        KINDS["aes"], (SAMPLES / "aes.c").read_text(), [bytes(16)], ContestLimits()
    )
    task = tasks.execute.s(8, payload)
    sandbox_queue._take_lease(task)  # this very process holds it
    assert jobs.requeue_lost_tasks(sandbox_queue) == 0
    sandbox_queue._drop_lease(task, None, None)
    assert not sandbox_queue.storage.result_items()


def test_unreadable_lease_is_dropped_unread(sandbox_queue: jobs.ClubHuey) -> None:
    sandbox_queue.storage.put_data(jobs.LEASE_PREFIX + "old", b"\x80\x04not json")
    assert jobs.requeue_lost_tasks(sandbox_queue) == 0
    assert jobs.LEASE_PREFIX + "old" not in {
        k.decode() if isinstance(k, bytes) else k for k in sandbox_queue.storage.result_items()
    }
