"""Billing tables. The ledger is the truth; billing_accounts caches each balance (same
transaction as every entry) and can always be rebuilt from the ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.db import Base, UTCDateTime, random_id

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere the ledger gets 64-bit ids.
EntryId = BigInteger().with_variant(Integer, "sqlite")

KINDS = ("payment", "usage", "refund", "dispute", "rewind", "adjustment")
PAYMENT_STATUSES = (
    "new",
    "processing",
    "paid",
    "expired",
    "invalid",
    "refunded",
    "partially_refunded",
    "disputed",
    "failed",
)
UNRESOLVED = ("new", "processing")


class BillingAccount(Base):
    """Cached balance and warning state of one member; derived, rebuilt by `billing check`."""

    __tablename__ = "billing_accounts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    empty_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified_state: Mapped[str] = mapped_column(String(16), default="OK")
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="select")


class LedgerEntry(Base):
    """One movement of money; never updated, never deleted."""

    __tablename__ = "billing_entries"
    __table_args__ = (
        Index("ix_billing_entries_user_created", "user_id", "created_at"),
        Index("ix_billing_entries_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(EntryId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    balance_after_cents: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(255))
    reference: Mapped[str] = mapped_column(String(128), default="")
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("billing_payments.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="raise")
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id], lazy="raise")


class Payment(Base):
    """A purchase of credit through a provider: a Stripe Checkout Session or a BTCPay invoice."""

    __tablename__ = "billing_payments"
    __table_args__ = (
        UniqueConstraint("provider", "external_id"),
        Index("ix_billing_payments_provider_status", "provider", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(128))
    payment_ref: Mapped[str | None] = mapped_column(String(128), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="new")
    checkout_url: Mapped[str | None] = mapped_column(String(1024))
    credited_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    rewinds: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="select")


class WebhookEvent(Base):
    """Provider events already handled: a replay or duplicate is answered, not redone."""

    __tablename__ = "billing_webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
