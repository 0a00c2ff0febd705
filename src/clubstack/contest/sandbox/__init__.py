"""A sandbox for untrusted programs: bubblewrap + cgroups + rlimits + seccomp.

Knows nothing of contests. One entry point: :func:`run`.
"""

from clubstack.contest.sandbox.runner import (
    InputFile,
    Limits,
    Result,
    SandboxError,
    Verdict,
    run,
)
from clubstack.contest.sandbox.seccomp import STARTUP, STRICT, Profile
from clubstack.contest.sandbox.seccomp import build as build_seccomp

__all__ = [
    "STARTUP",
    "STRICT",
    "InputFile",
    "Limits",
    "Profile",
    "Result",
    "SandboxError",
    "Verdict",
    "build_seccomp",
    "run",
]
