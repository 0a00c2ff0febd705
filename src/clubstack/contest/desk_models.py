"""The organiser's desk tables: rulings, the action log, announcements, clarifications,
rejudges and the desk's own state (the scoreboard freeze).

Kept apart from models.py so the contest's core tables stay as they are; nothing here is
needed to submit, judge or break.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clubstack.contest.models import Challenge
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.db import Base, UTCDateTime, random_id

RULINGS = ("hidden", "disqualified")


class Ruling(Base):
    """An organiser's decision on one challenge: hidden or disqualified, with a public reason."""

    __tablename__ = "contest_rulings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    challenge_id: Mapped[int] = mapped_column(
        ForeignKey("contest_challenges.id", ondelete="CASCADE"), unique=True
    )
    ruling: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    challenge: Mapped[Challenge] = relationship(lazy="joined")


class DeskAction(Base):
    """The desk's audit log: who did what to which challenge or break, and why."""

    __tablename__ = "contest_desk_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    # the challenge's id is not a foreign key: the log outlives a deleted challenge
    challenge_id: Mapped[int | None] = mapped_column(Integer, index=True)
    challenge_name: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64))  # e.g. whose break was withdrawn
    reason: Mapped[str] = mapped_column(String(500), default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False)

    by_user: Mapped[User | None] = relationship(lazy="joined")


class Announcement(Base):
    __tablename__ = "contest_announcements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=random_id)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Clarification(Base):
    """A member's question and the organisers' answer (private to the asker unless public)."""

    __tablename__ = "contest_clarifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=random_id)
    asker_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    challenge_id: Mapped[int | None] = mapped_column(
        ForeignKey("contest_challenges.id", ondelete="SET NULL")
    )
    question: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    public: Mapped[bool] = mapped_column(Boolean, default=False)

    asker: Mapped[User] = relationship(lazy="joined", foreign_keys=[asker_id])
    challenge: Mapped[Challenge | None] = relationship(lazy="joined")


class Rejudge(Base):
    """One rejudge run: who started it, on what, and when it finished."""

    __tablename__ = "contest_rejudges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=random_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    by_name: Mapped[str] = mapped_column(String(100))  # a person or "cli"
    scope: Mapped[str] = mapped_column(String(100))  # "challenge NAME" or "kind aes"
    reason: Mapped[str] = mapped_column(String(500), default="")
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list[RejudgeItem]] = relationship(
        back_populates="rejudge", cascade="all, delete-orphan", order_by="RejudgeItem.id"
    )

    @property
    def done(self) -> int:
        return sum(1 for item in self.items if item.done_at is not None)

    @property
    def changed(self) -> int:
        return sum(1 for item in self.items if item.changed)

    @property
    def verdicts_changed(self) -> int:
        return sum(1 for item in self.items if item.verdict_changed)


class RejudgeItem(Base):
    """What a rejudge did to one challenge: before and after."""

    __tablename__ = "contest_rejudge_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rejudge_id: Mapped[int] = mapped_column(
        ForeignKey("contest_rejudges.id", ondelete="CASCADE"), index=True
    )
    challenge_id: Mapped[int | None] = mapped_column(
        ForeignKey("contest_challenges.id", ondelete="SET NULL")
    )
    challenge_name: Mapped[str] = mapped_column(String(64))
    old_status: Mapped[str] = mapped_column(String(16))
    old_performance: Mapped[float | None] = mapped_column(Float)
    old_reason: Mapped[str | None] = mapped_column(String(4200))
    new_status: Mapped[str | None] = mapped_column(String(16))
    new_performance: Mapped[float | None] = mapped_column(Float)
    new_reason: Mapped[str | None] = mapped_column(String(4200))
    changed: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    rejudge: Mapped[Rejudge] = relationship(back_populates="items")

    @property
    def verdict_changed(self) -> bool:
        return self.new_status is not None and self.new_status != self.old_status


class DeskState(Base):
    """Small named values the organisers set at run time (the freeze time, lifted or not)."""

    __tablename__ = "contest_desk_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
