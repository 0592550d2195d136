"""Volunteers' personal data: when a report's personal fields were erased, and a log of every
access to them (operators' reads, exports, erasures, the retention job).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "personal_data_access",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("what", sa.String(256), nullable=False),
        sa.Column("report_ids", sa.JSON, nullable=False),
    )
    op.create_index("ix_personal_data_access_at", "personal_data_access", ["at"])


def downgrade() -> None:
    op.drop_index("ix_personal_data_access_at", table_name="personal_data_access")
    op.drop_table("personal_data_access")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("erased_at")
