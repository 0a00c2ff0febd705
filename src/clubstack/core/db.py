"""Engine, session and declarative Base shared by every service.

The session is scoped to the thread (one web request or one job at a time per thread) and removed
at the end of each request and job, so logic functions simply take a `Session` argument.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

from clubstack.core.clock import utcnow

__all__ = [
    "Base",
    "UTCDateTime",
    "abandon_session",
    "db",
    "own_session",
    "random_id",
    "session_scope",
    "utcnow",
]

log = logging.getLogger("clubstack.db")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite and MariaDB keep no zone), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def random_id(nbytes: int = 16) -> str:
    """An unguessable URL-safe id (128 bits by default) that starts with a letter or digit, so
    it is never taken for an option on a command line (`clubstack compute destroy ID`)."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if value[0].isalnum():
            return value


class Database:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(sessionmaker(expire_on_commit=False))

    def init(self, url: str) -> Engine:
        if self.engine is not None and str(self.engine.url) == url:
            return self.engine
        self.dispose()
        ensure_sqlite_folder(url)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.session.configure(bind=self.engine)
        return self.engine

    def dispose(self) -> None:
        self.session.remove()
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def ensure_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Switching to WAL takes an exclusive lock; the mode is stored in the file, so only switch
    # when it is not already set (many processes open the same file at once).
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


db = Database()


@contextmanager
def own_session() -> Iterator[Session]:
    """A session of its own, apart from the thread's scoped one: for bookkeeping (quotas,
    counters) that must commit on its own, whatever the current request has pending."""
    if db.engine is None:
        raise RuntimeError("the database is not initialised")
    with Session(db.engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session for a job or CLI command: committed on success, rolled back on error."""
    session = db.session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        db.session.remove()


def abandon_session() -> None:
    """Roll back and drop the thread's session after a request failed in the middle of its work.

    It never raises: the failure may be the connection itself (killed, lost), and this runs on
    the way to the error page, which must still be served. A connection that is gone is
    invalidated by SQLAlchemy, so the next request gets a fresh one from the pool.
    """
    try:
        db.session.rollback()
    except Exception as error:
        log.warning("rollback after a failed request failed too (%s)", type(error).__name__)
    try:
        db.session.remove()
    except Exception as error:
        log.warning("closing the session of a failed request failed (%s)", type(error).__name__)
