"""The billing migration creates exactly what the models describe, on every database."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from clubstack.core.db import db
from clubstack.services import all_metadata


def test_models_match_migration(make_app: Any, db_kind: str) -> None:
    make_app(db_kind=db_kind)
    assert db.engine is not None
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, all_metadata())
    ours = [d for d in diff if "billing_" in repr(d)]
    assert ours == []
