"""Typed errors of the contest service (mapped to HTTP statuses in one place by the core)."""

from __future__ import annotations

from clubstack.core.errors import ClubError


class ContestError(ClubError):
    status = 400
    code = "contest_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class SourceRejected(ContestError):
    """The source failed the filter, or did not compile."""

    status = 422
    code = "source_rejected"


class UnknownKind(ContestError):
    status = 422
    code = "unknown_kind"


class InvalidKey(ContestError):
    """A declared key, public key or proof of knowledge is malformed or wrong."""

    status = 422
    code = "invalid_key"


class ContestClosed(ContestError):
    """Outside the posting window (submissions) or after the final deadline (breaks)."""

    status = 403
    code = "contest_closed"


class BreakRefused(ContestError):
    """A break that may not be made: own challenge, not published, already broken by you."""

    status = 403
    code = "break_refused"


class JudgeFailed(ContestError):
    """The sandbox itself failed (not the program's fault): the job is retried."""

    status = 503
    code = "judge_failed"
