"""Steward corrections survivorship and matching apply: attribute overrides (a value or a source
record pinned for one attribute group of a golden record) with their history, and the
must-links / cannot-links a steward removed (an undone split).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attribute_overrides",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("golden_id", sa.String(16), nullable=False),
        sa.Column("attribute_group", sa.String(24), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("record_id", sa.String(32), nullable=True),
        sa.Column("pinned", sa.JSON(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_version", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(64), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("review_status", sa.String(16), nullable=True),
    )
    op.create_index("ix_attribute_overrides_golden", "attribute_overrides", ["golden_id", "status"])
    op.create_index("ix_attribute_overrides_review", "attribute_overrides", ["review_status"])
    op.create_table(
        "attribute_override_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("override_id", sa.Integer(), nullable=False),
        sa.Column("golden_id", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
    )
    op.create_index(
        "ix_attribute_override_history_override", "attribute_override_history", ["override_id"]
    )
    op.create_table(
        "match_override_removals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("left_record_id", sa.String(32), nullable=False),
        sa.Column("right_record_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_by", sa.String(128), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_match_override_removals_at", "match_override_removals", ["removed_at"])


def downgrade() -> None:
    op.drop_index("ix_match_override_removals_at", table_name="match_override_removals")
    op.drop_table("match_override_removals")
    op.drop_index("ix_attribute_override_history_override", table_name="attribute_override_history")
    op.drop_table("attribute_override_history")
    op.drop_index("ix_attribute_overrides_review", table_name="attribute_overrides")
    op.drop_index("ix_attribute_overrides_golden", table_name="attribute_overrides")
    op.drop_table("attribute_overrides")
