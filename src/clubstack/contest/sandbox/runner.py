"""Run one untrusted command in a bubblewrap sandbox under limits.

Layers, outermost first:
1. a control group per run (memory incl. tmpfs pages, pids, CPU accounting, kill-all);
2. rlimits (CPU seconds per process, file size, core 0, stack) set in the forked child;
3. an unprivileged uid: the child drops to ``uid``/``gid`` (default 65534) *before* it executes
   bubblewrap, so nothing of the run ever holds a host-root credential, not even in a user
   namespace;
4. bubblewrap: new user/pid/net/ipc/uts/cgroup/mount namespaces, an empty root with only the
   read-only toolchain (``/usr``) when asked for, a fresh size-limited tmpfs as ``/work``,
   a clean environment, ``--die-with-parent``;
5. optionally a seccomp allow-list from ``execve`` on (see seccomp.py).

The supervisor polls the run's pipes, its cgroup CPU time and the wall clock, and kills the
whole cgroup when a limit is crossed: limits are enforced while the program runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import functools
import hashlib
import math
import os
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clubstack.contest.sandbox import seccomp
from clubstack.contest.sandbox.cgroups import RunCgroup, detect_version

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
SANDBOX_UID = 65534
SANDBOX_GID = 65534
WORKDIR = "/work"

_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2


class Verdict(enum.StrEnum):
    OK = "ok"  # ended by itself (look at exit_code)
    TIME_LIMIT = "time_limit"  # CPU or wall clock
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"  # stdout/stderr cap or file size limit
    CRASHED = "crashed"  # died of its own signal (SIGSEGV, SIGABRT, SIGFPE ...)
    KILLED = "killed"  # killed by policy: forbidden system call (SIGSYS) or SIGKILL


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the program's fault)."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: float = 10.0
    wall_seconds: float = 20.0
    memory_bytes: int = 256 * 2**20
    max_processes: int = 64
    output_bytes: int = 1 * 2**20  # per stream, stdout and stderr each
    file_bytes: int = 64 * 2**20  # RLIMIT_FSIZE: largest file the program may write
    disk_bytes: int = 128 * 2**20  # size of the tmpfs work dir


@dataclass(frozen=True)
class InputFile:
    data: bytes
    mode: int = 0o644


@dataclass
class Result:
    verdict: Verdict
    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    cpu_seconds: float
    peak_memory: int
    wall_seconds: float
    reason: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    cgroup_version: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK and self.exit_code == 0


def toolchain_binds() -> list[str]:
    """Read-only binds of the host toolchain: /usr plus the merged-/usr symlinks."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(path: str, size: int, uid: int, gid: int) -> bool:
    opts = f"size={size},mode=0700,uid={uid},gid={gid}".encode()
    rc = _libc().mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts)
    return rc == 0


def _umount(path: str) -> None:
    _libc().umount2(path.encode(), _MNT_DETACH)


