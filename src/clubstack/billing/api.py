"""The billing service's JSON API: a member's balance, burn and runway, for scripts and
dashboards. Webhooks from the payment providers stay in views.py beside the pages they feed."""

from __future__ import annotations

from flask import Response, jsonify

from clubstack.billing.burn import hourly_burn
from clubstack.billing.money import format_money
from clubstack.billing.settings import billing_settings
from clubstack.billing.standing import standing
from clubstack.core.accounts.auth import api_auth, current_user
from clubstack.core.clock import utcnow
from clubstack.core.db import db
from clubstack.core.service import Routes

routes = Routes()


@routes.get("/api/v1/balance")
@api_auth
def api_balance() -> Response:
    user = current_user()
    assert user is not None  # api_auth answered 401 otherwise
    session = db.session()
    info = standing(session, user.id, hourly_burn(session, user.id), utcnow())
    return jsonify(
        balance_cents=info.balance_cents,
        currency=billing_settings().currency,
        balance=format_money(info.balance_cents),
        hourly_burn_cents=info.burn_cents,
        runway_seconds=None if info.runway is None else int(info.runway.total_seconds()),
        state=info.state.value,
    )
