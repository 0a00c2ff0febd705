"""blog: confirmed reply-mail subscribers; spent comment form tokens

Revision ID: blog_0002_confirmed_subscribers
Revises: blog_0001
Create Date: 2026-12-05 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clubstack.core.db

revision: str = "blog_0002_confirmed_subscribers"
down_revision: str | None = "blog_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blog_subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("confirm_hash", sa.String(length=64), nullable=True),
        sa.Column("confirm_sent_at", clubstack.core.db.UTCDateTime(), nullable=True),
        sa.Column("confirmed_at", clubstack.core.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", clubstack.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blog_subscribers")),
        sa.UniqueConstraint("public_id", name=op.f("uq_blog_subscribers_public_id")),
        sa.UniqueConstraint("email", name=op.f("uq_blog_subscribers_email")),
        sa.UniqueConstraint("confirm_hash", name=op.f("uq_blog_subscribers_confirm_hash")),
    )
    op.create_table(
        "blog_used_form_tokens",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("used_at", clubstack.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_blog_used_form_tokens")),
    )
    with op.batch_alter_table("blog_used_form_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_blog_used_form_tokens_used_at"), ["used_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("blog_used_form_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blog_used_form_tokens_used_at"))
    op.drop_table("blog_used_form_tokens")
    op.drop_table("blog_subscribers")
