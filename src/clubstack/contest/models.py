"""The contest's tables: challenges (one per submission) and breaks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.db import Base, UTCDateTime, random_id

# Sources are up to 50 MB: MariaDB's TEXT stops at 64 KiB.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

# Status flow: submitted -> filtered (queued) -> compiled -> tested -> published; or failed.
STATUSES = ("submitted", "filtered", "compiled", "tested", "published", "failed")


class Challenge(Base):
    __tablename__ = "contest_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=random_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="submitted", index=True)
    failure: Mapped[str | None] = mapped_column(String(4200))
    compiler_message: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(LongText)
    # ecdsa: declared public key and proof (public once published); unique among submissions
    public_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    proof: Mapped[str | None] = mapped_column(String(128))
    # the test vectors as JSON: inputs, and for aes the reference outputs (the key is not kept)
    vectors: Mapped[str] = mapped_column(LongText)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last put on the queue
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a worker took it
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    first_break_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    object_size: Mapped[int | None] = mapped_column(Integer)
    mean_ram_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mean_cpu_ns: Mapped[int | None] = mapped_column(BigInteger)
    performance: Mapped[float | None] = mapped_column(Float)
    strawberries: Mapped[float] = mapped_column(Float, default=0.0)
    peak_strawberries: Mapped[float] = mapped_column(Float, default=0.0)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[User] = relationship(lazy="joined")
    breaks: Mapped[list[Break]] = relationship(
        back_populates="challenge",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Break.created_at",
    )

    @property
    def is_published(self) -> bool:
        return self.status == "published"

    @property
    def failed_step(self) -> str:
        """The step a failed submission stopped at: no object file means compilation."""
        return "compiled" if self.object_size is None else "tested"

    @property
    def is_broken(self) -> bool:
        return self.first_break_at is not None


class Break(Base):
    __tablename__ = "contest_breaks"
    __table_args__ = (UniqueConstraint("challenge_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    challenge_id: Mapped[int] = mapped_column(
        ForeignKey("contest_challenges.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    strawberries_at_break: Mapped[float] = mapped_column(Float, default=0.0)

    challenge: Mapped[Challenge] = relationship(back_populates="breaks", lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")


# The organiser's desk keeps its tables in a module of its own.
from clubstack.contest import desk_models  # noqa: E402, F401
