"""Per-run control groups: memory and pids limits, CPU and peak-memory accounting, kill-all.

Supports cgroup v2 (unified hierarchy with the memory and pids controllers) and cgroup v1
(separate memory, pids and cpuacct hierarchies). Run cgroups are created *below the cgroup
this process already lives in*, so a supervisor that itself runs inside a limited cgroup
(systemd service, container) keeps its limits over everything it starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from functools import cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT_NAME = "clubstack-sandbox"


class CgroupUnavailable(RuntimeError):
    """The host has no usable (writable) memory+pids cgroups."""


def _own_paths() -> dict[str, str]:
    """Map controller name ('' for v2) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                paths[""] = path
            for name in controllers.split(","):
                if name:
                    paths[name] = path
    return paths


def _write(path: Path | str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path | str) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _read_int(path: Path | str) -> int | None:
    try:
        return int(_read(path).split()[0])
    except (OSError, ValueError, IndexError):
        return None


@cache
def _v2_base() -> Path | None:
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if not controllers.exists():
        return None
    names = set(controllers.read_text().split())
    if not {"memory", "pids"} <= names:
        return None
    own = _own_paths().get("", "/")
    return CGROUP_ROOT / own.lstrip("/")


@cache
def _v1_bases() -> dict[str, Path] | None:
    own = _own_paths()
    bases: dict[str, Path] = {}
    for name in ("memory", "pids", "cpuacct"):
        mount = CGROUP_ROOT / name
        if not (mount / "cgroup.procs").exists():
            return None
        bases[name] = mount / own.get(name, "/").lstrip("/")
    return bases


@cache
def detect_version() -> int | None:
    """2 or 1 when run cgroups can be created here, None otherwise (looked at once)."""
    if os.geteuid() != 0:
        return None
    base = _v2_base()
    if base is not None and os.access(base, os.W_OK):
        return 2
    bases = _v1_bases()
    if bases is not None and all(os.access(p, os.W_OK) for p in bases.values()):
        return 1
    return None


class RunCgroup:
    """One cgroup (per controller on v1) for one sandbox run."""

    def __init__(self, memory_bytes: int, max_pids: int) -> None:
        self.version = detect_version()
        if self.version is None:
            raise CgroupUnavailable("no writable cgroup v1/v2 memory+pids hierarchy")
        name = uuid.uuid4().hex
        self.dirs: dict[str, Path] = {}
        if self.version == 2:
            base = _v2_base()
            assert base is not None
            parent = base / PARENT_NAME
            if not parent.is_dir():
                parent.mkdir(exist_ok=True)
            # Controllers must be enabled in the parent for its children (no internal processes
            # live in `parent`, so this is allowed).
            with contextlib.suppress(OSError):
                _write(parent / "cgroup.subtree_control", "+memory +pids")
            run = parent / name
            run.mkdir()
            self.dirs = {"memory": run, "pids": run, "cpuacct": run}
            _write(run / "memory.max", str(memory_bytes))
            with contextlib.suppress(OSError):
                _write(run / "memory.swap.max", "0")
            _write(run / "pids.max", str(max_pids))
        else:
            bases = _v1_bases()
            assert bases is not None
            for ctrl, base in bases.items():
                run = base / PARENT_NAME / name
                run.parent.mkdir(exist_ok=True)
                run.mkdir()
                self.dirs[ctrl] = run
            mem = self.dirs["memory"]
            _write(mem / "memory.limit_in_bytes", str(memory_bytes))
            with contextlib.suppress(OSError):  # no swap accounting on this kernel
                _write(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
            with contextlib.suppress(OSError):
                _write(mem / "memory.swappiness", "0")
            _write(self.dirs["pids"] / "pids.max", str(max_pids))

    @property
    def procs_files(self) -> list[str]:
        """cgroup.procs files a new process writes its pid into (each distinct dir once)."""
        seen: list[str] = []
        for d in self.dirs.values():
            path = str(d / "cgroup.procs")
            if path not in seen:
                seen.append(path)
        return seen

    def cpu_seconds(self) -> float:
        d = self.dirs["cpuacct"]
        if self.version == 2:
            try:
                for line in _read(d / "cpu.stat").splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
            except OSError:
                return 0.0
            return 0.0
        ns = _read_int(d / "cpuacct.usage")
        return (ns or 0) / 1e9

    def peak_memory(self) -> int:
        d = self.dirs["memory"]
        if self.version == 2:
            return _read_int(d / "memory.peak") or _read_int(d / "memory.current") or 0
        return _read_int(d / "memory.max_usage_in_bytes") or 0

    def oom_killed(self) -> bool:
        d = self.dirs["memory"]
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in _read(d / name).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def memory_limit_hit(self) -> bool:
        """The memory limit was reached at least once (allocation refused or OOM kill)."""
        if self.oom_killed():
            return True
        d = self.dirs["memory"]
        if self.version == 2:
            try:
                for line in _read(d / "memory.events").splitlines():
                    key, _, value = line.partition(" ")
                    if key in ("max", "oom") and int(value) > 0:
                        return True
            except (OSError, ValueError):
                return False
            return False
        return (_read_int(d / "memory.failcnt") or 0) > 0

    def pids(self) -> list[int]:
        # every process of the run joined all controllers: one list is enough
        try:
            return [int(x) for x in _read(self.dirs["memory"] / "cgroup.procs").split()]
        except OSError:
            return []

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process of the run until the cgroup is empty. True when empty."""
        kill_file = self.dirs["memory"] / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while True:
            if self.version == 2 and kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)

    def remove(self) -> None:
        for d in set(self.dirs.values()):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still busy for a moment after the last process exits
                    time.sleep(0.01)
