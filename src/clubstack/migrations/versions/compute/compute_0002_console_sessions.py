"""compute: console sessions (one-time tickets and their audit record), SSH port forwards

Revision ID: compute_0002_console_sessions
Revises: compute_0001
Create Date: 2026-12-05 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clubstack.core.db

revision: str = "compute_0002_console_sessions"
down_revision: str | None = "compute_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compute_console_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("capsul_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", clubstack.core.db.UTCDateTime(), nullable=False),
        sa.Column("started_at", clubstack.core.db.UTCDateTime(), nullable=True),
        sa.Column("ended_at", clubstack.core.db.UTCDateTime(), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("end_reason", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["capsul_id"],
            ["compute_capsuls.id"],
            name=op.f("fk_compute_console_sessions_capsul_id_compute_capsuls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_compute_console_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compute_console_sessions")),
    )
    op.create_index(
        "ix_compute_console_sessions_open",
        "compute_console_sessions",
        ["ended_at", "started_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_compute_console_sessions_capsul_id"),
        "compute_console_sessions",
        ["capsul_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_compute_console_sessions_user_id"),
        "compute_console_sessions",
        ["user_id"],
        unique=False,
    )
    with op.batch_alter_table("compute_capsuls") as batch:
        batch.add_column(
            sa.Column("ssh_forward", sa.String(length=64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("compute_capsuls") as batch:
        batch.drop_column("ssh_forward")
    op.drop_index(
        op.f("ix_compute_console_sessions_user_id"), table_name="compute_console_sessions"
    )
    op.drop_index(
        op.f("ix_compute_console_sessions_capsul_id"), table_name="compute_console_sessions"
    )
    op.drop_index("ix_compute_console_sessions_open", table_name="compute_console_sessions")
    op.drop_table("compute_console_sessions")
