"""The generic sandbox: limits enforced while running, isolation, cleanup."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from clubstack.contest.sandbox import STARTUP, InputFile, Limits, Verdict, run, runner
from clubstack.contest.sandbox.cgroups import detect_version

pytestmark = pytest.mark.usefixtures("sandbox_ready")

PY = "/usr/bin/python3"
FAST = Limits(
    cpu_seconds=1, wall_seconds=3, memory_bytes=64 * 2**20, max_processes=16, output_bytes=64 * 1024
)


def sandbox_pids() -> set[int]:
    """Live (non-zombie) processes of the sandbox uid."""
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,uid=,stat="], capture_output=True, text=True
    ).stdout
    rows = (line.split() for line in out.splitlines())
    return {int(p) for p, u, st in rows if int(u) == 65534 and not st.startswith("Z")}


@pytest.fixture(autouse=True)
def no_leftovers():
    before = sandbox_pids()
    yield
    assert sandbox_pids() <= before, "a sandboxed process outlived its run"


def test_runs_as_unprivileged_user_with_empty_root():
    res = run([PY, "-c", "import os; print(os.getuid(), sorted(os.listdir('/')))"], limits=FAST)
    assert res.ok, res
    uid, listing = res.stdout.decode().split(" ", 1)
    assert uid == "65534"
    assert "etc" not in listing and "home" not in listing and "work" in listing


def test_files_in_and_out_and_exit_code():
    res = run(
        ["/bin/sh", "-c", "cat in.txt > out.txt; echo done; exit 3"],
        {"in.txt": b"hello"},
        limits=FAST,
        collect=["out.txt", "missing"],
    )
    assert res.verdict is Verdict.OK and res.exit_code == 3
    assert res.stdout == b"done\n"
    assert res.files == {"out.txt": b"hello"}


def test_collect_refuses_symlinks():
    res = run(["/bin/ln", "-s", "/etc/hostname", "out"], limits=FAST, collect=["out"])
    assert res.ok and res.files == {}


def test_stdin_is_delivered():
    res = run(
        [PY, "-c", "import sys; print(len(sys.stdin.buffer.read()))"],
        stdin=b"x" * 200_000,
        limits=FAST,
    )
    assert res.stdout.strip() == b"200000"


def test_secrets_of_host_are_invisible(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "secret.toml").write_text("SECRET-VALUE")
    code = (
        "import sys\n"
        f"for p in ['/etc/passwd', {str(instance / 'secret.toml')!r}, '/proc/1/environ']:\n"
        "    try: print(open(p).read())\n"
        "    except OSError as e: print('denied', p)\n"
    )
    res = run([PY, "-c", code], limits=FAST)
    assert res.ok
    assert b"SECRET-VALUE" not in res.stdout and b"root:" not in res.stdout
    assert res.stdout.count(b"denied") >= 2


def test_writes_outside_workdir_fail(tmp_path):
    target = tmp_path / "pwned"
    os.chmod(tmp_path, 0o777)
    code = (
        f"for p in [{str(target)!r}, '/tmp/clubstack-pwned', '/usr/pwned', '/work/ok']:\n"
        "    try: open(p, 'w').write('x'); print('wrote', p)\n"
        "    except OSError: print('denied', p)\n"
    )
    res = run([PY, "-c", code], limits=FAST)
    assert b"wrote /work/ok" in res.stdout
    assert not target.exists() and not Path("/usr/pwned").exists()
    assert not Path("/tmp/clubstack-pwned").exists()


def test_no_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        server.settimeout(3)
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    code = (
        "import socket\n"
        f"try: socket.create_connection(('127.0.0.1', {port}), timeout=1); print('connected')\n"
        "except OSError as e: print('refused', e)\n"
    )
    res = run([PY, "-c", code], limits=FAST)
    thread.join()
    server.close()
    assert b"refused" in res.stdout and not accepted


def test_infinite_loop_hits_cpu_limit():
    # a generous wall clock, so that a loaded machine still reaches the CPU limit first
    limits = Limits(cpu_seconds=1, wall_seconds=60, memory_bytes=64 * 2**20)
    res = run(["/bin/sh", "-c", "while :; do :; done"], limits=limits)
    assert res.verdict is Verdict.TIME_LIMIT and "CPU" in res.reason
    assert res.cpu_seconds >= 1.0


def test_sleep_hits_wall_clock():
    res = run(["/bin/sleep", "1000"], limits=Limits(cpu_seconds=1, wall_seconds=1))
    assert res.verdict is Verdict.TIME_LIMIT and "wall" in res.reason
    assert res.wall_seconds < 5


def test_memory_hog_hits_memory_limit():
    res = run([PY, "-c", "b = bytearray(200 * 2**20)"], limits=FAST)
    assert res.verdict is Verdict.MEMORY_LIMIT


def test_output_flood_is_capped():
    res = run(["/usr/bin/head", "-c", "100000000", "/dev/zero"], limits=FAST)
    assert res.verdict is Verdict.OUTPUT_LIMIT
    assert len(res.stdout) == FAST.output_bytes


def test_big_file_hits_file_size_limit():
    res = run(
        ["/bin/sh", "-c", "head -c 5000000 /dev/zero > big"],
        limits=Limits(file_bytes=2**20, cpu_seconds=2, wall_seconds=4),
    )
    assert res.verdict is Verdict.OUTPUT_LIMIT or res.exit_code != 0


@pytest.mark.skipif(detect_version() is None, reason="needs root and writable cgroups")
def test_fork_bomb_is_contained_and_fully_killed():
    bomb = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n"
    res = run([PY, "-c", bomb], limits=FAST)
    assert res.verdict in (Verdict.TIME_LIMIT, Verdict.MEMORY_LIMIT)
    # the autouse fixture checks no process survived


def test_seccomp_startup_profile_kills_forbidden_calls(static_program):
    binary = static_program(
        "int socket(int, int, int);\nint main(void) { return socket(2, 1, 0) < 0 ? 1 : 0; }\n"
    )
    res = run(
        ["/work/p"],
        {"p": InputFile(binary, 0o755)},
        toolchain=False,
        seccomp_profile=STARTUP,
        limits=FAST,
    )
    assert res.verdict is Verdict.KILLED and "system call" in res.reason
    ok = static_program("int main(void) { return 7; }\n")
    res = run(
        ["/work/p"],
        {"p": InputFile(ok, 0o755)},
        toolchain=False,
        seccomp_profile=STARTUP,
        limits=FAST,
    )
    assert res.verdict is Verdict.OK and res.exit_code == 7


def test_seccomp_refuses_executable_memory(static_program):
    binary = static_program(
        "void *mmap(void *, unsigned long, int, int, int, long);\n"
        "int main(void) { return mmap(0, 4096, 1 | 4, 0x22, -1, 0) ? 0 : 1; }\n"
    )
    res = run(
        ["/work/p"],
        {"p": InputFile(binary, 0o755)},
        toolchain=False,
        seccomp_profile=STARTUP,
        limits=FAST,
    )
    assert res.verdict is Verdict.KILLED


def test_python_fallback_when_the_launcher_cannot_be_built(monkeypatch):
    monkeypatch.setattr(runner, "launcher", lambda: None)
    res = run([PY, "-c", "import os; print(os.getuid())"], limits=FAST)
    assert res.ok and res.stdout.strip() == b"65534"
    res = run([PY, "-c", "b = bytearray(200 * 2**20)"], limits=FAST)
    assert res.verdict is Verdict.MEMORY_LIMIT


def test_a_broken_sandbox_is_an_error_not_a_verdict(monkeypatch):
    # a toolchain directory that does not exist makes bubblewrap itself fail
    monkeypatch.setattr(
        runner, "toolchain_binds", lambda: ["--ro-bind", "/nonexistent-toolchain", "/usr"]
    )
    with pytest.raises(runner.SandboxError, match="bwrap"):
        run(["/bin/true"], limits=FAST)
