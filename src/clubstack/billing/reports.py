"""What the admin pages and exports show: account overview, payments, CSV of the ledger."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session, selectinload

from clubstack.billing.ledger import EntryFilter, iter_entries
from clubstack.billing.models import UNRESOLVED, BillingAccount, LedgerEntry, Payment
from clubstack.billing.money import plain_amount
from clubstack.core.accounts.models import User

CSV_COLUMNS = [
    "id",
    "created_at",
    "email",
    "kind",
    "amount",
    "amount_cents",
    "balance_after_cents",
    "reason",
    "reference",
    "idempotency_key",
    "payment_id",
    "made_by",
]


@dataclass(frozen=True)
class AccountRow:
    user_id: int
    email: str
    name: str
    balance_cents: int
    entry_count: int
    empty_since: object
    notified_state: str


@dataclass(frozen=True)
class Overview:
    accounts: int
    total_cents: int
    owed_cents: int
    negative: int
    rows: list[AccountRow]


SORTS: dict[str, tuple[ColumnElement[Any], ...]] = {
    "balance": (BillingAccount.balance_cents.asc(), BillingAccount.user_id.asc()),
    "-balance": (BillingAccount.balance_cents.desc(), BillingAccount.user_id.asc()),
    "email": (User.email.asc(),),
}


def overview(
    session: Session,
    *,
    sort: str = "balance",
    page: int = 1,
    per_page: int = 100,
    search: str | None = None,
) -> Overview:
    """Totals over all accounts and one page of accounts with their cached balances."""
    totals = session.execute(
        select(
            func.count(BillingAccount.user_id),
            func.coalesce(func.sum(BillingAccount.balance_cents), 0),
            func.coalesce(
                func.sum(
                    case((BillingAccount.balance_cents < 0, BillingAccount.balance_cents), else_=0)
                ),
                0,
            ),
            func.coalesce(func.sum(case((BillingAccount.balance_cents < 0, 1), else_=0)), 0),
        )
    ).one()
    query = select(
        BillingAccount.user_id,
        User.email,
        User.nickname,
        BillingAccount.balance_cents,
        BillingAccount.entry_count,
        BillingAccount.empty_since,
        BillingAccount.notified_state,
    ).join(User, User.id == BillingAccount.user_id)
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            User.email.ilike(like, escape="\\") | User.nickname.ilike(like, escape="\\")
        )
    query = query.order_by(*SORTS.get(sort, SORTS["balance"]))
    query = query.offset((max(page, 1) - 1) * per_page).limit(per_page)
    rows = [
        AccountRow(r[0], r[1], r[2] or f"member-{r[0]}", int(r[3]), int(r[4]), r[5], r[6])
        for r in session.execute(query)
    ]
    return Overview(int(totals[0]), int(totals[1]), -int(totals[2]), int(totals[3]), rows)


def payments(
    session: Session,
    *,
    provider: str | None = None,
    status: str | None = None,
    unresolved: bool = False,
    page: int = 1,
    per_page: int = 100,
) -> list[Payment]:
    query = select(Payment).options(selectinload(Payment.user))
    if provider:
        query = query.where(Payment.provider == provider)
    if status:
        query = query.where(Payment.status == status)
    if unresolved:
        query = query.where(Payment.status.in_(UNRESOLVED))
    query = query.order_by(Payment.created_at.desc()).offset((max(page, 1) - 1) * per_page)
    return list(session.scalars(query.limit(per_page)))


def payment_summary(session: Session) -> list[tuple[str, str, int, int]]:
    """(provider, status, count, cents) over all payments."""
    rows = session.execute(
        select(
            Payment.provider,
            Payment.status,
            func.count(Payment.id),
            func.coalesce(func.sum(Payment.amount_cents), 0),
        )
        .group_by(Payment.provider, Payment.status)
        .order_by(Payment.provider, Payment.status)
    )
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def adjustments(session: Session, limit: int = 200) -> list[tuple[LedgerEntry, str, str]]:
    """Manual entries, newest first, with the member's and the admin's address."""
    maker = User.__table__.alias("maker")
    rows = session.execute(
        select(LedgerEntry, User.email, maker.c.email)
        .join(User, User.id == LedgerEntry.user_id)
        .outerjoin(maker, maker.c.id == LedgerEntry.created_by_id)
        .where(LedgerEntry.kind == "adjustment")
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    return [(r[0], r[1], r[2] or "cli") for r in rows]


def _emails(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(wanted))).all())


def csv_rows(session: Session, flt: EntryFilter) -> Iterator[list[str]]:
    """The ledger as CSV rows (header first), oldest entry first."""
    yield CSV_COLUMNS
    emails: dict[int, str] = {}
    batch: list[LedgerEntry] = []

    def flush() -> Iterator[list[str]]:
        missing = {e.user_id for e in batch} | {e.created_by_id for e in batch if e.created_by_id}
        emails.update(_emails(session, missing - set(emails)))
        for e in batch:
            yield [
                str(e.id),
                e.created_at.isoformat(),
                emails.get(e.user_id, ""),
                e.kind,
                plain_amount(e.amount_cents),
                str(e.amount_cents),
                str(e.balance_after_cents),
                e.reason,
                e.reference,
                e.idempotency_key,
                e.payment_id or "",
                emails.get(e.created_by_id, "") if e.created_by_id else "",
            ]
        batch.clear()

    for entry in iter_entries(session, flt):
        batch.append(entry)
        if len(batch) >= 1000:
            yield from flush()
    yield from flush()


def csv_text(session: Session, flt: EntryFilter) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in csv_rows(session, flt):
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def safe_cell(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; quote text ones (not numbers)."""
    if value and value[0] in "=+-@\t\r":
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value
