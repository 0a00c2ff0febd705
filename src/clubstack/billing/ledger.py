"""The append-only ledger: every movement of money is one entry in integer cents.

The interface other services use (compute meters capsuls through it):

- ``balance(session, user_id) -> int``: cents, may be negative (usage is owed).
- ``charge(session, user_id, amount_cents, *, reason, reference, idempotency_key) -> entry``:
  spends credit. The same idempotency key charges once, even from two workers racing or a
  worker that crashed and retried: the key is UNIQUE in the database, so exactly one insert
  wins; the other gets the winner's entry back.
- ``runway(session, user_id, hourly_burn_cents) -> timedelta | None``: time until zero.

Every entry also updates the account's cached balance in the same transaction, under a row
lock on the account, which makes ``balance`` one primary-key read and gives each entry the
running balance after it. ``check_balances`` compares the cache with the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Insert

from clubstack.billing.errors import IdempotencyConflict, UnknownAccount
from clubstack.billing.models import KINDS, BillingAccount, LedgerEntry
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.errors import InputError

__all__ = [
    "LedgerEntry",
    "adjust",
    "balance",
    "balance_history",
    "charge",
    "check_balances",
    "credit",
    "entries",
    "rebuild_balance",
    "record",
    "runway",
]


def balance(session: Session, user_id: int) -> int:
    """The member's balance in cents (0 for a member without entries)."""
    value = session.scalar(
        select(BillingAccount.balance_cents).where(BillingAccount.user_id == user_id)
    )
    return int(value or 0)


