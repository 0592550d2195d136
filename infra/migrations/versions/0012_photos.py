"""Photos uploaded by volunteers and responders (``POST /api/photos``): who, when, what came in,
what is stored (the files live under ``PUHUI_PHOTO_DIR``), the report a photo is attached to,
and when it was erased.

Revision ID: 0012
Revises: 0009 (the lead re-chains 0010/0011/0012 at merge)
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"  # chained after 0010_cases on h12a (the lead re-chains at merge)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("photo_id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("owner_role", sa.String(16), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_format", sa.String(8), nullable=False),
        sa.Column("source_bytes", sa.Integer, nullable=False),
        sa.Column("source_width", sa.Integer, nullable=False),
        sa.Column("source_height", sa.Integer, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("thumb_bytes", sa.Integer, nullable=False),
        sa.Column("thumb_width", sa.Integer, nullable=False),
        sa.Column("thumb_height", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("report_id", sa.String(128), nullable=True),
        sa.Column("position", sa.Integer, nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_photos_owner", "photos", ["owner"])
    op.create_index("ix_photos_uploaded_at", "photos", ["uploaded_at"])
    op.create_index("ix_photos_report_id", "photos", ["report_id"])


def downgrade() -> None:
    op.drop_index("ix_photos_report_id", table_name="photos")
    op.drop_index("ix_photos_uploaded_at", table_name="photos")
    op.drop_index("ix_photos_owner", table_name="photos")
    op.drop_table("photos")
