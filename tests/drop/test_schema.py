"""The drop's migration creates exactly the table its model describes, on every database."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from clubstack.core.db import db
from clubstack.services import all_metadata


def test_migration_matches_the_model(make_app: Any, db_kind: str) -> None:
    make_app(db_kind=db_kind)
    assert db.engine is not None
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = [
            d for d in compare_metadata(context, all_metadata()) if "drop_messages" in repr(d)
        ]
        columns = {c["name"] for c in inspect(conn).get_columns("drop_messages")}
        indexes = {i["name"] for i in inspect(conn).get_indexes("drop_messages")}
    assert differences == []
    assert columns == {"id", "body", "burn", "created_at", "expires_at", "delete_hash"}
    assert "ix_drop_messages_expires_at" in indexes
