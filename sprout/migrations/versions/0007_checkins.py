"""check-ins: the question after an activity, and a template's delivery status on nudges

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("about", sa.String(length=200), nullable=False),
        sa.Column("whole_list", sa.Boolean(), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("verdict_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="checkins_pkey"),
        sa.UniqueConstraint("inbound_id", name="checkins_inbound_id_key"),
    )
    op.create_index("ix_checkins_user_id", "checkins", ["user_id"])
    op.create_index("ix_checkins_due_at", "checkins", ["due_at"])
    op.add_column(
        "nudges", sa.Column("channel", sa.String(length=32), nullable=False, server_default="")
    )
    op.add_column("nudges", sa.Column("delivery_status", sa.String(length=32), nullable=True))
    op.add_column("nudges", sa.Column("checkin_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nudges") as batch:
        batch.drop_column("checkin_id")
        batch.drop_column("delivery_status")
        batch.drop_column("channel")
    op.drop_index("ix_checkins_due_at", table_name="checkins")
    op.drop_index("ix_checkins_user_id", table_name="checkins")
    op.drop_table("checkins")
