"""Scored record pairs kept for incremental matching; clusters found by their organisation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_pairs",
        sa.Column("left_record_id", sa.String(32), primary_key=True),
        sa.Column("right_record_id", sa.String(32), primary_key=True),
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("by_rule", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_match_pairs_right", "match_pairs", ["right_record_id"])
    op.create_index("ix_match_clusters_org", "match_clusters", ["organisation_cluster_id"])


def downgrade() -> None:
    op.drop_index("ix_match_clusters_org", "match_clusters")
    op.drop_index("ix_match_pairs_right", "match_pairs")
    op.drop_table("match_pairs")
