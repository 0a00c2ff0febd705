"""Seccomp allow-lists as classic BPF programs, built here in pure Python.

Why by hand and not libseccomp: the filters are short allow-lists (a few dozen syscalls, two
of them with an argument check), the host has only the libseccomp runtime (no headers) and
the Python bindings on PyPI are unmaintained. A cBPF program for seccomp is a plain array of
8-byte instructions whose format is fixed kernel ABI, so building it is ~60 lines we can test
directly (tests/contest/test_sandbox.py runs forbidden calls and checks the SIGSYS).

Two profiles exist:
- ``STARTUP`` is handed to bubblewrap (``--seccomp FD``) and applies from the ``execve`` of
  the program on: what a *statically linked* glibc program needs to start, plus the ``seccomp``
  call itself so the program can tighten the filter further.
- ``STRICT`` is what the contest harness installs in each per-call child before the call of
  untrusted code: read, write, memory (never executable), clock_gettime, exit. Not setitimer:
  the child's CPU and wall-clock timers cannot be disarmed.
Filters stack in the kernel, so after the harness installs ``STRICT`` the intersection holds.
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass
from functools import cache

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

RET_KILL_PROCESS = 0x80000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
PROT_EXEC = 0x4

# seccomp_data offsets
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index  # little-endian: low 32 bits first


SYSCALLS_X86_64: dict[str, int] = {
    "read": 0,
    "write": 1,
    "close": 3,
    "fstat": 5,
    "lseek": 8,
    "mmap": 9,
    "mprotect": 10,
    "munmap": 11,
    "brk": 12,
    "rt_sigaction": 13,
    "rt_sigprocmask": 14,
    "rt_sigreturn": 15,
    "ioctl": 16,
    "mremap": 25,
    "madvise": 28,
    "dup2": 33,
    "setitimer": 38,
    "getpid": 39,
    "fork": 57,
    "execve": 59,
    "exit": 60,
    "kill": 62,
    "uname": 63,
    "readlink": 89,
    "getrusage": 98,
    "arch_prctl": 158,
    "gettid": 186,
    "futex": 202,
    "set_tid_address": 218,
    "clock_gettime": 228,
    "exit_group": 231,
    "tgkill": 234,
    "newfstatat": 262,
    "readlinkat": 267,
    "set_robust_list": 273,
    "prlimit64": 302,
    "pipe2": 293,
    "wait4": 61,
    "seccomp": 317,
    "getrandom": 318,
    "rseq": 334,
}

# Syscalls whose third argument is a PROT_* mask: allowed only without PROT_EXEC, so no code
# can be created at run time.
_NO_EXEC_PROT = {"mmap", "mprotect"}


class SeccompUnsupported(RuntimeError):
    """No syscall table for this machine's architecture."""


@dataclass(frozen=True)
class Profile:
    name: str
    allow: tuple[str, ...]


STRICT = Profile(
    "strict",
    (
        "read",
        "write",
        "brk",
        "mmap",
        "munmap",
        "mremap",
        "madvise",
        "exit",
        "exit_group",
        "clock_gettime",
        "rt_sigreturn",
    ),
)

STARTUP = Profile(
    "startup",
    (
        *STRICT.allow,
        "execve",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "readlink",
        "readlinkat",
        "getrandom",
        "mprotect",
        "fstat",
        "newfstatat",
        "ioctl",
        "lseek",
        "seccomp",
        "futex",
        "getpid",
        "gettid",
        "tgkill",
        "rt_sigprocmask",
        "rt_sigaction",
        "uname",
        # the harness's parent: one child per call (fork, a pipe for its output, its two
        # timers, wait4 for the kernel's figures, kill for a child that floods the pipe)
        "fork",
        "pipe2",
        "dup2",
        "close",
        "kill",
        "setitimer",
        "getrusage",
        # bubblewrap's pid-1 init runs under the same filter: it only waits and exits.
        "wait4",
    ),
)


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


@cache
def build(profile: Profile, default: int = RET_KILL_PROCESS) -> bytes:
    """The cBPF program (struct sock_filter[]) for ``profile`` on this machine."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise SeccompUnsupported(f"no seccomp syscall table for {platform.machine()}")
    table = SYSCALLS_X86_64
    prog = [
        _ins(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _ins(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _ins(_RET_K, 0, 0, RET_KILL_PROCESS),
        _ins(_LD_W_ABS, 0, 0, _OFF_NR),
        _ins(_JGE_K, 0, 1, X32_SYSCALL_BIT),
        _ins(_RET_K, 0, 0, RET_KILL_PROCESS),
    ]
    for name in dict.fromkeys(profile.allow):
        nr = table[name]
        if name in _NO_EXEC_PROT:
            # nr matches: load prot, kill if PROT_EXEC, else allow. Otherwise skip the 4
            # instructions with A (the syscall number) untouched.
            prog.append(_ins(_JEQ_K, 0, 4, nr))
            prog.append(_ins(_LD_W_ABS, 0, 0, _arg_low(2)))
            prog.append(_ins(_JSET_K, 0, 1, PROT_EXEC))
            prog.append(_ins(_RET_K, 0, 0, RET_KILL_PROCESS))
            prog.append(_ins(_RET_K, 0, 0, RET_ALLOW))
        else:
            prog.append(_ins(_JEQ_K, 0, 1, nr))
            prog.append(_ins(_RET_K, 0, 0, RET_ALLOW))
    prog.append(_ins(_RET_K, 0, 0, default))
    return b"".join(prog)
