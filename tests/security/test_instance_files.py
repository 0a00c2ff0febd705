"""The instance folder holds the databases, the job queue, the logs, the generated secret key
and (in development) the outbox of mails with live login links. Started under the common umask
022 (a shell, a systemd unit without UMask=, a container), the real CLI and server must still
leave nothing in it that another local user can read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.security.conftest import Visitor

CLUBSTACK = str(Path(sys.executable).with_name("clubstack"))


def _env(instance: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBSTACK_")}
    env.update(
        CLUBSTACK_INSTANCE=str(instance),
        CLUBSTACK_BASE_URL=f"http://127.0.0.1:{port}",
        CLUBSTACK_JOBS_IMMEDIATE="false",
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [CLUBSTACK, *args], env=env, umask=0o022, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def served_instance(tmp_path: Path) -> Iterator[Path]:
    """A fresh instance, made by `clubstack db upgrade`, `admin add` and `serve` under umask 022,
    after a visitor asked for a login link (a mail in the outbox, lines in the log); the server
    is still running."""
    instance = tmp_path / "instance"
    port = free_port()
    env = _env(instance, port)
    _run(["db", "upgrade"], env)
    _run(["admin", "add", "root@example.org"], env)
    server = subprocess.Popen(
        [CLUBSTACK, "serve", "--port", str(port), "--workers", "1", "--threads", "2"],
        env=env,
        umask=0o022,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        visitor = Visitor(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 120
        while True:
            try:
                if visitor.get("/healthz", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # still booting
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        answer = visitor.post(
            "/login", data={"email": "alice@example.org", "csrf_token": visitor.csrf("/login")}
        )
        assert answer.status_code == 200, answer.text
        time.sleep(0.3)  # the log writer batches lines
        yield instance  # while it runs: SQLite's -wal and -shm files exist only then
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_every_file_the_app_made_is_private(served_instance: Path) -> None:
    made = [served_instance, *served_instance.rglob("*")]
    names = {p.relative_to(served_instance).as_posix() for p in made}
    # the files that matter are really there, so the check below covers them
    for expected in ("clubstack.db", "jobs.db", "secret_key", "logs/web.log"):
        assert expected in names, f"{expected} was not made: {sorted(names)}"
    assert any(n.startswith("outbox/") and n.endswith(".eml") for n in names), sorted(names)
    assert any(n.endswith("-wal") for n in names), sorted(names)

    readable = []
    for path in made:
        if path.is_symlink():  # logs/web.log points at today's file; a link has no mode of its own
            assert path.resolve().parent == path.parent, f"{path} points outside its folder"
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            readable.append(f"{path.relative_to(served_instance.parent)} {mode:o}")
    assert readable == [], "files open to other users:\n" + "\n".join(readable)
