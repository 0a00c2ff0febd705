"""Stripe: Checkout Session creation against a local Stripe API, credit only from verified
checkout.session.completed webhooks, never twice; refunds and disputes as negative entries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from clubstack.billing import ledger
from clubstack.billing.models import Payment
from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.billing.conftest import login_as
from tests.billing.stubs import StripeStub
from tests.conftest import LiveServer, csrf_token

HOOK = "/billing/webhooks/stripe"


@pytest.fixture
def stripe_stub() -> Iterator[StripeStub]:
    stub = StripeStub()
    yield stub
    stub.stop()


@pytest.fixture
def app(make_app: Any, stripe_stub: StripeStub) -> Any:
    return make_app(
        billing_stripe_secret_key=stripe_stub.api_key,
        billing_stripe_webhook_secret=stripe_stub.webhook_secret,
        billing_stripe_api_base=stripe_stub.url,
        http_allow_hosts=stripe_stub.host,
        billing_currency="EUR",
    )


def _buy(client: Any, amount: str = "20.00") -> Any:
    token = csrf_token(client, "/billing/buy")
    return client.post(
        "/billing/buy", data={"amount": amount, "provider": "stripe", "csrf_token": token}
    )


def _member_id(app: Any) -> int:
    with app.app_context():
        return db.session().scalar(select(User.id).where(User.email == "member@example.org"))


def _balance(app: Any) -> int:
    with app.app_context():
        return ledger.balance(db.session(), _member_id(app))


def _payment(app: Any) -> Payment:
    with app.app_context():
        return db.session().scalars(select(Payment)).one()


def _hook(client: Any, stub: StripeStub, payload: bytes, signature: str | None = None) -> Any:
    headers = {"Stripe-Signature": signature if signature is not None else stub.sign(payload)}
    return client.post(HOOK, data=payload, headers=headers, content_type="application/json")


def test_checkout_session_is_created_and_nothing_credited_before_the_webhook(
    app: Any, member: Any, stripe_stub: StripeStub
) -> None:
    response = _buy(member)
    assert response.status_code == 303
    ((session_id, sent),) = stripe_stub.sessions.items()
    assert response.headers["Location"] == sent["url"]
    assert sent["amount_total"] == 2000 and sent["currency"] == "eur"
    payment = _payment(app)
    assert sent["client_reference_id"] == payment.id and payment.external_id == session_id
    assert sent["success_url"].endswith(f"/billing/payments/{payment.id}?returned=1")
    # The member comes back from Stripe before the webhook: the page waits, credits nothing.
    page = member.get(f"/billing/payments/{payment.id}?returned=1")
    assert page.status_code == 200 and "waiting for the confirmation" in page.get_data(as_text=True)
    assert _balance(app) == 0


def test_verified_webhook_credits_once_despite_replays_duplicates_and_back_button(
    app: Any, member: Any, client: Any, stripe_stub: StripeStub
) -> None:
    _buy(member)
    session_id = next(iter(stripe_stub.sessions))
    payload = stripe_stub.event("checkout.session.completed", stripe_stub.completed(session_id))
    signature = stripe_stub.sign(payload)
    first = _hook(client, stripe_stub, payload, signature)
    assert first.status_code == 200 and first.json["outcome"] == "credited"
    assert _balance(app) == 2000
    replay = _hook(client, stripe_stub, payload, signature)  # the very same delivery again
    assert replay.status_code == 200 and replay.json["outcome"] == "duplicate"
    # Stripe may send the same session in another event (another id): still one credit.
    again = stripe_stub.event("checkout.session.completed", stripe_stub.completed(session_id))
    assert _hook(client, stripe_stub, again).status_code == 200
    payment = _payment(app)
    for _ in range(3):  # the back button and reloads of the return page
        assert member.get(f"/billing/payments/{payment.id}?returned=1").status_code == 200
    assert _balance(app) == 2000
    receipt = member.get(f"/billing/payments/{payment.id}").get_data(as_text=True)
    assert "Receipt" in receipt and "€20.00" in receipt and ">paid<" in receipt


@pytest.mark.parametrize("case", ["wrong-secret", "tampered", "too-old", "missing", "garbage"])
def test_unverified_webhooks_credit_nothing(
    app: Any, member: Any, client: Any, stripe_stub: StripeStub, case: str
) -> None:
    _buy(member)
    session_id = next(iter(stripe_stub.sessions))
    payload = stripe_stub.event("checkout.session.completed", stripe_stub.completed(session_id))
    signature = {
        "wrong-secret": stripe_stub.sign(payload, secret="whsec_attacker"),
        "tampered": stripe_stub.sign(payload),
        "too-old": stripe_stub.sign(payload, at=int(time.time()) - 600),
        "missing": "",
        "garbage": "t=abc,v9=zz",
    }[case]
    if case == "tampered":
        payload = payload.replace(b'"amount_total": 2000', b'"amount_total": 9000')
    response = _hook(client, stripe_stub, payload, signature)
    assert response.status_code == 400
    assert response.json["error"] == "webhook_rejected"
    assert _balance(app) == 0
    # The genuine delivery still works afterwards (the bad one was not recorded as handled).
    good = stripe_stub.event("checkout.session.completed", stripe_stub.completed(session_id))
    assert _hook(client, stripe_stub, good).json["outcome"] == "credited"
    assert _balance(app) == 2000


def test_unpaid_completion_and_mismatched_amount_credit_nothing(
    app: Any, member: Any, client: Any, stripe_stub: StripeStub
) -> None:
    _buy(member)
    session_id = next(iter(stripe_stub.sessions))
    unpaid = stripe_stub.event(
        "checkout.session.completed", stripe_stub.completed(session_id, paid=False)
    )
    assert _hook(client, stripe_stub, unpaid).json["outcome"] == "not-paid"
    forged = stripe_stub.completed(session_id)
    forged["amount_total"] = 1
    assert (
        _hook(client, stripe_stub, stripe_stub.event("checkout.session.completed", forged)).json[
            "outcome"
        ]
        == "amount-mismatch"
    )
    assert _balance(app) == 0


def test_refund_before_completion_is_retried_then_booked_once(
    app: Any, member: Any, client: Any, stripe_stub: StripeStub
) -> None:
    _buy(member)
    session_id = next(iter(stripe_stub.sessions))
    completed = stripe_stub.completed(session_id)
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 2000,
        "amount_refunded": 500,
        "payment_intent": completed["payment_intent"],
        "refunded": False,
    }
    refund = stripe_stub.event("charge.refunded", charge, event_id="evt_refund_1")
    early = _hook(client, stripe_stub, refund)
    assert early.status_code == 409  # out of order: Stripe delivers it again later
    assert (
        _hook(client, stripe_stub, stripe_stub.event("checkout.session.completed", completed)).json[
            "outcome"
        ]
        == "credited"
    )
    retried = _hook(client, stripe_stub, refund)
    assert retried.status_code == 200 and retried.json["outcome"] == "refunded"
    assert _balance(app) == 1500
    assert _hook(client, stripe_stub, refund).json["outcome"] == "duplicate"
    full = dict(charge, amount_refunded=2000, refunded=True)
    assert (
        _hook(client, stripe_stub, stripe_stub.event("charge.refunded", full)).json["outcome"]
        == "refunded"
    )
    stale = stripe_stub.event("charge.refunded", charge)  # the 500 total again, new event id
    assert _hook(client, stripe_stub, stale).json["outcome"] == "refund-already-booked"
    assert _balance(app) == 0
    assert _payment(app).status == "refunded"


def test_dispute_debits_and_a_won_dispute_restores(
    app: Any, member: Any, client: Any, stripe_stub: StripeStub
) -> None:
    _buy(member)
    session_id = next(iter(stripe_stub.sessions))
    completed = stripe_stub.completed(session_id)
    _hook(client, stripe_stub, stripe_stub.event("checkout.session.completed", completed))
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 2000,
        "charge": "ch_1",
        "payment_intent": completed["payment_intent"],
        "status": "needs_response",
    }
    # Out of order: the closing event arrives first and books the debit itself.
    won = stripe_stub.event("charge.dispute.closed", dict(dispute, status="won"))
    assert _hook(client, stripe_stub, won).json["outcome"] == "dispute-won"
    created = stripe_stub.event("charge.dispute.created", dispute)
    assert _hook(client, stripe_stub, created).json["outcome"] == "disputed"
    with app.app_context():
        kinds = [
            (e.kind, e.amount_cents)
            for e in ledger.entries(db.session(), ledger.EntryFilter(), newest_first=False)
        ]
    assert kinds == [("payment", 2000), ("dispute", -2000), ("dispute", 2000)]
    assert _balance(app) == 2000


def test_amount_limits_and_disabled_provider(app: Any, member: Any) -> None:
    low = _buy(member, "1.00")
    assert low.status_code == 400 and "The smallest amount is €5.00" in low.get_data(as_text=True)
    high = _buy(member, "5000")
    assert high.status_code == 400
    assert "The largest amount is €1,000.00" in high.get_data(as_text=True)
    odd = _buy(member, "2.345")
    assert odd.status_code == 400 and "At most 2 digits" in odd.get_data(as_text=True)
    token = csrf_token(member, "/billing/buy")
    other = member.post(
        "/billing/buy", data={"amount": "20", "provider": "btcpay", "csrf_token": token}
    )
    assert other.status_code == 400 and "not offered" in other.get_data(as_text=True)
    with app.app_context():
        assert db.session().scalars(select(Payment)).all() == []


def test_stripe_down_leaves_no_payment_behind(
    app: Any, member: Any, stripe_stub: StripeStub
) -> None:
    stripe_stub.stop()
    response = _buy(member)
    assert response.status_code == 503
    assert "nothing was charged" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session().scalars(select(Payment)).all() == []


def test_webhook_over_real_http(app: Any, member: Any, stripe_stub: StripeStub) -> None:
    _buy(member)
    session_id = next(iter(stripe_stub.sessions))
    server = LiveServer(app)
    try:
        payload = stripe_stub.event("checkout.session.completed", stripe_stub.completed(session_id))
        answer = stripe_stub.post(server.url + HOOK, payload, stripe_stub.sign(payload))
        assert answer.status_code == 200 and answer.json()["outcome"] == "credited"
        bad = stripe_stub.post(server.url + HOOK, payload, stripe_stub.sign(payload, "whsec_x"))
        assert bad.status_code == 400
    finally:
        server.stop()
    assert _balance(app) == 2000


def test_stripe_calls_go_through_the_guarded_http_client(
    make_app: Any, stripe_stub: StripeStub
) -> None:
    """Without the stub in http_allow_hosts the SSRF guard refuses loopback: proof that the
    stripe library talks through clubstack's one outbound client."""
    app = make_app(
        billing_stripe_secret_key=stripe_stub.api_key,
        billing_stripe_webhook_secret=stripe_stub.webhook_secret,
        billing_stripe_api_base=stripe_stub.url,
    )
    client = app.test_client()
    login_as(client, app, "member@example.org")
    assert _buy(client).status_code == 503
    assert stripe_stub.requests == []


def test_expired_checkout_is_marked_and_credits_nothing(
    app: Any, member: Any, client: Any, stripe_stub: StripeStub
) -> None:
    _buy(member)
    session_id = next(iter(stripe_stub.sessions))
    obj = dict(stripe_stub.sessions[session_id], status="expired")
    assert (
        _hook(client, stripe_stub, stripe_stub.event("checkout.session.expired", obj)).json[
            "outcome"
        ]
        == "expired"
    )
    assert _payment(app).status == "expired" and _balance(app) == 0
    assert "expired" in member.get("/billing/payments").get_data(as_text=True)
