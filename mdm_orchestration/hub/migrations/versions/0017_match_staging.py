"""Staging for the partitioned full rebuild (issue 21): each partition step writes the pairs it
scored (the blocks whose key hashes to it) under the run's token, and a row saying it finished
and what it read; the clustering step joins them and clears them in its own transaction.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_stage_partitions",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("part", sa.Integer(), primary_key=True),
        sa.Column("partitions", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.String(64), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "match_stage_pairs",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("part", sa.Integer(), primary_key=True),
        sa.Column("left_record_id", sa.String(32), primary_key=True),
        sa.Column("right_record_id", sa.String(32), primary_key=True),
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("by_rule", sa.Boolean(), nullable=False),
        sa.Column("weak", sa.Boolean(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("match_stage_pairs")
    op.drop_table("match_stage_partitions")
