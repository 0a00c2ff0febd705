"""billing: prepaid credits — Stripe and BTCPay Server in, usage out, nothing counted twice.

Other services use only `clubstack.billing.ledger` (balance, charge, runway),
`clubstack.billing.standing` (account_state) and `clubstack.billing.burn`
(register_burn_source).
"""

from __future__ import annotations

from functools import cache

from flask import Blueprint

from clubstack.billing.cli import billing_cli
from clubstack.billing.settings import BillingSettings
from clubstack.core.service import Service


@cache  # a blueprint takes no more routes once an app has it; tests make many apps
def _blueprint() -> Blueprint:
    from clubstack.billing import api
    from clubstack.billing.views import bp

    api.routes.add_to(bp)
    return bp


service = Service(
    name="billing",
    title="Credit",
    summary="Buy prepaid credit by card or Bitcoin; see your balance, runway and ledger.",
    blueprint=_blueprint,
    cli=billing_cli,
    settings=BillingSettings,
    tasks="clubstack.billing.tasks",
    admin_endpoint="billing.admin_overview",
)
