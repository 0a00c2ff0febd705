"""Purchases of credit, common to every provider: the member picks an amount, a provider
module opens a checkout, a verified webhook (never the return page) credits the ledger."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Insert

from clubstack.billing.errors import ProviderDisabled
from clubstack.billing.models import Payment, WebhookEvent
from clubstack.billing.money import format_money
from clubstack.billing.settings import billing_settings
from clubstack.core.clock import utcnow
from clubstack.core.errors import InputError, NotFound

PROVIDERS = {"stripe": "Card (Stripe)", "btcpay": "Bitcoin and Lightning (BTCPay Server)"}


def enabled_providers() -> dict[str, str]:
    settings = billing_settings()
    enabled = {"stripe": settings.stripe_enabled, "btcpay": settings.btcpay_enabled}
    return {name: title for name, title in PROVIDERS.items() if enabled[name]}


def check_purchase(provider: str, amount_cents: int) -> None:
    settings = billing_settings()
    if provider not in enabled_providers():
        raise ProviderDisabled()
    low, high = settings.min_payment_cents, settings.max_payment_cents
    if amount_cents < low:
        raise InputError(fields={"amount": f"The smallest amount is {format_money(low)}."})
    if amount_cents > high:
        raise InputError(fields={"amount": f"The largest amount is {format_money(high)}."})


def new_payment(session: Session, user_id: int, provider: str, amount_cents: int) -> Payment:
    check_purchase(provider, amount_cents)
    payment = Payment(
        user_id=user_id,
        provider=provider,
        amount_cents=amount_cents,
        currency=billing_settings().currency,
        status="new",
    )
    session.add(payment)
    session.flush()
    return payment


def member_payment(session: Session, user_id: int, payment_id: str) -> Payment:
    payment = session.get(Payment, payment_id)
    if payment is None or payment.user_id != user_id:
        raise NotFound("There is no such payment.")
    return payment


def lock_payment(session: Session, provider: str, external_id: str) -> Payment | None:
    """The payment row, locked for this transaction: concurrent webhooks of one payment queue."""
    return session.scalar(
        select(Payment)
        .where(Payment.provider == provider, Payment.external_id == external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def lock_payment_by_ref(session: Session, provider: str, payment_ref: str) -> Payment | None:
    return session.scalar(
        select(Payment)
        .where(Payment.provider == provider, Payment.payment_ref == payment_ref)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def first_delivery(session: Session, provider: str, event_id: str, event_type: str) -> bool:
    """Record a webhook event; False if it was handled before (a replay or duplicate).

    The record commits with whatever the event changes, so an event whose handling failed
    (and rolled back) is handled again when the provider retries it.
    """
    values = {
        "provider": provider,
        "event_id": event_id[:128],
        "event_type": event_type[:64],
        "outcome": "",
        "received_at": utcnow(),
    }
    table = cast(Table, WebhookEvent.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        stmt = pg_insert(table).values(**values).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        stmt = mysql_insert(table).values(**values).prefix_with("IGNORE")
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    # A concurrent delivery of the same event waits for this one's commit, then inserts nothing.
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def set_outcome(session: Session, provider: str, event_id: str, outcome: str) -> None:
    event = session.scalar(
        select(WebhookEvent).where(
            WebhookEvent.provider == provider, WebhookEvent.event_id == event_id[:128]
        )
    )
    if event is not None:
        event.outcome = outcome[:64]
