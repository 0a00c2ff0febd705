"""The blog's Alembic branch creates exactly the tables its models describe."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from clubstack.core.migrate import heads, upgrade
from clubstack.services import all_metadata


def test_migration_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    assert any(head.startswith("blog_") for head in heads(url))
    engine = create_engine(url)
    with engine.connect() as conn:
        assert {"blog_comments", "blog_blocked"} <= set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), all_metadata())
    blog_diff = [d for d in diff if "blog_" in repr(d)]
    assert blog_diff == []
    engine.dispose()
