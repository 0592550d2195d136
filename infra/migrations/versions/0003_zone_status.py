"""Latest crowd figures per zone (written by the worker, read by the API).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zone_status",
        sa.Column("zone_id", sa.String(128), primary_key=True),
        sa.Column("people", sa.Float, nullable=True),
        sa.Column("density", sa.Float, nullable=True),
        sa.Column("occupancy", sa.Float, nullable=True),
        sa.Column("level", sa.String(16), nullable=True),
        sa.Column("peak_5m", sa.Float, nullable=True),
        sa.Column("peak_1h", sa.Float, nullable=True),
        sa.Column("peak_day", sa.Float, nullable=True),
        sa.Column("inflow_per_min", sa.Float, nullable=True),
        sa.Column("outflow_per_min", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("zone_status")
