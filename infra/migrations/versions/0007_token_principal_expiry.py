"""API tokens: a stable principal id (who the token belongs to) and an optional expiry.

Reports are keyed by the principal, not the token's display name: two volunteers called 王芳 are
two principals. Tokens created before this revision get their name as principal, so a volunteer's
existing reports stay theirs (re-issue such tokens to tell same-named people apart).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("principal", sa.String(128), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_tokens SET principal = name WHERE principal IS NULL")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("principal", existing_type=sa.String(128), nullable=False)
        batch.create_index("ix_api_tokens_principal", ["principal"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_principal")
        batch.drop_column("expires_at")
        batch.drop_column("principal")
