"""Matching: steward labels and overrides, trained models, clusters, the review queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _pair_table(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("left_record_id", sa.String(32), nullable=False),
        sa.Column("right_record_id", sa.String(32), nullable=False),
        *columns,
    )
    op.create_index(f"uq_{name}_pair", name, ["left_record_id", "right_record_id"], unique=True)


def upgrade() -> None:
    _pair_table(
        "training_labels",
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("labelled_by", sa.String(128), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
    )
    _pair_table(
        "match_overrides",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    _pair_table(
        "review_queue",
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_queue_status", "review_queue", ["status"])
    op.create_table(
        "match_models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("labels_digest", sa.String(64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("settings", sa.LargeBinary(), nullable=False),
        sa.Column("settings_sha256", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_match_models_party", "match_models", ["party_type", "id"])
    op.create_table(
        "match_clusters",
        sa.Column("record_id", sa.String(32), primary_key=True),
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("organisation_cluster_id", sa.String(32), nullable=True),
        sa.Column("clustered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_match_clusters_cluster", "match_clusters", ["cluster_id"])


def downgrade() -> None:
    for name in (
        "match_clusters",
        "match_models",
        "review_queue",
        "match_overrides",
        "training_labels",
    ):
        op.drop_table(name)
