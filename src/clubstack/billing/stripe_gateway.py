"""Stripe: Checkout Sessions out, signature-verified webhooks in (the `stripe` library does both).

Credit comes only from `checkout.session.completed` with payment_status "paid", verified by
stripe.Webhook.construct_event within the tolerance window. Each event is handled once
(billing_webhook_events) and each session credits once (ledger key stripe:checkout:<id>),
so replays, duplicates and the member's back button cannot credit twice. Refunds and
disputes become negative entries; a dispute the club wins is credited back.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from sqlalchemy.orm import Session

from clubstack.billing import ledger
from clubstack.billing.errors import ProviderError, WebhookRejected, WebhookRetryLater
from clubstack.billing.models import Payment
from clubstack.billing.money import format_money
from clubstack.billing.payments import (
    first_delivery,
    lock_payment,
    lock_payment_by_ref,
    new_payment,
    set_outcome,
)
from clubstack.billing.settings import billing_settings
from clubstack.core.clock import utcnow
from clubstack.core.net import http
from clubstack.settings import get_settings

log = logging.getLogger("clubstack.billing.stripe")
PROVIDER = "stripe"


def client() -> stripe.StripeClient:
    """A Stripe client on the configured base URL, through the one guarded HTTP session."""
    settings = billing_settings()
    if settings.stripe_secret_key is None:
        raise ProviderError("Stripe is not configured.")
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base.rstrip("/")},
        http_client=stripe.RequestsClient(
            session=http().session, timeout=get_settings().http_timeout
        ),
        max_network_retries=2,
    )


def start_checkout(
    session: Session,
    user_id: int,
    email: str,
    amount_cents: int,
    *,
    success_url: str,
    cancel_url: str,
) -> Payment:
    """Create the payment and its Checkout Session; the member is sent to `payment.checkout_url`.

    `success_url` may contain {PAYMENT_ID}; Stripe fills in {CHECKOUT_SESSION_ID} itself.
    """
    payment = new_payment(session, user_id, PROVIDER, amount_cents)
    site = get_settings().site_name
    try:
        checkout = client().v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": payment.currency.lower(),
                            "unit_amount": amount_cents,
                            "product_data": {"name": f"{site} credit {format_money(amount_cents)}"},
                        },
                    }
                ],
                "success_url": success_url.replace("{PAYMENT_ID}", payment.id),
                "cancel_url": cancel_url.replace("{PAYMENT_ID}", payment.id),
                "client_reference_id": payment.id,
                "customer_email": email,
                "metadata": {"payment_id": payment.id, "user_id": str(user_id)},
            },
            options={"idempotency_key": f"checkout-{payment.id}"},
        )
    except stripe.StripeError as error:
        log.warning("stripe checkout creation failed: %s", error)
        raise ProviderError() from error
    payment.external_id = checkout.id
    payment.checkout_url = checkout.url
    expires = checkout.to_dict().get("expires_at")
    if isinstance(expires, int):
        from datetime import UTC, datetime

        payment.expires_at = datetime.fromtimestamp(expires, UTC)
    session.flush()
    return payment


def verify(payload: bytes, signature: str | None) -> Any:
    settings = billing_settings()
    if settings.stripe_webhook_secret is None:
        raise WebhookRejected("Stripe webhooks are not configured.")
    try:
        return stripe.Webhook.construct_event(
            payload,
            signature or "",
            settings.stripe_webhook_secret.get_secret_value(),
            tolerance=settings.stripe_webhook_tolerance,
        )
    except stripe.SignatureVerificationError as error:
        raise WebhookRejected("The Stripe signature is not valid or too old.") from error
    except ValueError as error:
        raise WebhookRejected("The webhook body is not a Stripe event.") from error


def handle_webhook(session: Session, payload: bytes, signature: str | None) -> str:
    """Verify and apply one webhook delivery; returns what was done (for logs and tests)."""
    event = verify(payload, signature)
    kind = str(event.type)
    if not first_delivery(session, PROVIDER, str(event.id), kind):
        return "duplicate"
    obj = event.to_dict()["data"]["object"]
    handler = HANDLERS.get(kind)
    outcome = handler(session, obj) if handler else "ignored"
    set_outcome(session, PROVIDER, str(event.id), outcome)
    log.info("stripe event %s %s: %s", event.id, kind, outcome)
    return outcome


def _completed(session: Session, obj: dict[str, Any]) -> str:
    payment = lock_payment(session, PROVIDER, str(obj.get("id")))
    if payment is None:
        return "unknown-session"
    if obj.get("payment_status") != "paid":
        return "not-paid"
    if (
        obj.get("amount_total") != payment.amount_cents
        or str(obj.get("currency", "")).upper() != payment.currency
    ):
        log.error("stripe session %s amount does not match payment %s", obj.get("id"), payment.id)
        payment.status = "failed"
        return "amount-mismatch"
    ledger.credit(
        session,
        payment.user_id,
        payment.amount_cents,
        reason=f"Card payment {format_money(payment.amount_cents)}",
        reference=f"stripe:{payment.external_id}",
        idempotency_key=f"stripe:checkout:{obj.get('id')}",
        payment_id=payment.id,
    )
    payment.payment_ref = obj.get("payment_intent") or payment.payment_ref
    payment.credited_cents = payment.amount_cents
    if payment.status in ("new", "expired", "failed"):
        payment.status = "paid"
    payment.paid_at = payment.paid_at or utcnow()
    payment.updated_at = utcnow()
    return "credited"


def _expired(session: Session, obj: Any) -> str:
    payment = lock_payment(session, PROVIDER, str(obj.get("id")))
    if payment is None:
        return "unknown-session"
    if payment.status == "new":
        payment.status = "expired"
        payment.updated_at = utcnow()
    return "expired"


def _payment_for_charge(session: Session, obj: Any) -> Payment:
    intent = obj.get("payment_intent")
    payment = lock_payment_by_ref(session, PROVIDER, str(intent)) if intent else None
    if payment is None:
        # The checkout.session.completed that names this payment intent is not here yet:
        # answer non-2xx so Stripe delivers this event again later.
        raise WebhookRetryLater()
    return payment


def _refunded(session: Session, obj: Any) -> str:
    payment = _payment_for_charge(session, obj)
    total = int(obj.get("amount_refunded") or 0)
    delta = total - payment.refunded_cents
    if delta <= 0:
        return "refund-already-booked"  # an older, smaller cumulative total arrived late
    ledger.record(
        session,
        payment.user_id,
        -delta,
        kind="refund",
        reason=f"Card payment refunded {format_money(delta)}",
        reference=f"stripe:{obj.get('id')}",
        idempotency_key=f"stripe:refund:{obj.get('id')}:{total}",
        payment_id=payment.id,
    )
    payment.refunded_cents = total
    payment.status = "refunded" if total >= payment.amount_cents else "partially_refunded"
    payment.updated_at = utcnow()
    return "refunded"


def _disputed_cents(payment: Payment, obj: Any) -> int:
    """How much the dispute is about, as a positive number of cents, at most the payment: a
    dispute takes money back whatever sign the event gives its amount, and never more than
    the payment brought in."""
    return min(abs(int(obj.get("amount") or 0)), payment.amount_cents)


def _dispute_debit(session: Session, payment: Payment, obj: Any) -> None:
    cents = _disputed_cents(payment, obj)
    ledger.record(
        session,
        payment.user_id,
        -cents,
        kind="dispute",
        reason=f"Card payment disputed {format_money(cents)}",
        reference=f"stripe:{obj.get('id')}",
        idempotency_key=f"stripe:dispute:{obj.get('id')}",
        payment_id=payment.id,
    )


def _dispute_created(session: Session, obj: Any) -> str:
    payment = _payment_for_charge(session, obj)
    _dispute_debit(session, payment, obj)
    payment.status = "disputed"
    payment.updated_at = utcnow()
    return "disputed"


def _dispute_closed(session: Session, obj: Any) -> str:
    payment = _payment_for_charge(session, obj)
    _dispute_debit(session, payment, obj)  # no-op if created was seen; books it if not
    if obj.get("status") != "won":
        return "dispute-lost"
    ledger.record(
        session,
        payment.user_id,
        _disputed_cents(payment, obj),
        kind="dispute",
        reason="Dispute won, amount restored",
        reference=f"stripe:{obj.get('id')}",
        idempotency_key=f"stripe:dispute-won:{obj.get('id')}",
        payment_id=payment.id,
    )
    payment.status = "paid"
    payment.updated_at = utcnow()
    return "dispute-won"


HANDLERS = {
    "checkout.session.completed": _completed,
    "checkout.session.expired": _expired,
    "charge.refunded": _refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
