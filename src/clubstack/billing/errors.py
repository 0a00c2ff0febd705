"""Billing's typed errors; core.web maps them to HTTP answers."""

from __future__ import annotations

from clubstack.core.errors import ClubError, Conflict, NotFound, Unavailable


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    message = "That idempotency key was already used for a different entry."


class UnknownAccount(NotFound):
    code = "unknown_account"
    message = "There is no such member."


class WebhookRejected(ClubError):
    status = 400
    code = "webhook_rejected"
    message = "The webhook could not be verified."


class WebhookRetryLater(ClubError):
    """The event refers to something not recorded yet (out of order); the provider retries."""

    status = 409
    code = "retry_later"
    message = "This event arrived before the one it depends on; deliver it again later."


class ProviderDisabled(NotFound):
    code = "provider_disabled"
    message = "This payment provider is not enabled here."


class ProviderError(Unavailable):
    code = "provider_error"
    message = "The payment provider could not be reached; nothing was charged. Try again later."
