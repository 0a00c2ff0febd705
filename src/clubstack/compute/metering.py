"""Hourly metering through the billing ledger, and what happens when credit runs out.

Each capsul is charged one hour in advance at the start of every hour it exists
(``billed_until`` moves forward an hour per charge). The ledger key names the capsul and
the hour, so a crash between the charge and the update of ``billed_until``, a retried job
or two workers at once still charge that hour exactly once, and no hour is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from clubstack.compute import billing_port, capsuls
from clubstack.compute.billing_port import AccountState
from clubstack.compute.errors import ClubError, HostDownError, HypervisorError
from clubstack.compute.models import (
    ACTIVE,
    CREATING,
    HOURS_PER_MONTH,
    LIVE_STATUSES,
    SUSPENDED,
    Capsul,
)
from clubstack.core.accounts.models import User
from clubstack.core.mail import send_mail

log = logging.getLogger("clubstack.compute.metering")
PERIOD = timedelta(hours=1)
BILLED = (CREATING, ACTIVE)  # failed creations are not billed


def period_key(capsul_id: str, start: datetime) -> str:
    return f"compute:{capsul_id}:{start:%Y-%m-%dT%H:%M:%SZ}"


def meter_capsul(session: Session, capsul: Capsul, now: datetime) -> int:
    """Charge every period of this capsul that has started by ``now``; returns how many."""
    if capsul.status not in BILLED or capsul.billed_until is None:
        return 0
    charged = 0
    price = capsul.plan.price_hour_cents
    while capsul.billed_until <= now:
        start = capsul.billed_until
        billing_port.charge(
            session,
            capsul.user_id,
            price,
            reason=f"capsul {capsul.name} ({capsul.plan.name}), "
            f"hour from {start:%Y-%m-%d %H:%M} UTC",
            reference=f"compute:{capsul.id}",
            idempotency_key=period_key(capsul.id, start),
        )
        capsul.billed_until = start + PERIOD
        charged += 1
    session.flush()
    return charged


def meter(session: Session, now: datetime) -> int:
    """Charge all capsuls up to ``now``. Run it often (every few minutes)."""
    total = 0
    for capsul in session.scalars(
        select(Capsul).where(Capsul.status.in_(BILLED)).order_by(Capsul.id)
    ):
        total += meter_capsul(session, capsul, now)
    return total


def plan_burn(session: Session, user_id: int) -> int:
    """What the member's capsuls cost per hour when running, suspended ones included."""
    prices = session.scalars(
        select(Capsul).where(Capsul.user_id == user_id, Capsul.status.in_(LIVE_STATUSES))
    )
    return sum(-(-c.plan.price_month_cents // HOURS_PER_MONTH) for c in prices)


@dataclass
class Enforcement:
    suspended: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)


def enforce(session: Session, now: datetime, *, stop_timeout: float = 30.0) -> Enforcement:
    """Stop capsuls of empty accounts; destroy them when the grace period is over.

    Billing sends the low-credit warnings; compute mails each step it takes.
    """
    done = Enforcement()
    owners = session.scalars(
        select(Capsul.user_id).where(Capsul.status.in_(LIVE_STATUSES)).distinct()
    ).all()
    for user_id in owners:
        state = billing_port.account_state(session, user_id, plan_burn(session, user_id), now)
        if state not in (AccountState.EMPTY, AccountState.GRACE_EXPIRED):
            continue
        user = session.get(User, user_id)
        live = list(
            session.scalars(
                select(Capsul)
                .where(Capsul.user_id == user_id, Capsul.status.in_(LIVE_STATUSES))
                .order_by(Capsul.id)
            )
        )
        if state == AccountState.EMPTY:
            stopped = []
            for capsul in live:
                if capsul.status == SUSPENDED or capsul.status == CREATING:
                    continue
                meter_capsul(session, capsul, now)
                try:
                    capsuls.act(session, capsul, "stop", stop_timeout=stop_timeout)
                except ClubError as exc:
                    log.warning("could not stop capsul %s: %s", capsul.id, exc.message)
                capsul.status, capsul.suspended_at = SUSPENDED, now
                stopped.append(capsul)
                done.suspended.append(capsul.id)
            if stopped and user is not None:
                names = ", ".join(c.name for c in stopped)
                send_mail(
                    user.email,
                    "Your capsuls were stopped: no credit left",
                    f"Your credit is used up, so these capsuls were stopped: {names}.\n\n"
                    "Their disks are kept for the grace period. Add credit and start "
                    "them again, or they will be destroyed when the grace period ends.\n",
                )
        else:
            gone = []
            for capsul in live:
                try:
                    capsuls.destroy(session, capsul)
                except (HostDownError, HypervisorError) as exc:
                    log.warning("could not destroy capsul %s: %s", capsul.id, exc.detail)
                    continue
                gone.append(capsul)
                done.destroyed.append(capsul.id)
            if gone and user is not None:
                names = ", ".join(c.name for c in gone)
                send_mail(
                    user.email,
                    "Your capsuls were destroyed",
                    f"The grace period after your credit ran out has ended, so these "
                    f"capsuls and their disks were destroyed: {names}.\n",
                )
    session.flush()
    return done
