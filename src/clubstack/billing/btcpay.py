"""BTCPay Server through its Greenfield API: invoices out, HMAC-signed webhooks in.

Capsul's model: an unconfirmed payment (InvoiceProcessing) is credited at once; if the
invoice later turns Invalid (a double-spend) the credit is rewound with a negative entry and
the member is told. Webhook bodies are only a hint: after verifying `BTCPay-Sig` we fetch the
invoice from the API and act on its current status, so replayed, duplicated or out-of-order
deliveries all end in the same state. A periodic poll does the same for invoices whose
webhook never came, and expired unpaid invoices are cleaned up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clubstack.billing import ledger
from clubstack.billing.errors import ProviderError, WebhookRejected
from clubstack.billing.models import UNRESOLVED, Payment
from clubstack.billing.money import format_money, plain_amount
from clubstack.billing.payments import first_delivery, lock_payment, new_payment, set_outcome
from clubstack.billing.settings import BillingSettings, billing_settings
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.errors import ClubError
from clubstack.core.mail import MailError, send_mail
from clubstack.core.net import http
from clubstack.settings import get_settings

log = logging.getLogger("clubstack.billing.btcpay")
PROVIDER = "btcpay"
CREDIT_STATUSES = ("Processing", "Settled")


class GreenfieldClient:
    """The few Greenfield endpoints billing needs, over the one outbound HTTP client."""

    def __init__(self, settings: BillingSettings | None = None) -> None:
        settings = settings or billing_settings()
        if not settings.btcpay_enabled or settings.btcpay_api_key is None:
            raise ProviderError("BTCPay Server is not configured.")
        self.base = str(settings.btcpay_url).rstrip("/")
        self.store = str(settings.btcpay_store_id)
        self.headers = {
            "Authorization": f"token {settings.btcpay_api_key.get_secret_value()}",
            "Accept": "application/json",
        }

    def _url(self, *parts: str) -> str:
        tail = "/".join(quote(p, safe="") for p in parts)
        return f"{self.base}/api/v1/stores/{quote(self.store, safe='')}/{tail}"

    def _answer(self, response: Any) -> dict[str, Any]:
        if response.status_code >= 400:
            log.warning("btcpay answered %s: %.200s", response.status_code, response.text)
            raise ProviderError()
        try:
            data = response.json()
        except ValueError as error:
            raise ProviderError() from error
        if not isinstance(data, dict):
            raise ProviderError()
        return data

    def create_invoice(
        self, amount: str, currency: str, *, order_id: str, buyer_email: str, redirect_url: str
    ) -> dict[str, Any]:
        body = {
            "amount": amount,
            "currency": currency,
            "metadata": {"orderId": order_id, "buyerEmail": buyer_email},
            "checkout": {"redirectURL": redirect_url, "redirectAutomatically": True},
        }
        try:
            response = http().post(self._url("invoices"), json=body, headers=self.headers)
        except ClubError as error:
            raise ProviderError() from error
        return self._answer(response)

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        try:
            response = http().get(self._url("invoices", invoice_id), headers=self.headers)
        except ClubError as error:
            raise ProviderError() from error
        return self._answer(response)


def start_invoice(
    session: Session, user_id: int, email: str, amount_cents: int, *, redirect_url: str
) -> Payment:
    """Create the payment and its invoice; the member is sent to `payment.checkout_url`."""
    payment = new_payment(session, user_id, PROVIDER, amount_cents)
    invoice = GreenfieldClient().create_invoice(
        plain_amount(amount_cents),
        payment.currency,
        order_id=payment.id,
        buyer_email=email,
        redirect_url=redirect_url.replace("{PAYMENT_ID}", payment.id),
    )
    if not invoice.get("id") or not invoice.get("checkoutLink"):
        raise ProviderError()
    payment.external_id = str(invoice["id"])
    payment.checkout_url = str(invoice["checkoutLink"])
    expires = invoice.get("expirationTime")
    if isinstance(expires, int | float):
        payment.expires_at = datetime.fromtimestamp(expires, UTC)
    session.flush()
    return payment


def signature_ok(payload: bytes, header: str | None, secret: str) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def handle_webhook(session: Session, payload: bytes, header: str | None) -> str:
    settings = billing_settings()
    if settings.btcpay_webhook_secret is None or not settings.btcpay_enabled:
        raise WebhookRejected("BTCPay webhooks are not configured.")
    if not signature_ok(payload, header, settings.btcpay_webhook_secret.get_secret_value()):
        raise WebhookRejected("The BTCPay-Sig signature is not valid.")
    try:
        event = json.loads(payload)
    except ValueError as error:
        raise WebhookRejected("The webhook body is not JSON.") from error
    if not isinstance(event, dict):
        raise WebhookRejected("The webhook body is not an event.")
    if event.get("storeId") not in (None, settings.btcpay_store_id):
        raise WebhookRejected("The event is for another store.")
    kind = str(event.get("type", ""))
    delivery = str(event.get("originalDeliveryId") or event.get("deliveryId") or "")
    invoice_id = event.get("invoiceId")
    if not delivery or not kind:
        raise WebhookRejected("The event has no delivery id or type.")
    if not first_delivery(session, PROVIDER, delivery, kind):
        return "duplicate"
    if not kind.startswith("Invoice") or not invoice_id:
        set_outcome(session, PROVIDER, delivery, "ignored")
        return "ignored"
    payment = lock_payment(session, PROVIDER, str(invoice_id))
    if payment is None:
        set_outcome(session, PROVIDER, delivery, "unknown-invoice")
        return "unknown-invoice"
    invoice = GreenfieldClient(settings).get_invoice(str(invoice_id))
    outcome = apply_invoice(session, payment, invoice)
    set_outcome(session, PROVIDER, delivery, outcome)
    log.info("btcpay delivery %s %s for %s: %s", delivery, kind, invoice_id, outcome)
    return outcome


def apply_invoice(session: Session, payment: Payment, invoice: dict[str, Any]) -> str:
    """Bring a (locked) payment and the ledger in line with the invoice's current status."""
    status = str(invoice.get("status", ""))
    now = utcnow()
    payment.updated_at = now
    if str(invoice.get("id")) != payment.external_id:
        raise ProviderError("BTCPay answered with another invoice.")
    if status in CREDIT_STATUSES:
        if payment.credited_cents == 0:
            ledger.credit(
                session,
                payment.user_id,
                payment.amount_cents,
                reason=f"Bitcoin payment {format_money(payment.amount_cents)}",
                reference=f"btcpay:{payment.external_id}",
                idempotency_key=f"btcpay:credit:{payment.external_id}:{payment.rewinds}",
                payment_id=payment.id,
            )
            payment.credited_cents = payment.amount_cents
            payment.paid_at = payment.paid_at or now
        payment.status = "paid" if status == "Settled" else "processing"
        return "credited" if status == "Processing" else "settled"
    if status == "Invalid":
        outcome = "invalid"
        if payment.credited_cents > 0:
            rewind_credit(session, payment)
            outcome = "rewound"
        payment.status = "invalid"
        return outcome
    if status == "Expired":
        if payment.status == "new":
            payment.status = "expired"
        return "expired"
    return "waiting"  # New: nothing paid yet (or only part of it)


