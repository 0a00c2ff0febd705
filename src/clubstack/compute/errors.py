"""Typed errors of the compute service; core.web turns them into HTTP answers."""

from __future__ import annotations

from clubstack.core.errors import (
    ClubError,
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    Unavailable,
)

__all__ = [
    "CapsulNotFound",
    "ClubError",
    "ComputeError",
    "ConsoleBusy",
    "ConsoleRefused",
    "ConsolesFull",
    "HostDownError",
    "HypervisorError",
    "InputError",
    "InsufficientCredit",
    "NoRoomError",
    "WrongState",
]


class ComputeError(ClubError):
    code = "compute_error"


class HypervisorError(ComputeError):
    """``message`` is what a member may read; ``detail`` (the message unless given) is for
    operators (the admin page, the CLI, logs): it may name the host's libvirt URI, which for
    a remote host holds its SSH login, address and key file, and the transport's own error."""

    status = 502
    code = "hypervisor_error"
    message = "The virtual machine host refused the request."

    def __init__(self, message: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or self.message
        self.args = (self.detail,)  # str(), tracebacks and job logs carry the detail


class HostDownError(HypervisorError, Unavailable):
    status = 503
    code = "host_down"
    message = "The virtual machine host does not answer."


class InsufficientCredit(ComputeError):
    status = 402
    code = "insufficient_credit"
    message = "Your credit does not cover this capsul."


class NoRoomError(ComputeError, Unavailable):
    status = 503
    code = "no_room"
    message = "No host has room for this capsul right now; try a smaller plan or later."


class CapsulNotFound(NotFound):
    code = "capsul_not_found"
    message = "No such capsul."


class WrongState(Conflict):
    code = "wrong_state"


class ConsoleBusy(Conflict):
    code = "console_busy"
    message = "Someone is already on this capsul's console; close it there first."


class ConsoleRefused(Forbidden):
    """A console connection without a valid one-time ticket, or from another site."""

    code = "console_refused"
    message = "Open the console from the capsul's page."


class ConsolesFull(Unavailable):
    code = "consoles_full"
    message = "Too many consoles are open on this site right now; try again in a few minutes."
