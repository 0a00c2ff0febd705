"""The drop's typed errors; core.web maps them to HTTP answers (JSON unless a browser asks for
a page, see clubstack.drop.views.errors_as_json)."""

from __future__ import annotations

from clubstack.core.errors import ClubError, InputError, NotFound, TooLarge, Unavailable


class MessageNotFound(NotFound):
    """One answer for missing, expired, burned, malformed, or wrong delete token."""

    code = "not_found"
    message = "There is no message here: it never existed, expired, or was already read."


class MessageTooLarge(TooLarge):
    code = "message_too_large"


class BodyError(InputError):
    """The body is not something we can read (not JSON, not UTF-8, wrong content type)."""

    code = "invalid_body"


class StoreUnavailable(Unavailable):
    code = "store_unavailable"
    message = "The message store is unreachable; try again in a moment."


class WrongMethod(ClubError):
    """A method the address does not take. Every drop route accepts every method and raises
    this itself, so an API client gets the JSON answer (routing's own 405 gets the core's)."""

    status = 405
    code = "method_not_allowed"
    message = "This address does not accept that."

    def __init__(self, allowed: list[str]) -> None:
        super().__init__()
        self.headers = {"Allow": ", ".join(allowed)}
