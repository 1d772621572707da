"""Syndication and erasure: subscriber state, the delivery ledger, erasure tombstones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_state",
        sa.Column("subscriber", sa.String(40), primary_key=True),
        sa.Column("cursor_seq", sa.BigInteger(), nullable=False),
        sa.Column("snapshot_done", sa.Boolean(), nullable=False),
        sa.Column("snapshot_seq", sa.BigInteger(), nullable=True),
        sa.Column("snapshot_after", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_total", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("subscriber", sa.String(40), primary_key=True),
        sa.Column("golden_id", sa.String(16), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("golden_id", sa.String(16), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_erasures_golden_id", "erasures", ["golden_id"])
    op.create_table(
        "erased_records",
        sa.Column("record_id", sa.String(32), primary_key=True),
        sa.Column("erasure_id", sa.Integer(), sa.ForeignKey("erasures.id"), nullable=False),
    )


def downgrade() -> None:
    for name in ("erased_records", "erasures", "deliveries", "subscriber_state"):
        op.drop_table(name)
