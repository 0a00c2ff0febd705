"""Billing's periodic jobs: low-credit warnings, BTCPay polling and cleanup, balance check."""

from __future__ import annotations

import logging

from huey import crontab

from clubstack.billing import btcpay, ledger
from clubstack.billing.standing import send_warnings
from clubstack.core.clock import utcnow
from clubstack.core.db import session_scope
from clubstack.core.jobs import huey

log = logging.getLogger("clubstack.billing.tasks")


@huey.periodic_task(crontab(minute="*/10"))
def billing_warnings() -> int:
    with session_scope() as session:
        return send_warnings(session, utcnow())


@huey.periodic_task(crontab(minute="*/5"))
def billing_poll_invoices() -> int:
    with session_scope() as session:
        return btcpay.poll_unresolved(session)


@huey.periodic_task(crontab(minute="17", hour="3"))
def billing_cleanup() -> int:
    with session_scope() as session:
        return btcpay.clean_expired(session)


@huey.periodic_task(crontab(minute="41", hour="4"))
def billing_check_balances() -> int:
    with session_scope() as session:
        wrong = ledger.check_balances(session)
    for user_id, cached, real in wrong:
        log.error("billing: cached balance of user %s is %s, ledger says %s", user_id, cached, real)
    return len(wrong)
