"""Tables of the comments service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clubstack.core.db import Base, UTCDateTime, random_id, utcnow

STATUSES = ("approved", "pending", "spam", "deleted")


class Comment(Base):
    __tablename__ = "blog_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=random_id)
    post_path: Mapped[str] = mapped_column(String(512), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("blog_comments.id", ondelete="SET NULL"), nullable=True
    )
    author: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(254), default="")
    website: Mapped[str] = mapped_column(String(254), default="")
    ip: Mapped[str] = mapped_column(String(45), default="")
    body: Mapped[str] = mapped_column(Text)  # Markdown as written
    html: Mapped[str] = mapped_column(Text)  # rendered and sanitised
    status: Mapped[str] = mapped_column(String(16), index=True)
    notify: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    wordpress_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)

    parent: Mapped[Comment | None] = relationship(remote_side=[id])


class BlockedAddress(Base):
    """An IP address or e-mail address whose comments are refused."""

    __tablename__ = "blog_blocked"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "ip" or "email"
    value: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscriber(Base):
    """An address that asked for reply mails. Mails go to it only once its owner followed the
    confirmation link; unsubscribe links name it by `public_id`, never by the address."""

    __tablename__ = "blog_subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=random_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    confirm_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsedFormToken(Base):
    """Comment form tokens already spent: each form load posts one comment."""

    __tablename__ = "blog_used_form_tokens"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
