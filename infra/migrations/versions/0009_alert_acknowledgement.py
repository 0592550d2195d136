"""Who acknowledged an alert, and whether it latched (resolved on its own, unacknowledged);
when (wall clock) a zone's latest reading was taken in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("acknowledged_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("latched", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_alerts_latched", ["latched"])
    with op.batch_alter_table("zone_status") as batch:
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("zone_status") as batch:
        batch.drop_column("received_at")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_latched")
        batch.drop_column("latched")
        batch.drop_column("acknowledged_at")
        batch.drop_column("acknowledged_by")
