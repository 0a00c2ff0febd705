"""A newcomer's first commands: the CLI finds its instance from any folder, refuses clearly when
there is no database, and `serve` refuses a port that is taken instead of sharing it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import clubstack
from clubstack.core.db import random_id
from clubstack.settings import clear_settings_cache, get_settings
from tests.conftest import free_port

SOURCE = Path(clubstack.__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBSTACK_")}
    env["PYTHONPATH"] = str(SOURCE)  # the subprocess runs the code under test, not another copy
    env.update(extra)
    return env


def _clubstack(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clubstack", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_setting_the_instance_is_the_checkouts_whatever_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLUBSTACK_INSTANCE", raising=False)
    monkeypatch.chdir(tmp_path)
    clear_settings_cache()
    try:
        assert get_settings().instance == SOURCE.parent / "instance"
    finally:
        clear_settings_cache()


def test_a_command_on_a_missing_database_says_what_to_do_and_creates_nothing(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "elsewhere"
    result = _clubstack(
        "admin", "add", "new@example.org", cwd=tmp_path, env=_env(CLUBSTACK_INSTANCE=str(instance))
    )
    assert result.returncode == 1
    assert "clubstack db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (instance / "clubstack.db").exists()
    assert not (tmp_path / "instance").exists()


def test_a_command_on_an_empty_database_file_refuses_too(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "clubstack.db").touch()
    result = _clubstack(
        "admin", "add", "new@example.org", cwd=tmp_path, env=_env(CLUBSTACK_INSTANCE=str(instance))
    )
    assert result.returncode == 1
    assert "clubstack db upgrade" in result.stderr
    assert "no such table" not in result.stderr


def test_serve_refuses_an_invalid_port_as_a_usage_error(tmp_path: Path) -> None:
    result = _clubstack(
        "serve", "--port", "70000", cwd=tmp_path, env=_env(CLUBSTACK_INSTANCE=str(tmp_path))
    )
    assert result.returncode == 2
    assert "70000" in result.stderr


def test_serve_refuses_a_port_that_another_program_listens_on(tmp_path: Path) -> None:
    with socket.socket() as other:
        # the way gunicorn's workers listen: a second SO_REUSEPORT socket would share it
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = _clubstack(
            "serve",
            "--port",
            str(port),
            cwd=tmp_path,
            env=_env(CLUBSTACK_INSTANCE=str(tmp_path / "instance")),
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_serve_names_its_address_and_stops_without_a_logging_error(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "clubstack", "serve", "--port", str(port), "--workers", "1"],
        cwd=tmp_path,
        env=_env(CLUBSTACK_INSTANCE=str(tmp_path / "instance")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in output
    assert "Logging error" not in output
    assert "Traceback" not in output


def test_random_ids_never_look_like_a_command_line_option() -> None:
    ids = [random_id() for _ in range(20_000)]
    assert not [value for value in ids if value.startswith("-")]
    assert all(len(value) == 22 for value in ids)
