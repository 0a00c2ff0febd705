"""lookup tables: batches, items, result cache

Revision ID: lookup_0001
Revises:
Create Date: 2026-11-22 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clubstack.core.db

revision: str = "lookup_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("lookup",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "lookup_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", clubstack.core.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", clubstack.core.db.UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("checks", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_lookup_batches_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_batches")),
    )
    op.create_index(op.f("ix_lookup_batches_user_id"), "lookup_batches", ["user_id"], unique=False)
    op.create_table(
        "lookup_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("check", sa.String(length=32), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("as_of", clubstack.core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", clubstack.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_lookup_cache")),
    )
    op.create_index("ix_lookup_cache_expires_at", "lookup_cache", ["expires_at"], unique=False)
    op.create_table(
        "lookup_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=2048), nullable=False),
        sa.Column("verdict", sa.Integer(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["lookup_batches.id"],
            name=op.f("fk_lookup_items_batch_id_lookup_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_items")),
        sa.UniqueConstraint("batch_id", "position", name=op.f("uq_lookup_items_batch_id_position")),
    )
    op.create_index(op.f("ix_lookup_items_batch_id"), "lookup_items", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_lookup_items_batch_id"), table_name="lookup_items")
    op.drop_table("lookup_items")
    op.drop_index("ix_lookup_cache_expires_at", table_name="lookup_cache")
    op.drop_table("lookup_cache")
    op.drop_index(op.f("ix_lookup_batches_user_id"), table_name="lookup_batches")
    op.drop_table("lookup_batches")
