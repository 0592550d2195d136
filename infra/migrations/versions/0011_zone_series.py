"""Per-minute zone figures: the console's charts and the daily report.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zone_series",
        sa.Column("zone_id", sa.String(128), primary_key=True),
        # start of the minute, event time (UTC)
        sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("people", sa.Float, nullable=False),
        sa.Column("density", sa.Float, nullable=False),
    )
    # the daily report and pruning read by time across zones
    op.create_index("ix_zone_series_minute", "zone_series", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_zone_series_minute", table_name="zone_series")
    op.drop_table("zone_series")
