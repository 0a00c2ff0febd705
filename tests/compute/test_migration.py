"""The compute Alembic branch creates exactly the tables the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from clubstack.core.db import db
from clubstack.services import all_metadata


def test_migration_matches_models(make_app, db_kind):
    app = make_app(db_kind)
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, all_metadata())
    ours = [d for d in diff if "compute_" in repr(d)]
    assert ours == []
