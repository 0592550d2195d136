"""Cases (立案 → 结案) and their timeline; a token's unit (responders).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("unit_id", sa.String(64), nullable=True))
    with op.batch_alter_table("invitations") as batch:
        batch.add_column(sa.Column("unit_id", sa.String(64), nullable=True))
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("zone_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("opened_by", sa.String(128), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_seq", sa.Integer, nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_step", sa.Integer, nullable=True),
        sa.Column("returns", sa.Integer, nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handle_note", sa.Text, nullable=True),
        sa.Column("photo_ids", sa.JSON, nullable=False),
        sa.Column("alert_ids", sa.JSON, nullable=False),
        sa.Column("report_ids", sa.JSON, nullable=False),
        sa.Column("late_steps", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_unit", "cases", ["unit_id"])
    op.create_index("ix_cases_due", "cases", ["due_at"])
    op.create_table(
        "case_links",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("ref_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_case_links_ref", "case_links", ["kind", "ref_id"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("command_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("photo_ids", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.UniqueConstraint("command_id", name="uq_case_events_command"),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id"])
    op.create_index("ix_case_events_action_at", "case_events", ["action", "at"])


def downgrade() -> None:
    op.drop_index("ix_case_events_action_at", "case_events")
    op.drop_index("ix_case_events_case", "case_events")
    op.drop_table("case_events")
    op.drop_index("ix_case_links_ref", "case_links")
    op.drop_table("case_links")
    op.drop_index("ix_cases_due", "cases")
    op.drop_index("ix_cases_unit", "cases")
    op.drop_index("ix_cases_status", "cases")
    op.drop_table("cases")
    with op.batch_alter_table("invitations") as batch:
        batch.drop_column("unit_id")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("unit_id")
