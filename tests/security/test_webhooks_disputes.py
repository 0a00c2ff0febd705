"""Stripe disputes, as a signed webhook delivers them to the running site: a dispute takes the
disputed amount back from the member's credit whatever sign the event gives the amount, and
never more than the payment brought in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from clubstack.billing import ledger
from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.billing.stubs import StripeStub
from tests.conftest import LiveServer
from tests.security.conftest import Visitor

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


def _balance(app: Any, address: str) -> int:
    with app.app_context():
        session = db.session()
        user_id = session.scalar(select(User.id).where(User.email == address))
        return ledger.balance(session, user_id)


def _paid(site: LiveServer, member: Visitor, stub: StripeStub) -> dict[str, Any]:
    bought = member.post(
        "/billing/buy",
        data={"amount": "20.00", "provider": "stripe", "csrf_token": member.csrf("/billing/buy")},
    )
    assert bought.status_code in (302, 303), bought.text
    completed = stub.completed(next(iter(stub.sessions)))
    payload = stub.event("checkout.session.completed", completed)
    assert stub.post(site.url + HOOK, payload, stub.sign(payload)).json()["outcome"] == "credited"
    return completed


@pytest.mark.parametrize("amount", [-2000, 2000, -999_999])
def test_a_dispute_is_always_a_debit(
    app: Any, site: LiveServer, member_a: Visitor, stripe_stub: StripeStub, amount: int
) -> None:
    completed = _paid(site, member_a, stripe_stub)
    assert _balance(app, "alice@example.org") == 2000
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": amount,
        "charge": "ch_1",
        "payment_intent": completed["payment_intent"],
        "status": "needs_response",
    }
    payload = stripe_stub.event("charge.dispute.created", dispute)
    answer = stripe_stub.post(site.url + HOOK, payload, stripe_stub.sign(payload))
    assert answer.status_code == 200 and answer.json()["outcome"] == "disputed"
    assert _balance(app, "alice@example.org") == 0
    # the club wins: exactly what was taken comes back
    payload = stripe_stub.event("charge.dispute.closed", dict(dispute, status="won"))
    answer = stripe_stub.post(site.url + HOOK, payload, stripe_stub.sign(payload))
    assert answer.json()["outcome"] == "dispute-won"
    assert _balance(app, "alice@example.org") == 2000