def runway(session: Session, user_id: int, hourly_burn_cents: int) -> timedelta | None:
    """How long the balance lasts at this burn; None when nothing is burning."""
    if hourly_burn_cents <= 0:
        return None
    left = balance(session, user_id)
    if left <= 0:
        return timedelta(0)
    return timedelta(seconds=left * 3600 // hourly_burn_cents)


def charge(
    session: Session,
    user_id: int,
    amount_cents: int,
    *,
    reason: str,
    reference: str,
    idempotency_key: str,
) -> LedgerEntry:
    """Spend `amount_cents` (>= 0) of the member's credit; the balance may go negative."""
    if not isinstance(amount_cents, int) or amount_cents < 0:
        raise InputError(fields={"amount_cents": "A charge is a whole number of cents, >= 0."})
    return record(
        session,
        user_id,
        -amount_cents,
        kind="usage",
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
    )


def credit(
    session: Session,
    user_id: int,
    amount_cents: int,
    *,
    reason: str,
    reference: str,
    idempotency_key: str,
    payment_id: str | None = None,
) -> LedgerEntry:
    """Add paid credit (a provider payment)."""
    if amount_cents <= 0:
        raise InputError(fields={"amount_cents": "A payment adds a positive amount."})
    return record(
        session,
        user_id,
        amount_cents,
        kind="payment",
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
        payment_id=payment_id,
    )


def adjust(
    session: Session,
    user_id: int,
    amount_cents: int,
    *,
    note: str,
    by_user_id: int | None,
    idempotency_key: str,
) -> LedgerEntry:
    """A manual credit (positive) or debit (negative) by an administrator, with a note."""
    note = (note or "").strip()
    if not note:
        raise InputError(fields={"note": "Say why (the member sees this note)."})
    if amount_cents == 0:
        raise InputError(fields={"amount": "The amount cannot be zero."})
    return record(
        session,
        user_id,
        amount_cents,
        kind="adjustment",
        reason=note,
        reference=f"admin:{by_user_id}" if by_user_id is not None else "admin:cli",
        idempotency_key=idempotency_key,
        created_by_id=by_user_id,
    )


def record(
    session: Session,
    user_id: int,
    amount_cents: int,
    *,
    kind: str,
    reason: str,
    reference: str,
    idempotency_key: str,
    payment_id: str | None = None,
    created_by_id: int | None = None,
) -> LedgerEntry:
    """Append one entry (signed cents) unless its idempotency key exists; return the entry.

    Works inside the caller's transaction, so a charge and the caller's own bookkeeping commit
    together or not at all. No savepoints: they behave differently on each database.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool):
        raise InputError(fields={"amount_cents": "Amounts are whole cents."})
    key = (idempotency_key or "").strip()
    if not key or len(key) > 191:
        raise InputError(fields={"idempotency_key": "Give a key of 1 to 191 characters."})
    reason = " ".join((reason or "").split())[:255]
    reference = (reference or "")[:128]

    existing = _entry_by_key(session, key)
    if existing is not None:
        return _same(existing, user_id, amount_cents)
    if session.get(User, user_id) is None:
        raise UnknownAccount()
    _ensure_account(session, user_id)
    # Every writer of this account queues here, so a racing worker with the same key reaches
    # the check below only after the winner committed, and finds the winner's entry.
    account = session.execute(
        select(BillingAccount)
        .where(BillingAccount.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    existing = _entry_by_key(session, key, latest=True)
    if existing is not None:
        return _same(existing, user_id, amount_cents)
    now = utcnow()
    after = account.balance_cents + amount_cents
    entry = LedgerEntry(
        user_id=user_id,
        amount_cents=amount_cents,
        balance_after_cents=after,
        kind=kind,
        reason=reason,
        reference=reference,
        idempotency_key=key,
        payment_id=payment_id,
        created_by_id=created_by_id,
        created_at=now,
    )
    session.add(entry)
    try:
        session.flush()  # the UNIQUE key is the last line of defence
    except IntegrityError:
        # Only reachable when one key is used for two accounts at once (the lock above
        # serialises writers of one account): a caller bug, refused.
        raise IdempotencyConflict() from None
    account.balance_cents = after
    account.entry_count += 1
    account.updated_at = now
    if after > 0:
        account.empty_since = None
    elif account.empty_since is None:
        account.empty_since = now
    session.flush()
    return entry


def _entry_by_key(session: Session, key: str, latest: bool = False) -> LedgerEntry | None:
    query = select(LedgerEntry).where(LedgerEntry.idempotency_key == key)
    if latest:
        # A locking read sees rows committed after this transaction's snapshot (MariaDB's
        # REPEATABLE READ would otherwise hide the racing winner's entry).
        query = query.with_for_update(read=True).execution_options(populate_existing=True)
    return session.scalar(query)


def _same(entry: LedgerEntry, user_id: int, amount_cents: int) -> LedgerEntry:
    if entry.user_id != user_id or entry.amount_cents != amount_cents:
        raise IdempotencyConflict()
    return entry


def _ensure_account(session: Session, user_id: int) -> None:
    """Create the account row if missing, without a duplicate-key error under races.

    On MariaDB the upsert takes an exclusive lock on an existing row, which avoids the
    shared-then-exclusive lock upgrade that deadlocks three racing inserts.
    """
    values = {
        "user_id": user_id,
        "balance_cents": 0,
        "entry_count": 0,
        "notified_state": "OK",
        "updated_at": utcnow(),
    }
    table = cast(Table, BillingAccount.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        stmt = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=["user_id"])
    elif dialect in ("mysql", "mariadb"):
        upsert = mysql_insert(table).values(**values)
        stmt = upsert.on_duplicate_key_update(user_id=upsert.inserted.user_id)
    else:
        stmt = (
            sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=["user_id"])
        )
    session.execute(stmt)


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryFilter:
    user_id: int | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    payment_id: str | None = None


def _filtered(query, flt: EntryFilter):  # noqa: ANN001
    if flt.user_id is not None:
        query = query.where(LedgerEntry.user_id == flt.user_id)
    if flt.kind:
        query = query.where(LedgerEntry.kind == flt.kind)
    if flt.payment_id:
        query = query.where(LedgerEntry.payment_id == flt.payment_id)
    if flt.since is not None:
        query = query.where(LedgerEntry.created_at >= flt.since)
    if flt.until is not None:
        query = query.where(LedgerEntry.created_at < flt.until)
    if flt.text:
        pattern = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            LedgerEntry.reason.ilike(pattern, escape="\\")
            | LedgerEntry.reference.ilike(pattern, escape="\\")
        )
    return query


def entries(
    session: Session,
    flt: EntryFilter,
    *,
    limit: int | None = 100,
    offset: int = 0,
    newest_first: bool = True,
) -> list[LedgerEntry]:
    query = _filtered(select(LedgerEntry), flt)
    order = (LedgerEntry.id.desc(),) if newest_first else (LedgerEntry.id.asc(),)
    query = query.order_by(*order).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_entries(session: Session, flt: EntryFilter) -> int:
    return int(session.scalar(_filtered(select(func.count(LedgerEntry.id)), flt)) or 0)


def iter_entries(session: Session, flt: EntryFilter, batch: int = 1000) -> Iterator[LedgerEntry]:
    """Every matching entry, oldest first, in batches (exports of large ledgers)."""
    last = 0
    while True:
        chunk = list(
            session.scalars(
                _filtered(select(LedgerEntry), flt)
                .where(LedgerEntry.id > last)
                .order_by(LedgerEntry.id)
                .limit(batch)
            )
        )
        if not chunk:
            return
        yield from chunk
        last = chunk[-1].id


def balance_history(
    session: Session, user_id: int, now: datetime, days: int = 90
) -> list[tuple[datetime, int]]:
    """The balance over the last `days` as a step series: (time, balance from then on), from
    the window's start to `now`. A member newer than the window starts at the first entry
    (shown over a day at least), not at a long flat zero."""
    start = now - timedelta(days=days)
    changes = [
        (when, int(after))
        for when, after in session.execute(
            select(LedgerEntry.created_at, LedgerEntry.balance_after_cents)
            .where(LedgerEntry.user_id == user_id, LedgerEntry.created_at >= start)
            .order_by(LedgerEntry.id)
        )
    ]
    before = session.scalar(
        select(LedgerEntry.balance_after_cents)
        .where(LedgerEntry.user_id == user_id, LedgerEntry.created_at < start)
        .order_by(LedgerEntry.id.desc())
        .limit(1)
    )
    if before is None and changes:
        start = min(changes[0][0], now - timedelta(days=1))
    points = [(start, int(before or 0))]
    points += [(when, after) for when, after in changes if start <= when <= now]
    # the line ends at the balance now, even if the newest entry's time is a moment past
    # `now` (written by another process while this page was built)
    points.append((now, changes[-1][1] if changes else points[-1][1]))
    return points


def ledger_sum(session: Session, user_id: int) -> int:
    """The balance computed from the ledger itself (the truth the cache must match)."""
    value = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
            LedgerEntry.user_id == user_id
        )
    )
    return int(value or 0)


def check_balances(session: Session) -> list[tuple[int, int, int]]:
    """(user_id, cached, ledger) for every account whose cached balance disagrees."""
    sums = dict(
        session.execute(
            select(LedgerEntry.user_id, func.sum(LedgerEntry.amount_cents)).group_by(
                LedgerEntry.user_id
            )
        ).all()
    )
    cached = dict(
        session.execute(select(BillingAccount.user_id, BillingAccount.balance_cents)).all()
    )
    wrong = []
    for user_id in sorted(set(sums) | set(cached)):
        real = int(sums.get(user_id) or 0)
        have = int(cached.get(user_id) or 0)
        if real != have:
            wrong.append((user_id, have, real))
    return wrong


def rebuild_balance(session: Session, user_id: int) -> int:
    """Set the cached balance from the ledger (after `check_balances` found a difference)."""
    _ensure_account(session, user_id)
    real = ledger_sum(session, user_id)
    count = session.scalar(select(func.count(LedgerEntry.id)).where(LedgerEntry.user_id == user_id))
    session.execute(
        update(BillingAccount)
        .where(BillingAccount.user_id == user_id)
        .values(balance_cents=real, entry_count=int(count or 0), updated_at=utcnow())
    )
    return real
