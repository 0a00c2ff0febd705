"""Payment callbacks as an attacker sends them over HTTP: forged, tampered, stale, replayed,
out of order, for someone else's payment. After every delivery the member's balance is the sum
of their ledger, and nothing is credited that the provider did not sign for."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from clubstack.billing import ledger
from clubstack.core.db import db
from tests.billing.stubs import BTCPayStub, StripeStub
from tests.security import seed
from tests.security.conftest import BLOG_ORIGIN, Visitor

A = "alice@example.org"


@pytest.fixture
def stripe_stub() -> Iterator[StripeStub]:
    stub = StripeStub()
    yield stub
    stub.stop()


@pytest.fixture
def btcpay_stub() -> Iterator[BTCPayStub]:
    stub = BTCPayStub()
    yield stub
    stub.stop()


@pytest.fixture
def app(make_app: Any, stripe_stub: StripeStub, btcpay_stub: BTCPayStub) -> Any:
    return make_app(
        blog_origin=BLOG_ORIGIN,
        billing_currency="EUR",
        billing_stripe_secret_key=stripe_stub.api_key,
        billing_stripe_webhook_secret=stripe_stub.webhook_secret,
        billing_stripe_api_base=stripe_stub.url,
        billing_btcpay_url=btcpay_stub.url,
        billing_btcpay_api_key=btcpay_stub.api_key,
        billing_btcpay_store_id=btcpay_stub.store,
        billing_btcpay_webhook_secret=btcpay_stub.webhook_secret,
        http_allow_hosts=f"{stripe_stub.host},{btcpay_stub.host}",
    )


def _buy(member: Visitor, provider: str) -> None:
    answer = member.post(
        "/billing/buy",
        data={"amount": "20.00", "provider": provider, "csrf_token": member.csrf("/billing/buy")},
    )
    assert answer.status_code == 303, answer.text


def _books(app: Any, address: str) -> tuple[int, int]:
    """(balance, sum of the ledger) of the member."""
    uid = seed.user_id(app, address)
    with app.app_context():
        session = db.session()
        return ledger.balance(session, uid), ledger.ledger_sum(session, uid)


def _deliver(app: Any, url: str, post: Any, payload: bytes, signature: str) -> requests.Response:
    answer = post(url, payload, signature)
    balance, total = _books(app, A)
    assert balance == total, (balance, total)
    return answer


def test_stripe_callbacks_credit_only_what_stripe_signed_once(
    app, site, member_a, stripe_stub, caplog
):
    caplog.set_level(logging.WARNING)
    hook = site.url + "/billing/webhooks/stripe"
    _buy(member_a, "stripe")
    (session_id,) = stripe_stub.sessions
    paid = stripe_stub.completed(session_id)
    payload = stripe_stub.event("checkout.session.completed", paid, event_id="evt_1")
    now = int(time.time())

    def send(body: bytes, signature: str) -> requests.Response:
        return _deliver(app, hook, stripe_stub.post, body, signature)

    hostile = [
        (payload, stripe_stub.sign(payload, secret="whsec_guess")),  # forged
        (payload, ""),  # unsigned
        (payload, "t=0,v1=" + "0" * 64),  # garbage
        (payload.replace(b"evt_1", b"evt_2"), stripe_stub.sign(payload)),  # tampered
        (payload, stripe_stub.sign(payload, at=now - 3600)),  # a stale capture, replayed
    ]
    for body, signature in hostile:
        answer = send(body, signature)
        assert answer.status_code == 400, (signature, answer.text)
        assert _books(app, A) == (0, 0)
    # Signed, but the amount is not what the member ordered: nothing.
    cheap = dict(paid, amount_total=1)
    body = stripe_stub.event("checkout.session.completed", cheap)
    assert send(body, stripe_stub.sign(body)).status_code in (200, 400)
    assert _books(app, A) == (0, 0)
    # Signed for a checkout this site never made: nothing.
    body = stripe_stub.event("checkout.session.completed", dict(paid, id="cs_test_other"))
    assert send(body, stripe_stub.sign(body)).status_code in (200, 400)
    assert _books(app, A) == (0, 0)
    # The real one credits; its replay, a duplicate with a new event id, and one re-signed
    # later credit nothing more.
    assert send(payload, stripe_stub.sign(payload)).status_code == 200
    assert _books(app, A) == (2000, 2000)
    again = stripe_stub.event("checkout.session.completed", paid, event_id="evt_9")
    for body, signature in (
        (payload, stripe_stub.sign(payload)),
        (again, stripe_stub.sign(again)),
        (payload, stripe_stub.sign(payload, at=now + 5)),
    ):
        assert send(body, signature).status_code == 200
        assert _books(app, A) == (2000, 2000)
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"


def test_btcpay_callbacks_credit_only_what_btcpay_signed_once(
    app, site, member_a, member_b, btcpay_stub, caplog
):
    caplog.set_level(logging.WARNING)
    hook = site.url + "/billing/webhooks/btcpay"
    _buy(member_a, "btcpay")
    (invoice,) = btcpay_stub.invoices

    def send(body: bytes, signature: str) -> requests.Response:
        return _deliver(app, hook, btcpay_stub.post, body, signature)

    btcpay_stub.set_status(invoice, "Processing")
    payload = btcpay_stub.event("InvoiceProcessing", invoice, delivery_id="d-1")
    for body, signature in (
        (payload, btcpay_stub.sign(payload, secret="guess")),
        (payload, "sha256="),
        (payload, btcpay_stub.sign(payload).removeprefix("sha256=")),
        (payload.replace(b"InvoiceProcessing", b"InvoiceSettled"), btcpay_stub.sign(payload)),
        # A Stripe-style signature on the BTCPay endpoint.
        (payload, "t=1,v1=" + btcpay_stub.sign(payload).removeprefix("sha256=")),
    ):
        answer = send(body, signature)
        assert answer.status_code in (400, 401), answer.text
        assert _books(app, A) == (0, 0)
    # Signed, but for an invoice this site never made: nothing for anyone.
    other = btcpay_stub.event("InvoiceSettled", "not-ours")
    assert send(other, btcpay_stub.sign(other)).status_code in (200, 400, 404)
    # Out of order: Settled arrives first, then the older Processing, then replays.
    btcpay_stub.set_status(invoice, "Settled")
    settled = btcpay_stub.event("InvoiceSettled", invoice, delivery_id="d-2")
    assert send(settled, btcpay_stub.sign(settled)).status_code == 200
    assert _books(app, A) == (2000, 2000)
    redelivery = btcpay_stub.event("InvoiceProcessing", invoice, delivery_id="d-3", original="d-1")
    for body in (payload, settled, redelivery):
        assert send(body, btcpay_stub.sign(body)).status_code == 200
        assert _books(app, A) == (2000, 2000)
    # Member B got nothing out of A's invoice.
    assert _books(app, "bob@example.org") == (0, 0)
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"
