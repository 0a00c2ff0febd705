"""Where an account stands, and the warnings billing sends on the way down.

``account_state(session, user_id, hourly_burn_cents, now)`` is what compute asks before it
stops capsuls (EMPTY) or destroys them (GRACE_EXPIRED). Billing's periodic job
``send_warnings`` announces each state once per descent: a week left, a day left, at zero
(capsuls stopped, destroyed after the grace period) and when the grace period is over.
Topping up resets the announcements, so the next descent is announced again.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clubstack.billing.burn import hourly_burn, register_burn_source
from clubstack.billing.models import BillingAccount
from clubstack.billing.money import format_money
from clubstack.billing.settings import billing_settings
from clubstack.core.accounts.models import User
from clubstack.core.mail import MailError, send_mail
from clubstack.settings import get_settings

log = logging.getLogger("clubstack.billing.standing")
WEEK = timedelta(days=7)
DAY = timedelta(days=1)

__all__ = ["AccountState", "account_state", "register_burn_source", "send_warnings"]


class AccountState(enum.StrEnum):
    OK = "OK"
    LOW_WEEK = "LOW_WEEK"  # a week of credit or less at the current burn
    LOW_DAY = "LOW_DAY"  # a day or less
    EMPTY = "EMPTY"  # at or below zero: compute stops capsuls
    GRACE_EXPIRED = "GRACE_EXPIRED"  # empty for longer than the grace period: compute destroys

    @property
    def severity(self) -> int:
        return list(AccountState).index(self)


@dataclass(frozen=True)
class Standing:
    state: AccountState
    balance_cents: int
    burn_cents: int
    runway: timedelta | None
    empty_since: datetime | None
    grace_ends: datetime | None


def standing(session: Session, user_id: int, hourly_burn_cents: int, now: datetime) -> Standing:
    row = session.execute(
        select(BillingAccount.balance_cents, BillingAccount.empty_since).where(
            BillingAccount.user_id == user_id
        )
    ).first()
    balance, empty_since = (int(row[0]), row[1]) if row else (0, None)
    grace = timedelta(hours=billing_settings().grace_period_hours)
    burn = max(hourly_burn_cents, 0)
    if balance < 0 or (balance == 0 and burn > 0):
        since = empty_since or now
        state = AccountState.GRACE_EXPIRED if now - since >= grace else AccountState.EMPTY
        return Standing(state, balance, burn, timedelta(0), since, since + grace)
    if burn == 0:
        return Standing(AccountState.OK, balance, 0, None, None, None)
    left = timedelta(seconds=balance * 3600 // burn)
    if left <= DAY:
        state = AccountState.LOW_DAY
    elif left <= WEEK:
        state = AccountState.LOW_WEEK
    else:
        state = AccountState.OK
    return Standing(state, balance, burn, left, None, None)


def account_state(
    session: Session, user_id: int, hourly_burn_cents: int, now: datetime
) -> AccountState:
    """OK, LOW_WEEK, LOW_DAY, EMPTY or GRACE_EXPIRED for this burn (cents/hour) at `now`."""
    return standing(session, user_id, hourly_burn_cents, now).state


def billing_url(path: str = "/") -> str:
    prefix = billing_settings().prefix
    prefix = "/billing" if prefix is None else prefix.rstrip("/")
    return get_settings().base_url.rstrip("/") + prefix + path


def _duration(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours >= 48:
        return f"about {hours // 24} days"
    if hours >= 1:
        return f"about {hours} hour{'s' if hours != 1 else ''}"
    return "less than an hour"


def warning_mail(state: AccountState, info: Standing, now: datetime) -> tuple[str, str]:
    """Subject and text of the announcement of `state`."""
    site = get_settings().site_name
    balance = format_money(info.balance_cents)
    rate = format_money(info.burn_cents)
    buy = billing_url("/buy")
    grace_hours = billing_settings().grace_period_hours
    if state in (AccountState.LOW_WEEK, AccountState.LOW_DAY):
        assert info.runway is not None
        subject = f"{site}: your credit runs out in {_duration(info.runway)}"
        text = (
            f"Your balance is {balance} and your capsuls use {rate} per hour, so your credit "
            f"lasts {_duration(info.runway)} "
            f"(until about {now + info.runway:%Y-%m-%d %H:%M} UTC).\n\n"
            f"When it reaches zero your capsuls are stopped, and {grace_hours} hours later they "
            f"are destroyed with their disks.\n\nAdd credit: {buy}\n"
        )
    elif state == AccountState.EMPTY:
        ends = info.grace_ends or now
        subject = f"{site}: your credit is used up, capsuls are being stopped"
        text = (
            f"Your balance is {balance}. Your capsuls are being stopped now; their disks are "
            f"kept until {ends:%Y-%m-%d %H:%M} UTC (the {grace_hours}-hour grace period).\n\n"
            f"If the balance is still at or below zero then, the capsuls are destroyed with "
            f"their disks and cannot be recovered.\n\nAdd credit: {buy}\n"
        )
    else:
        subject = f"{site}: grace period over, your capsuls are being destroyed"
        text = (
            f"Your balance is {balance} and the {grace_hours}-hour grace period has ended, so "
            f"your capsuls are being destroyed now with their disks.\n\n"
            f"Your account stays; add credit to create new capsuls: {buy}\n"
        )
    return subject, text


def send_warnings(session: Session, now: datetime) -> int:
    """Announce every account's new state once; returns how many mails went out.

    The announcement is claimed with a conditional UPDATE and committed before mailing, so
    two workers running the job at once send it once; a failed mail un-claims it for a retry.
    """
    sent = 0
    user_ids = list(
        session.scalars(select(BillingAccount.user_id).order_by(BillingAccount.user_id))
    )
    for user_id in user_ids:
        account = session.get(BillingAccount, user_id, populate_existing=True)
        if account is None:
            continue
        info = standing(session, user_id, hourly_burn(session, user_id), now)
        before = AccountState(account.notified_state)
        if info.state.severity < before.severity:
            # Credit came in (or burn went down): later descents are announced again.
            session.execute(
                update(BillingAccount)
                .where(
                    BillingAccount.user_id == user_id, BillingAccount.notified_state == before.value
                )
                .values(notified_state=info.state.value)
            )
            session.commit()
            continue
        if info.state.severity == before.severity or info.burn_cents == 0:
            continue  # nothing new, or nothing running that the announcement would be about
        claimed = session.execute(
            update(BillingAccount)
            .where(BillingAccount.user_id == user_id, BillingAccount.notified_state == before.value)
            .values(notified_state=info.state.value, notified_at=now)
        )
        session.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another worker announced it
        user = session.get(User, user_id)
        if user is None:
            continue
        subject, text = warning_mail(info.state, info, now)
        try:
            send_mail(user.email, subject, text)
            sent += 1
        except MailError as error:
            log.warning("low-credit mail to user %s failed, will retry: %s", user_id, error)
            session.execute(
                update(BillingAccount)
                .where(BillingAccount.user_id == user_id)
                .values(notified_state=before.value)
            )
            session.commit()
    return sent
