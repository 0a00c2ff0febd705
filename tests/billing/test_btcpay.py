"""BTCPay Server (Greenfield): invoices against a local Greenfield API, HMAC-verified webhooks,
credit on Processing/Settled, a double-spend rewind that is announced, polling and cleanup."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from clubstack.billing import ledger, tasks
from clubstack.billing.models import Payment
from clubstack.core import clock
from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.billing.stubs import BTCPayStub
from tests.conftest import csrf_token, message_text, outbox_messages

HOOK = "/billing/webhooks/btcpay"


@pytest.fixture
def btcpay_stub() -> Iterator[BTCPayStub]:
    stub = BTCPayStub()
    yield stub
    stub.stop()


@pytest.fixture
def app(make_app: Any, btcpay_stub: BTCPayStub) -> Any:
    return make_app(
        billing_btcpay_url=btcpay_stub.url,
        billing_btcpay_api_key=btcpay_stub.api_key,
        billing_btcpay_store_id=btcpay_stub.store,
        billing_btcpay_webhook_secret=btcpay_stub.webhook_secret,
        http_allow_hosts=btcpay_stub.host,
    )


def _buy(client: Any, amount: str = "20.00") -> Any:
    token = csrf_token(client, "/billing/buy")
    return client.post(
        "/billing/buy", data={"amount": amount, "provider": "btcpay", "csrf_token": token}
    )


def _uid(app: Any) -> int:
    with app.app_context():
        return db.session().scalar(select(User.id).where(User.email == "member@example.org"))


def _balance(app: Any) -> int:
    with app.app_context():
        return ledger.balance(db.session(), _uid(app))


def _payment(app: Any) -> Payment:
    with app.app_context():
        return db.session().scalars(select(Payment)).one()


def _hook(client: Any, stub: BTCPayStub, payload: bytes, signature: str | None = None) -> Any:
    return client.post(
        HOOK,
        data=payload,
        content_type="application/json",
        headers={"BTCPay-Sig": signature or stub.sign(payload)},
    )


def _invoice(app: Any, client: Any, stub: BTCPayStub) -> str:
    assert _buy(client).status_code == 303
    return list(stub.invoices)[-1]


def test_invoice_created_through_greenfield(app: Any, member: Any, btcpay_stub: BTCPayStub) -> None:
    response = _buy(member)
    assert response.status_code == 303
    ((invoice_id, invoice),) = btcpay_stub.invoices.items()
    assert response.headers["Location"] == invoice["checkoutLink"]
    payment = _payment(app)
    assert invoice["amount"] == "20.00" and invoice["currency"] == "EUR"
    assert invoice["metadata"] == {"orderId": payment.id, "buyerEmail": "member@example.org"}
    assert invoice["checkout"]["redirectURL"].endswith(f"/billing/payments/{payment.id}?returned=1")
    assert payment.external_id == invoice_id and payment.status == "new"
    assert _balance(app) == 0


def test_processing_credits_once_whatever_the_deliveries(
    app: Any, member: Any, client: Any, btcpay_stub: BTCPayStub
) -> None:
    invoice_id = _invoice(app, member, btcpay_stub)
    seen = btcpay_stub.event("InvoiceReceivedPayment", invoice_id)
    assert _hook(client, btcpay_stub, seen).json["outcome"] == "waiting"  # partial: New
    btcpay_stub.set_status(invoice_id, "Processing")
    processing = btcpay_stub.event("InvoiceProcessing", invoice_id, delivery_id="d-1")
    assert _hook(client, btcpay_stub, processing).json["outcome"] == "credited"
    assert _balance(app) == 2000
    assert _hook(client, btcpay_stub, processing).json["outcome"] == "duplicate"
    redelivery = btcpay_stub.event(
        "InvoiceProcessing", invoice_id, delivery_id="d-2", original="d-1"
    )
    assert _hook(client, btcpay_stub, redelivery).json["outcome"] == "duplicate"
    btcpay_stub.set_status(invoice_id, "Settled")
    settled = btcpay_stub.event("InvoiceSettled", invoice_id)
    assert _hook(client, btcpay_stub, settled).json["outcome"] == "settled"
    assert _balance(app) == 2000
    assert _payment(app).status == "paid"


def test_out_of_order_settled_first(
    app: Any, member: Any, client: Any, btcpay_stub: BTCPayStub
) -> None:
    invoice_id = _invoice(app, member, btcpay_stub)
    btcpay_stub.set_status(invoice_id, "Settled")
    assert (
        _hook(client, btcpay_stub, btcpay_stub.event("InvoiceSettled", invoice_id)).json["outcome"]
        == "settled"
    )
    late = btcpay_stub.event("InvoiceProcessing", invoice_id)  # the body says Processing ...
    assert _hook(client, btcpay_stub, late).status_code == 200  # ... the API says Settled
    assert _balance(app) == 2000


@pytest.mark.parametrize(
    "case", ["wrong-secret", "tampered", "missing", "no-prefix", "other-store"]
)
def test_unverified_webhooks_change_nothing(
    app: Any, member: Any, client: Any, btcpay_stub: BTCPayStub, case: str
) -> None:
    invoice_id = _invoice(app, member, btcpay_stub)
    btcpay_stub.set_status(invoice_id, "Processing")
    payload = btcpay_stub.event("InvoiceProcessing", invoice_id)
    signature = btcpay_stub.sign(payload)
    if case == "wrong-secret":
        signature = btcpay_stub.sign(payload, secret="guess")
    elif case == "tampered":
        payload = payload.replace(b"InvoiceProcessing", b"InvoiceSettled")
    elif case == "missing":
        signature = "sha256="
    elif case == "no-prefix":
        signature = signature.removeprefix("sha256=")
    else:
        payload = payload.replace(btcpay_stub.store.encode(), b"someone-else")
        signature = btcpay_stub.sign(payload)
    response = client.post(
        HOOK, data=payload, content_type="application/json", headers={"BTCPay-Sig": signature}
    )
    assert response.status_code == 400 and response.json["error"] == "webhook_rejected"
    assert _balance(app) == 0


def test_double_spend_is_rewound_and_announced(
    app: Any, member: Any, client: Any, btcpay_stub: BTCPayStub
) -> None:
    invoice_id = _invoice(app, member, btcpay_stub)
    btcpay_stub.set_status(invoice_id, "Processing")
    _hook(client, btcpay_stub, btcpay_stub.event("InvoiceProcessing", invoice_id))
    uid = _uid(app)
    with app.app_context():
        ledger.charge(
            db.session(),
            uid,
            500,
            reason="capsul hour",
            reference="compute:c",
            idempotency_key="compute:c:1",
        )
        db.session().commit()
    mails_before = len(outbox_messages(app))
    btcpay_stub.set_status(invoice_id, "Invalid", "Invalid")
    invalid = btcpay_stub.event("InvoiceInvalid", invoice_id)
    assert _hook(client, btcpay_stub, invalid).json["outcome"] == "rewound"
    assert (
        _hook(client, btcpay_stub, btcpay_stub.event("InvoiceInvalid", invoice_id)).json["outcome"]
        == "invalid"
    )  # a second Invalid event: nothing left to rewind
    assert _balance(app) == -500
    with app.app_context():
        assert ledger.ledger_sum(db.session(), uid) == -500
        kinds = [
            (e.kind, e.amount_cents)
            for e in ledger.entries(
                db.session(), ledger.EntryFilter(user_id=uid), newest_first=False
            )
        ]
    assert kinds == [("payment", 2000), ("usage", -500), ("rewind", -2000)]
    mails = [m for m in outbox_messages(app) if "reversed" in m["Subject"]]
    assert len(outbox_messages(app)) == mails_before + 1
    assert len(mails) == 1 and mails[0]["To"] == "member@example.org"
    assert "balance is now -€5.00" in message_text(mails[0])
    ledger_page = member.get("/billing/ledger?kind=rewind").get_data(as_text=True)
    assert "double-spend" in ledger_page


def test_poll_finds_a_missed_webhook_and_cleanup_removes_expired(
    app: Any, member: Any, btcpay_stub: BTCPayStub
) -> None:
    paid_id = _invoice(app, member, btcpay_stub)
    expired_id = _invoice(app, member, btcpay_stub)
    btcpay_stub.set_status(paid_id, "Processing")
    btcpay_stub.set_status(expired_id, "Expired")
    with clock.moved(timedelta(minutes=1)):
        assert tasks.billing_poll_invoices.call_local() == 0  # too young: webhooks may still come
    btcpay_stub.fail_gets = True
    with clock.moved(timedelta(minutes=10)):
        assert tasks.billing_poll_invoices.call_local() == 0  # BTCPay down: nothing changes
        btcpay_stub.fail_gets = False
        assert tasks.billing_poll_invoices.call_local() == 2
    assert _balance(app) == 2000
    with app.app_context():
        statuses = {p.external_id: p.status for p in db.session().scalars(select(Payment))}
    assert statuses == {paid_id: "processing", expired_id: "expired"}
    with clock.moved(timedelta(days=10)):
        assert tasks.billing_cleanup.call_local() == 0
    with clock.moved(timedelta(days=31)):
        assert tasks.billing_cleanup.call_local() == 1
    with app.app_context():
        left = [p.external_id for p in db.session().scalars(select(Payment))]
    assert left == [paid_id]


def test_admin_sees_unresolved_invoices_and_can_poll(
    app: Any, member: Any, admin: Any, btcpay_stub: BTCPayStub
) -> None:
    invoice_id = _invoice(app, member, btcpay_stub)
    page = admin.get("/billing/admin/invoices").get_data(as_text=True)
    assert invoice_id in page and "member@example.org" in page
    btcpay_stub.set_status(invoice_id, "Settled")
    token = csrf_token(admin, "/billing/admin/invoices")
    done = admin.post("/billing/admin/invoices", data={"csrf_token": token})
    assert done.status_code == 303
    assert invoice_id not in admin.get("/billing/admin/invoices").get_data(as_text=True)
    assert _balance(app) == 2000
    assert member.get("/billing/admin/invoices").status_code == 403


def test_webhook_while_btcpay_is_down_is_retried_not_lost(
    app: Any, member: Any, client: Any, btcpay_stub: BTCPayStub
) -> None:
    invoice_id = _invoice(app, member, btcpay_stub)
    btcpay_stub.set_status(invoice_id, "Processing")
    payload = btcpay_stub.event("InvoiceProcessing", invoice_id, delivery_id="d-down")
    btcpay_stub.fail_gets = True
    down = _hook(client, btcpay_stub, payload)
    assert down.status_code == 503 and _balance(app) == 0
    btcpay_stub.fail_gets = False
    again = _hook(client, btcpay_stub, payload)  # BTCPay redelivers the same delivery
    assert again.status_code == 200 and again.json["outcome"] == "credited"
    assert _balance(app) == 2000
