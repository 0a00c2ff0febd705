"""Deleting an account. No Flask here.

The person goes; what others or the books still need stays, pointing at a closed account
that holds nothing about them. Each service says what deletion means for its data through
its `AccountClosing` (core.service); the core runs every service's steps and then its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from clubstack.core.accounts.models import CLOSED, ApiToken, LoginLink, LoginSession, User
from clubstack.core.service import Service


def closed_address(user_id: int) -> str:
    """The address a closed account keeps: unique, and in the reserved .invalid domain
    (RFC 2606), so no mail can reach anyone through it."""
    return f"closed-{user_id}@closed.invalid"


def close_account(session: Session, user: User, services: Sequence[Service]) -> None:
    """Delete `user`: first the `release` step of every service in `services` (the enabled
    ones; retry-safe, outside the transaction), then, in one transaction, every service's
    `forget` step and the core's own part.

    The users row stays as a closed account: ledger entries, payments and contest entries
    keep a valid owner for the accounting and the scoreboard, under the nickname (if any).
    The address, sessions, API tokens and login links go.
    """
    closings = [s.account_closing for s in services if s.account_closing is not None]
    for closing in closings:
        if closing.release is not None:
            closing.release(session, user)
    address = user.email
    try:
        for closing in closings:
            if closing.forget is not None:
                closing.forget(session, user)
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
        session.execute(
            delete(LoginLink).where(or_(LoginLink.user_id == user.id, LoginLink.email == address))
        )
        user.email = closed_address(user.id)
        user.role = CLOSED
        user.last_login_at = None
        session.commit()
    except BaseException:
        session.rollback()
        raise
