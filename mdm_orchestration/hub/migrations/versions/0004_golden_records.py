"""Mastering: golden records, their history, the cross-reference, the outbox, households.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _golden_values() -> list[sa.Column]:
    return [
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("consents", sa.JSON(), nullable=False),
        sa.Column("lifecycle", sa.String(32), nullable=True),
        sa.Column("organisation_golden_id", sa.String(16), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "golden_records",
        sa.Column("golden_id", sa.String(16), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(16), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_run_id", sa.String(64), nullable=True),
        sa.Column("updated_run_id", sa.String(64), nullable=True),
        *_golden_values(),
    )
    op.create_index("uq_golden_records_seq", "golden_records", ["seq"], unique=True)
    op.create_index("ix_golden_records_status", "golden_records", ["status"])
    op.create_index("ix_golden_records_org", "golden_records", ["organisation_golden_id"])
    op.create_table(
        "golden_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("golden_id", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("changed", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("merged_into", sa.String(16), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        *_golden_values(),
    )
    op.create_index(
        "uq_golden_history_version", "golden_history", ["golden_id", "version"], unique=True
    )
    op.create_index("ix_golden_history_recorded", "golden_history", ["recorded_at"])
    op.create_table(
        "golden_xref",
        sa.Column("record_id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("source_key", sa.String(256), nullable=False),
        sa.Column("golden_id", sa.String(16), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("uq_golden_xref_key", "golden_xref", ["source", "source_key"], unique=True)
    op.create_index("ix_golden_xref_golden", "golden_xref", ["golden_id"])
    op.create_table(
        "golden_changes",
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("golden_id", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("changed", sa.JSON(), nullable=False),
        sa.Column("related", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("uq_golden_changes_event", "golden_changes", ["event_id"], unique=True)
    op.create_index("ix_golden_changes_golden", "golden_changes", ["golden_id", "version"])
    op.create_table(
        "golden_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("clusters_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("config_digest", sa.String(64), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "households",
        sa.Column("household_id", sa.String(16), primary_key=True),
        sa.Column("address_key", sa.Text(), nullable=False),
        sa.Column("family_key", sa.Text(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "household_members",
        sa.Column("golden_id", sa.String(16), primary_key=True),
        sa.Column("household_id", sa.String(16), nullable=False),
    )
    op.create_index("ix_household_members_household", "household_members", ["household_id"])


def downgrade() -> None:
    for name in (
        "household_members",
        "households",
        "golden_runs",
        "golden_changes",
        "golden_xref",
        "golden_history",
        "golden_records",
    ):
        op.drop_table(name)
