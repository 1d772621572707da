"""Files the landing scan skipped (symlinks out of the root, folder links, names with control
characters, files at the landing root), with the reason, for operators.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "landing_skips",
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("landing_skips")
