"""Webhook notifications: every delivery attempt, delivered or not.

No foreign key to ``alerts``: the notifier (in the API process) may see an alert on
``puhui.alerts`` before the worker has written its row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("delivered", sa.Boolean, nullable=False),
        sa.UniqueConstraint("notification_id", "attempt", name="uq_notification_attempt"),
    )
    op.create_index("ix_notification_attempts_alert_id", "notification_attempts", ["alert_id"])
    op.create_index("ix_notification_attempts_at", "notification_attempts", ["at"])


def downgrade() -> None:
    op.drop_index("ix_notification_attempts_at", table_name="notification_attempts")
    op.drop_index("ix_notification_attempts_alert_id", table_name="notification_attempts")
    op.drop_table("notification_attempts")
