"""Compute's only door into billing (clubstack.billing.ledger and .standing).

The billing service owns the money; compute asks for balances, charges usage with
idempotency keys and asks in which standing an account is. The import is lazy so the
compute package loads (and its CLI help works) on a site where billing is not built yet.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from clubstack.core.errors import Unavailable


class AccountState(enum.StrEnum):
    """Mirrors clubstack.billing.standing.AccountState by name."""

    OK = "OK"
    LOW_WEEK = "LOW_WEEK"
    LOW_DAY = "LOW_DAY"
    EMPTY = "EMPTY"
    GRACE_EXPIRED = "GRACE_EXPIRED"


def _billing() -> tuple[Any, Any]:
    try:
        from clubstack.billing import ledger, standing
    except ModuleNotFoundError as exc:
        raise Unavailable(
            "The billing service is not installed; capsuls cannot be billed."
        ) from exc
    return ledger, standing


def balance(session: Session, user_id: int) -> int:
    ledger, _ = _billing()
    return int(ledger.balance(session, user_id))


def charge(
    session: Session,
    user_id: int,
    amount_cents: int,
    *,
    reason: str,
    reference: str,
    idempotency_key: str,
) -> object:
    ledger, _ = _billing()
    return ledger.charge(
        session,
        user_id,
        amount_cents,
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
    )


def runway(session: Session, user_id: int, hourly_burn_cents: int) -> timedelta | None:
    ledger, _ = _billing()
    return ledger.runway(session, user_id, hourly_burn_cents)


def account_state(
    session: Session, user_id: int, hourly_burn_cents: int, now: datetime
) -> AccountState:
    _, standing = _billing()
    state = standing.account_state(session, user_id, hourly_burn_cents, now)
    return AccountState(getattr(state, "name", str(state)))


def _capsul_burn(session: Session, user_id: int) -> int:
    from clubstack.compute.capsuls import hourly_burn

    return hourly_burn(session, user_id)


def format_money(cents: int) -> str:
    """An amount with its currency, as billing writes it everywhere ("€1.20")."""
    try:
        from clubstack.billing.money import format_money as billing_format
    except ModuleNotFoundError:
        return f"{cents / 100:.2f}"
    return str(billing_format(cents))


def register_burn() -> bool:
    """Tell billing what a member's capsuls cost per hour (for its runway and warnings)."""
    try:
        from clubstack.billing.burn import register_burn_source
    except ModuleNotFoundError:
        return False
    register_burn_source(_capsul_burn)
    return True
