"""Tables of the lookup desk: batches, one row per indicator, and the result cache."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clubstack.core.db import Base, UTCDateTime, random_id, utcnow


class LookupBatch(Base):
    __tablename__ = "lookup_batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # running, done, failed
    source: Mapped[str] = mapped_column(String(16), default="web")  # web, upload, api, cli
    total: Mapped[int] = mapped_column(Integer, default=0)  # (indicator, check) pairs
    done: Mapped[int] = mapped_column(Integer, default=0)
    checks: Mapped[str] = mapped_column(String(255), default="")  # comma-separated names

    items: Mapped[list[LookupItem]] = relationship(
        back_populates="batch",
        order_by="LookupItem.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def progress(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


class LookupItem(Base):
    """One indicator of a batch and what every check found (JSON per check)."""

    __tablename__ = "lookup_items"
    __table_args__ = (UniqueConstraint("batch_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(
        ForeignKey("lookup_batches.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(2048))
    verdict: Mapped[int] = mapped_column(Integer, default=0)  # findings.Level
    results: Mapped[str] = mapped_column(Text, default="{}")  # {check: CheckResult.to_dict()}

    batch: Mapped[LookupBatch] = relationship(back_populates="items")


class LookupCacheEntry(Base):
    """A result per (indicator, check), reused until it expires."""

    __tablename__ = "lookup_cache"
    __table_args__ = (Index("ix_lookup_cache_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(indicator|check)
    check: Mapped[str] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(Text)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
