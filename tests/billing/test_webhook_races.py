"""Duplicated webhook deliveries arriving at the same moment on a threaded server, on
PostgreSQL and MariaDB: one credit, whatever the interleaving."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from clubstack.billing import ledger
from clubstack.billing.models import LedgerEntry, Payment, WebhookEvent
from clubstack.core.db import db
from tests.billing.conftest import make_user
from tests.billing.stubs import BTCPayStub, StripeStub
from tests.conftest import LiveServer


@pytest.fixture(params=["postgres", "mariadb"])
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stubs() -> Iterator[tuple[StripeStub, BTCPayStub]]:
    stripe_stub, btcpay_stub = StripeStub(), BTCPayStub()
    yield stripe_stub, btcpay_stub
    stripe_stub.stop()
    btcpay_stub.stop()


@pytest.fixture
def race_app(make_app: Any, server_kind: str, stubs: tuple[StripeStub, BTCPayStub]) -> Any:
    stripe_stub, btcpay_stub = stubs
    return make_app(
        db_kind=server_kind,
        billing_stripe_secret_key=stripe_stub.api_key,
        billing_stripe_webhook_secret=stripe_stub.webhook_secret,
        billing_stripe_api_base=stripe_stub.url,
        billing_btcpay_url=btcpay_stub.url,
        billing_btcpay_api_key=btcpay_stub.api_key,
        billing_btcpay_store_id=btcpay_stub.store,
        billing_btcpay_webhook_secret=btcpay_stub.webhook_secret,
        http_allow_hosts=f"{stripe_stub.host},{btcpay_stub.host}",
    )


def _deliver_at_once(n: int, send: Any) -> list[int]:
    barrier = threading.Barrier(n)
    codes: list[int] = []

    def run(i: int) -> None:
        barrier.wait()
        codes.append(send(i).status_code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return codes


def _setup(app: Any, provider: str, external_id: str) -> int:
    with app.app_context():
        session = db.session()
        uid = make_user(session, f"{provider}@example.org")
        session.add(
            Payment(
                user_id=uid,
                provider=provider,
                external_id=external_id,
                amount_cents=2000,
                currency="EUR",
                status="new",
            )
        )
        session.commit()
        return uid


def test_simultaneous_stripe_duplicates_credit_once(
    race_app: Any, stubs: tuple[StripeStub, BTCPayStub]
) -> None:
    stripe_stub, _ = stubs
    uid = _setup(race_app, "stripe", "cs_test_race")
    obj = {
        "id": "cs_test_race",
        "object": "checkout.session",
        "amount_total": 2000,
        "currency": "eur",
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": "pi_race",
    }
    same = stripe_stub.event("checkout.session.completed", obj, event_id="evt_same")
    other = stripe_stub.event("checkout.session.completed", obj)  # same session, new event id
    server = LiveServer(race_app)
    try:
        url = server.url + "/billing/webhooks/stripe"
        codes = _deliver_at_once(
            6,
            lambda i: stripe_stub.post(
                url, same if i % 2 else other, stripe_stub.sign(same if i % 2 else other)
            ),
        )
    finally:
        server.stop()
    assert codes == [200] * 6
    with race_app.app_context():
        session = db.session()
        assert ledger.balance(session, uid) == 2000 == ledger.ledger_sum(session, uid)
        assert session.scalar(select(func.count(LedgerEntry.id))) == 1
        assert session.scalar(select(func.count(WebhookEvent.id))) == 2


def test_simultaneous_btcpay_deliveries_credit_once(
    race_app: Any, stubs: tuple[StripeStub, BTCPayStub]
) -> None:
    _, btcpay_stub = stubs
    btcpay_stub.invoices["inv-race"] = {
        "id": "inv-race",
        "status": "Processing",
        "additionalStatus": "None",
        "storeId": btcpay_stub.store,
    }
    uid = _setup(race_app, "btcpay", "inv-race")
    kinds = ("InvoiceReceivedPayment", "InvoiceProcessing", "InvoiceProcessing", "InvoiceSettled")
    bodies = [btcpay_stub.event(kind, "inv-race") for kind in kinds]
    server = LiveServer(race_app)
    try:
        url = server.url + "/billing/webhooks/btcpay"
        codes = _deliver_at_once(
            4, lambda i: btcpay_stub.post(url, bodies[i], btcpay_stub.sign(bodies[i]))
        )
    finally:
        server.stop()
    assert codes == [200] * 4
    with race_app.app_context():
        session = db.session()
        assert ledger.balance(session, uid) == 2000 == ledger.ledger_sum(session, uid)
        assert session.scalar(select(func.count(LedgerEntry.id))) == 1
