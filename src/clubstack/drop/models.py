"""The drop's table, used by the SQL store (the Redis store keeps messages as expiring keys)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from clubstack.core.db import Base, UTCDateTime

# MariaDB's TEXT holds 64 KiB of bytes; a message of max_bytes (up to ~1 MB) needs MEDIUMTEXT.
MessageText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class DropMessage(Base):
    __tablename__ = "drop_messages"
    __table_args__ = (Index("ix_drop_messages_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[str] = mapped_column(MessageText)
    burn: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # sha256 of the delete token; the token itself is shown once to the creator and never kept.
    delete_hash: Mapped[str] = mapped_column(String(64))
