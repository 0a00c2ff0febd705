"""Alembic, driven from code: every service is its own branch under migrations/versions/<name>/."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from clubstack.core.db import db, ensure_sqlite_folder
from clubstack.core.errors import ClubError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    locations = sorted(str(p) for p in (MIGRATIONS / "versions").iterdir() if p.is_dir())
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), "heads")
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        # WAL is stored in the file: set it once here rather than racing for it at run time.
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            connection.execute("PRAGMA journal_mode=WAL")


def heads(url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


class SchemaMissing(ClubError):
    status = 503
    code = "schema_missing"


def open_database(url: str) -> None:
    """Connect the shared session to a database that `clubstack db upgrade` has made.

    For commands run by hand: an SQLite file that does not exist is never created (a command
    run from the wrong folder would otherwise leave an empty database behind and then fail on
    a missing table)."""
    where = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else "the database"
    advice = f"no migrated database at {where}: run `clubstack db upgrade` first"
    is_file_db = url.startswith("sqlite:///") and url != "sqlite:///:memory:"
    if is_file_db and not Path(where).is_file():
        raise SchemaMissing(
            advice + " (or set CLUBSTACK_INSTANCE to the instance folder you meant)"
        )
    engine = db.init(url)
    try:
        migrated = inspect(engine).has_table("alembic_version")
    except SQLAlchemyError as error:
        raise SchemaMissing(f"cannot reach {where}: {error.__class__.__name__}") from None
    if not migrated:
        raise SchemaMissing(advice)
