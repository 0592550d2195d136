"""Silences (matchers + time window; silenced alerts are recorded but not notified), and the
indexes the HTTP API's lists need.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("zone_id", sa.String(128), nullable=True),
        sa.Column("site", sa.String(128), nullable=True),
        sa.Column("risk", sa.String(32), nullable=True),
        sa.Column("level", sa.String(16), nullable=True),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("deleted_at", _TS, nullable=True),
        sa.Column("deleted_by", sa.String(128), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name="ck_silences_window"),
        sa.CheckConstraint(
            "zone_id IS NOT NULL OR site IS NOT NULL OR risk IS NOT NULL OR level IS NOT NULL",
            name="ck_silences_matcher",
        ),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    # The alert board and the incident list sort by recency; a report's page finds its history.
    op.create_index("ix_alerts_opened_at", "alerts", ["opened_at"])
    op.create_index("ix_alerts_updated_at", "alerts", ["updated_at"])
    op.create_index("ix_reports_submitted_at", "reports", ["submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_reports_submitted_at", table_name="reports")
    op.drop_index("ix_alerts_updated_at", table_name="alerts")
    op.drop_index("ix_alerts_opened_at", table_name="alerts")
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
