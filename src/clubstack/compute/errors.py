"""Typed errors of the compute service."""

from __future__ import annotations


class ComputeError(Exception):
    """Base of compute errors; status is the HTTP status the one error handler uses."""

    status = 400
    code = "compute_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HypervisorError(ComputeError):
    status = 502
    code = "hypervisor_error"


class HostUnavailable(HypervisorError):
    status = 503
    code = "host_unavailable"