def _read_regular(path: Path, cap: int) -> bytes | None:
    """Read a file the sandbox left, refusing symlinks and non-regular files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(cap + 1)[:cap]
    finally:
        os.close(fd)


LAUNCH_SOURCE = Path(__file__).with_name("launch.c")


@functools.cache
def launcher() -> str | None:
    """The small C launcher (launch.c), compiled at first use; None if it cannot be built.

    Kept in a private cache directory owned by this user (it runs as root before dropping
    privileges, so nobody else may be able to replace it).
    """
    source = LAUNCH_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache = Path(
        os.environ.get(
            "CLUBSTACK_SANDBOX_CACHE",
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "clubstack",
        )
    )
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = cache.stat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            cache = Path(tempfile.mkdtemp(prefix="clubstack-launch-"))
        target = cache / f"sandbox-launch-{digest}"
        if not target.exists():
            partial = cache / f".{target.name}.{uuid.uuid4().hex}"  # threads may race
            subprocess.run(
                ["gcc", "-O2", "-static", "-o", str(partial), str(LAUNCH_SOURCE)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            os.replace(partial, target)
        return str(target)
    except (OSError, subprocess.SubprocessError):
        return None


def _launch_prefix(
    exe: str,
    procs_files: list[str],
    rlimits: list[tuple[int, int, int]],
    uid: int | None,
    gid: int | None,
) -> list[str]:
    args = [exe, str(len(procs_files)), *procs_files, str(len(rlimits))]
    for res, soft, hard in rlimits:
        args += [str(res), str(soft), str(hard)]
    args += [str(-1 if uid is None else uid), str(-1 if gid is None else gid), "--"]
    return args


def _child_setup(
    procs_files: list[str], rlimits: list[tuple[int, int, int]], uid: int | None, gid: int | None
):
    def setup() -> None:
        pid = str(os.getpid()).encode()
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, pid)
            os.close(fd)
        for res, soft, hard in rlimits:
            resource.setrlimit(res, (soft, hard))
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)

    return setup


def run(
    argv: Sequence[str],
    files: Mapping[str, bytes | InputFile] | None = None,
    stdin: bytes = b"",
    limits: Limits | None = None,
    *,
    toolchain: bool = True,
    seccomp_profile: seccomp.Profile | None = None,
    collect: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    uid: int = SANDBOX_UID,
    gid: int = SANDBOX_GID,
) -> Result:
    """Run ``argv`` inside a fresh sandbox with ``files`` in its work dir (``/work``).

    ``collect`` names work-dir files to return (regular files only, at most ``file_bytes``).
    ``toolchain=False`` binds no host directory at all (for static test binaries).
    """
    limits = limits or Limits()
    files = files or {}
    is_root = os.geteuid() == 0
    cg_version = detect_version()
    cgroup = RunCgroup(limits.memory_bytes, limits.max_processes) if cg_version else None
    host_dir = tempfile.mkdtemp(prefix="clubstack-sbx-")
    mounted = False
    seccomp_r: int | None = None
    try:
        if is_root:
            mounted = _mount_tmpfs(host_dir, limits.disk_bytes, uid, gid)
            if not mounted:
                os.chown(host_dir, uid, gid)
        for name, content in files.items():
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"bad sandbox file name {name!r}")
            item = content if isinstance(content, InputFile) else InputFile(content)
            path = os.path.join(host_dir, name)
            with open(path, "wb") as fh:
                fh.write(item.data)
            os.chmod(path, item.mode)

        cpu_soft = max(1, math.ceil(limits.cpu_seconds))
        rlimits = [
            (resource.RLIMIT_CPU, cpu_soft + 1, cpu_soft + 2),
            (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_NOFILE, 256, 256),
        ]
        if cgroup is None:  # no cgroup: fall back to per-process rlimits only
            rlimits.append((resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes))
            rlimits.append((resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes))

        cmd = [
            BWRAP,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            WORKDIR,
            "--setenv",
            "TMPDIR",
            WORKDIR,
            "--setenv",
            "LC_ALL",
            "C",
        ]
        for key, value in (env or {}).items():
            cmd += ["--setenv", key, value]
        if toolchain:
            cmd += [*toolchain_binds(), "--proc", "/proc", "--dev", "/dev"]
        cmd += ["--bind", host_dir, WORKDIR, "--chdir", WORKDIR]
        pass_fds: tuple[int, ...] = ()
        if seccomp_profile is not None:
            program = seccomp.build(seccomp_profile)
            seccomp_r, seccomp_w = os.pipe()
            os.write(seccomp_w, program)
            os.close(seccomp_w)
            cmd += ["--seccomp", str(seccomp_r)]
            pass_fds = (seccomp_r,)
        cmd += ["--", *argv]

        stdin_fd = os.memfd_create("sandbox-stdin")
        os.write(stdin_fd, stdin)
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        procs = cgroup.procs_files if cgroup else []
        drop_uid = uid if is_root else None
        drop_gid = gid if is_root else None
        exe = launcher()
        setup = None
        if exe is not None:  # spawn with vfork; the launcher does the setup
            cmd = _launch_prefix(exe, procs, rlimits, drop_uid, drop_gid) + cmd
        else:
            setup = _child_setup(procs, rlimits, drop_uid, drop_gid)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=stdin_fd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=setup,
                pass_fds=pass_fds,
                start_new_session=True,
                cwd="/",
            )
        except OSError as exc:
            raise SandboxError(f"cannot start bubblewrap: {exc}") from exc
        finally:
            os.close(stdin_fd)
            if seccomp_r is not None:
                os.close(seccomp_r)
                seccomp_r = None
        outcome = _supervise(proc, cgroup, limits, start)
        wall = time.monotonic() - start

        cpu = cgroup.cpu_seconds() if cgroup else _children_cpu()
        peak = cgroup.peak_memory() if cgroup else 0
        rc = proc.returncode
        exit_code: int | None = None
        sig: int | None = None
        if rc is not None and rc < 0:
            sig = -rc  # bubblewrap itself was signalled (we killed it)
        elif rc is not None and rc > 128:
            sig = rc - 128  # bubblewrap reports a signalled child as 128 + signal
        else:
            exit_code = rc
        if not outcome.killed_by_us and _setup_failed(exit_code, outcome.stderr):
            raise SandboxError(bytes(outcome.stderr[:2000]).decode("utf-8", "replace").strip())
        verdict, reason = _classify(outcome, sig, cgroup, cpu, limits)
        collected: dict[str, bytes] = {}
        for name in collect:
            data = _read_regular(Path(host_dir) / name, limits.file_bytes)
            if data is not None:
                collected[name] = data
        return Result(
            verdict=verdict,
            exit_code=exit_code,
            signal=sig,
            stdout=bytes(outcome.stdout),
            stderr=bytes(outcome.stderr),
            cpu_seconds=cpu,
            peak_memory=peak,
            wall_seconds=wall,
            reason=reason,
            files=collected,
            cgroup_version=cg_version,
        )
    finally:
        if seccomp_r is not None:
            os.close(seccomp_r)
        if cgroup is not None:
            cgroup.kill_all()
        if mounted:
            _umount(host_dir)
        shutil.rmtree(host_dir, ignore_errors=True)
        if cgroup is not None:
            cgroup.remove()


def _setup_failed(exit_code: int | None, stderr: bytearray) -> bool:
    """bubblewrap or the launcher failed before running the program (not its fault)."""
    return (exit_code == 1 and stderr.startswith(b"bwrap: ")) or (
        exit_code == 127 and stderr.startswith(b"launch: ")
    )


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime  # cumulative; only a rough fallback without cgroups


@dataclass
class _Outcome:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    output_exceeded: bool = False
    cpu_exceeded: bool = False
    wall_exceeded: bool = False

    @property
    def killed_by_us(self) -> bool:
        return self.output_exceeded or self.cpu_exceeded or self.wall_exceeded


def _kill(proc: subprocess.Popen[bytes], cgroup: RunCgroup | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill_all()


def _supervise(
    proc: subprocess.Popen[bytes], cgroup: RunCgroup | None, limits: Limits, start: float
) -> _Outcome:
    out = _Outcome()
    assert proc.stdout is not None and proc.stderr is not None
    bufs = {proc.stdout.fileno(): out.stdout, proc.stderr.fileno(): out.stderr}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    deadline = start + limits.wall_seconds
    killed = False
    try:
        while True:
            now = time.monotonic()
            if not killed and now >= deadline:
                out.wall_exceeded = True
                _kill(proc, cgroup)
                killed = True
            if not sel.get_map():
                break
            timeout = max(0.0, min(0.05, deadline - now)) if not killed else 0.05
            for key, _ in sel.select(timeout):
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fd)
                    continue
                buf = bufs[key.fd]
                room = limits.output_bytes - len(buf)
                buf += data[: max(0, room)]
                if len(data) > room and not killed:
                    out.output_exceeded = True
                    _kill(proc, cgroup)
                    killed = True
            if cgroup is not None and not killed and cgroup.cpu_seconds() > limits.cpu_seconds:
                out.cpu_exceeded = True
                _kill(proc, cgroup)
                killed = True
            if killed and time.monotonic() > deadline + 5:
                break  # pipes held open by something outside our reach: give up reading
        remaining = max(0.1, deadline - time.monotonic()) if not killed else 5.0
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            out.wall_exceeded = True
            _kill(proc, cgroup)
            proc.wait(timeout=5)
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return out


def _classify(
    out: _Outcome, sig: int | None, cgroup: RunCgroup | None, cpu: float, limits: Limits
) -> tuple[Verdict, str]:
    if out.output_exceeded:
        return Verdict.OUTPUT_LIMIT, f"more than {limits.output_bytes} bytes of output"
    if out.cpu_exceeded or sig == signal.SIGXCPU or cpu > limits.cpu_seconds:
        return Verdict.TIME_LIMIT, f"more than {limits.cpu_seconds:g} s of CPU time"
    if out.wall_exceeded:
        return Verdict.TIME_LIMIT, f"more than {limits.wall_seconds:g} s of wall-clock time"
    if cgroup is not None and (
        cgroup.oom_killed() or (sig == signal.SIGKILL and cgroup.memory_limit_hit())
    ):
        return Verdict.MEMORY_LIMIT, f"more than {limits.memory_bytes} bytes of memory"
    if sig == signal.SIGXFSZ:
        return Verdict.OUTPUT_LIMIT, f"a file larger than {limits.file_bytes} bytes"
    if sig == signal.SIGSYS:
        return Verdict.KILLED, "forbidden system call"
    if sig == signal.SIGKILL:
        return Verdict.KILLED, "killed"
    if sig is not None:
        return Verdict.CRASHED, f"killed by signal {signal.Signals(sig).name}"
    return Verdict.OK, ""
