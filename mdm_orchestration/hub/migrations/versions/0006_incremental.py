"""Incremental reconsolidation: the blocking index, the consolidation queue, match runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("match_clusters") as batch:
        batch.add_column(sa.Column("extract_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("row_number", sa.Integer(), nullable=True))
    op.create_table(
        "blocking_index",
        sa.Column("record_id", sa.String(32), primary_key=True),
        sa.Column("key_name", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(32), nullable=False),
    )
    # The hash covers the key's name too, so it alone finds a block.
    op.create_index("ix_blocking_index_hash", "blocking_index", ["key_hash"])
    op.create_index("ix_review_queue_right", "review_queue", ["right_record_id"])
    op.create_table(
        "consolidation_queue",
        sa.Column("record_id", sa.String(32), primary_key=True),
    )
    op.create_table(
        "match_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("cleansed_upto", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for name in ("match_runs", "consolidation_queue", "blocking_index"):
        op.drop_table(name)
    op.drop_index("ix_review_queue_right", "review_queue")
    with op.batch_alter_table("match_clusters") as batch:
        batch.drop_column("row_number")
        batch.drop_column("extract_id")