def rewind_credit(session: Session, payment: Payment) -> None:
    """A double-spent (Invalid) invoice: take the credit back and tell the member."""
    amount = payment.credited_cents
    ledger.record(
        session,
        payment.user_id,
        -amount,
        kind="rewind",
        reason=f"Bitcoin payment {format_money(amount)} was invalid (double-spend); "
        "credit taken back",
        reference=f"btcpay:{payment.external_id}",
        idempotency_key=f"btcpay:rewind:{payment.external_id}:{payment.rewinds}",
        payment_id=payment.id,
    )
    payment.credited_cents = 0
    payment.rewinds += 1
    user = session.get(User, payment.user_id)
    if user is None:
        return
    site = get_settings().site_name
    balance = format_money(ledger.balance(session, payment.user_id))
    try:
        send_mail(
            user.email,
            f"{site}: a Bitcoin payment was reversed",
            f"Your Bitcoin payment of {format_money(amount)} (invoice {payment.external_id}) "
            "was credited when it was first seen, but the network did not confirm it: it was "
            "invalidated, most likely double-spent.\n\n"
            f"We took the credit back. Your balance is now {balance}.\n\n"
            "If you believe this is a mistake, reply to this mail with the transaction id.\n",
        )
    except MailError as error:
        log.warning("rewind mail for payment %s failed: %s", payment.id, error)


def poll_unresolved(session: Session, older_than: timedelta = timedelta(minutes=5)) -> int:
    """Ask BTCPay about invoices still open (a missed webhook); returns how many changed."""
    if not billing_settings().btcpay_enabled:
        return 0
    cutoff = utcnow() - older_than
    ids = list(
        session.scalars(
            select(Payment.id)
            .where(
                Payment.provider == PROVIDER,
                Payment.status.in_(UNRESOLVED),
                Payment.external_id.is_not(None),
                Payment.created_at <= cutoff,
            )
            .order_by(Payment.created_at)
        )
    )
    client = GreenfieldClient()
    changed = 0
    for payment_id in ids:
        payment = session.scalar(
            select(Payment)
            .where(Payment.id == payment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if payment is None or payment.status not in UNRESOLVED or payment.external_id is None:
            session.commit()
            continue
        before = (payment.status, payment.credited_cents)
        try:
            invoice = client.get_invoice(payment.external_id)
        except ProviderError:
            session.rollback()
            log.warning("btcpay poll: invoice %s could not be fetched", payment.external_id)
            continue
        apply_invoice(session, payment, invoice)
        changed += (payment.status, payment.credited_cents) != before
        session.commit()
    return changed


def clean_expired(session: Session) -> int:
    """Delete expired invoices that were never paid, after the keep period; returns how many."""
    days = billing_settings().btcpay_expired_keep_days
    cutoff = utcnow() - timedelta(days=days)
    result = session.execute(
        delete(Payment).where(
            Payment.provider == PROVIDER,
            Payment.status == "expired",
            Payment.credited_cents == 0,
            Payment.rewinds == 0,
            Payment.updated_at <= cutoff,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
