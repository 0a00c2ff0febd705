"""Log files: several processes log to the same files through midnight and nothing is lost or
filed under the wrong day; logging's process-wide switches are left as Python sets them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# One logging process, as a gunicorn worker or a job worker is: it sets up clubstack's logging,
# then logs lines on command at a time the test chooses (time.time is the clock every logging
# handler reads), and says "done" once they are written.
PROCESS = r"""
import sys, time
clock = [0.0]
time.time = lambda: clock[0]
time.time_ns = lambda: int(clock[0] * 1e9)
import logging
from clubstack.core.logs import flush_logs, setup_logging
from clubstack.settings import get_settings

me = sys.argv[2]
for command in sys.stdin:
    when, label, count = command.split()
    clock[0] = float(when)
    if label == "start":
        setup_logging(get_settings(), sys.argv[1])
    for i in range(int(count)):
        logging.getLogger("clubstack.test").warning("%s %s line %d", label, me, i)
    flush_logs()
    print("done", flush=True)
"""

# Two seconds before the coming midnight (UTC): a clock that also agrees with the files' times.
DAY2 = (int(time.time()) // 86400 + 1) * 86400 + 2
DAY1 = DAY2 - 4
LINES = 20


def _date(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


def _command(processes: list[subprocess.Popen[str]], line: str) -> None:
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(line + "\n")
        process.stdin.flush()
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "done"


@pytest.mark.parametrize("name", ["web", "contest-worker"])
def test_processes_logging_through_midnight_lose_nothing_and_file_each_line_by_day(
    tmp_path: Path, name: str
) -> None:
    logs = tmp_path / "instance" / "logs"
    logs.mkdir(parents=True)
    too_old = logs / f"{name}.log.{_date(DAY1 - 2 * 86400)}"  # beyond CLUBSTACK_LOG_KEEP_DAYS=2
    kept = logs / f"{name}.log.{_date(DAY1 - 86400)}"
    too_old.write_text("old\n")
    kept.write_text("kept\n")
    env = {
        **os.environ,
        "CLUBSTACK_INSTANCE": str(tmp_path / "instance"),
        "CLUBSTACK_ENV": "development",
        "CLUBSTACK_LOG_KEEP_DAYS": "2",
    }
    names = ["p1", "p2", "p3"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, name, me],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for me in names
    ]
    try:
        _command(processes, f"{DAY1} start 0")  # every process set up before the first line
        _command(processes, f"{DAY1} day1 {LINES}")
        for process in processes:  # one after the other through midnight, then all at once
            _command([process], f"{DAY2} day2 {LINES // 2}")
        _command(processes, f"{DAY2 + 1} day2b {LINES // 2}")
    finally:
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=30)

    def messages(path: Path) -> list[str]:
        return [line.split("] ", 1)[1] for line in path.read_text().splitlines()]

    day1 = messages(logs / f"{name}.log.{_date(DAY1)}")  # yesterday's file
    today = messages(logs / f"{name}.log")  # the name operators tail: today's lines
    assert sorted(day1) == sorted(f"day1 {me} line {i}" for me in names for i in range(LINES))
    assert sorted(today) == sorted(
        f"{label} {me} line {i}" for label in ("day2", "day2b") for me in names for i in range(10)
    )
    assert messages(logs / f"{name}.log.{_date(DAY2)}") == today  # and under today's date
    assert not too_old.exists() and kept.read_text() == "kept\n"


def test_setup_leaves_process_ids_and_callers_on_records(app: Any) -> None:
    """gunicorn's own log format shows %(process)d; logging must keep filling it in."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("clubstack.test.fields")
    keep = Keep()
    logger.addHandler(keep)
    try:
        logger.warning("hello")
    finally:
        logger.removeHandler(keep)
    assert logging.Formatter("%(process)d %(funcName)s").format(records[0]) == (
        f"{os.getpid()} test_setup_leaves_process_ids_and_callers_on_records"
    )


def test_a_failure_reaches_the_file_whole_with_its_arguments_and_traceback(app: Any) -> None:
    """Records go to the writer thread as they are (not formatted and copied first): the line
    still has its arguments filled in, the traceback follows it, and the path's secret is
    masked by the filter that ran in the request."""
    from clubstack.core.logs import flush_logs
    from clubstack.core.web import secret_in_path

    @app.get("/test-failure/<token>")
    @secret_in_path("token")
    def failing(token: str) -> str:
        try:
            raise ValueError("the cause")
        except ValueError:
            logging.getLogger("clubstack.test").exception("lookup %s of %d failed", token, 7)
        return "ok"

    token = "s3cret-token-of-twenty-chars"
    assert app.test_client().get(f"/test-failure/{token}").status_code == 200
    flush_logs()
    log = (Path(app.config["CLUBSTACK"].instance) / "logs" / "web.log").read_text()
    assert f"lookup {token[:4]}… of 7 failed" in log
    assert "Traceback (most recent call last)" in log and "ValueError: the cause" in log
    assert token not in log


def test_a_batch_that_spans_midnight_goes_into_each_day_s_file(tmp_path: Path) -> None:
    """The writer holds lines back until its queue runs dry; a batch made across midnight must
    still file each line under the day it was made, not the day the batch was written."""
    from clubstack.core.logs import DailyFileHandler

    handler = DailyFileHandler(tmp_path / "web.log", keep_days=30)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for when, text in ((DAY1, "before"), (DAY1 + 1, "still before"), (DAY2, "after")):
        record = logging.LogRecord("clubstack.test", logging.WARNING, __file__, 1, text, None, None)
        record.created = when
        handler.handle(record)
    handler.flush()
    handler.close()
    assert (tmp_path / f"web.log.{_date(DAY1)}").read_text() == "before\nstill before\n"
    assert (tmp_path / f"web.log.{_date(DAY2)}").read_text() == "after\n"
