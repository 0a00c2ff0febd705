"""Typed errors, raised where they arise; core.web turns them into HTTP answers in one place."""

from __future__ import annotations


class ClubError(Exception):
    """An error a user can be told about. `status` is the HTTP status it maps to."""

    status = 400
    code = "bad_request"
    message = "The request could not be processed."
    headers: dict[str, str] = {}  # extra response headers (read-only here; instances set theirs)

    def __init__(self, message: str | None = None, **details: object) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        return {"error": self.code, "message": self.message, **self.details}


class InputError(ClubError):
    """Bad input; `fields` maps each field name to what is wrong with it."""

    code = "invalid_input"
    message = "Some fields are not valid."

    def __init__(self, message: str | None = None, fields: dict[str, str] | None = None) -> None:
        super().__init__(message, fields=fields or {})
        self.fields = fields or {}


class Unauthorized(ClubError):
    status = 401
    code = "unauthorized"
    message = "Log in or send a valid API token."


class Forbidden(ClubError):
    status = 403
    code = "forbidden"
    message = "You may not do that."


class NotFound(ClubError):
    status = 404
    code = "not_found"
    message = "Not found."


class Conflict(ClubError):
    status = 409
    code = "conflict"
    message = "That conflicts with the current state."


class TooLarge(ClubError):
    status = 413
    code = "too_large"
    message = "The request is too large."


class Unavailable(ClubError):
    status = 503
    code = "unavailable"
    message = "A backing service is unavailable; try again later."


class RateLimited(ClubError):
    """Too many requests from one client; the answer says when to come back (Retry-After)."""

    status = 429
    code = "rate_limited"
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}
