"""a comment on a 👎: the parent's answer to "what would have been better?"

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("comment", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite cannot drop a column in place: batch mode copies the table without it.
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("comment")
