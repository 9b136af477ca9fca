"""safety events and operator alerts

Safeguarding events for operators (no message bodies, users pseudonymised) and the outbox of
their webhook.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "safety_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_ref", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("safety_events_pkey")),
        sa.UniqueConstraint(
            "inbound_id",
            "stage",
            "category",
            name=op.f("safety_events_inbound_id_stage_category_key"),
        ),
    )
    with op.batch_alter_table("safety_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_safety_events_user_ref"), ["user_ref"], unique=False)

    op.create_table(
        "safety_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["safety_events.id"], name=op.f("safety_alerts_event_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("safety_alerts_pkey")),
        sa.UniqueConstraint("event_id", name=op.f("safety_alerts_event_id_key")),
    )
    with op.batch_alter_table("safety_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_alerts_next_at"), ["next_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("safety_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_safety_alerts_next_at"))

    op.drop_table("safety_alerts")
    with op.batch_alter_table("safety_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_safety_events_user_ref"))
        batch_op.drop_index(batch_op.f("ix_safety_events_at"))

    op.drop_table("safety_events")
