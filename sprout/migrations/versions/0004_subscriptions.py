"""subscriptions and nudges: ideas a family asked to get by themselves, and what became of each

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("weekdays", sa.String(length=16), nullable=False),
        sa.Column("at_local", sa.String(length=5), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_local_date", sa.String(length=10), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="subscriptions_pkey"),
    )
    op.create_index("ix_subscriptions_next_due", "subscriptions", ["next_due"])
    op.create_table(
        "nudges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="nudges_pkey"),
    )
    op.create_index("ix_nudges_user_id", "nudges", ["user_id"])
    op.create_index("ix_nudges_provider_id", "nudges", ["provider_id"])


def downgrade() -> None:
    op.drop_index("ix_nudges_provider_id", table_name="nudges")
    op.drop_index("ix_nudges_user_id", table_name="nudges")
    op.drop_table("nudges")
    op.drop_index("ix_subscriptions_next_due", table_name="subscriptions")
    op.drop_table("subscriptions")
