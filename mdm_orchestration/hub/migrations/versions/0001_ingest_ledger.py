"""Ingest ledger, source-record versions, source records and quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "extracts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("file_name", sa.String(512), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rows_landed", sa.Integer(), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_quarantined", sa.Integer(), nullable=False),
        sa.Column("unmapped_columns", sa.JSON(), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), sa.ForeignKey("extracts.id"), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_extracts_source", "extracts", ["source"])
    op.create_index("ix_extracts_status", "extracts", ["status"])
    op.create_index(
        "uq_extracts_loaded_content",
        "extracts",
        ["source", "content_hash"],
        unique=True,
        sqlite_where=sa.text("status = 'loaded'"),
        postgresql_where=sa.text("status = 'loaded'"),
    )
    op.create_table(
        "source_record_versions",
        sa.Column("extract_id", sa.Integer(), sa.ForeignKey("extracts.id"), primary_key=True),
        sa.Column("row_number", sa.Integer(), primary_key=True),
        sa.Column("source_record_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("source_key", sa.String(256), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("raw_hash", sa.String(32), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_srv_record", "source_record_versions", ["source_record_id"])
    op.create_table(
        "source_records",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("source_key", sa.String(256), nullable=False),
        sa.Column("current_extract_id", sa.Integer(), sa.ForeignKey("extracts.id"), nullable=False),
        sa.Column("current_row_number", sa.Integer(), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "uq_source_records_key", "source_records", ["source", "source_key"], unique=True
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("extract_id", sa.Integer(), sa.ForeignKey("extracts.id"), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("field", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_quarantine_extract", "quarantine", ["extract_id", "row_number"])
    op.create_index("ix_quarantine_stage", "quarantine", ["stage"])


def downgrade() -> None:
    op.drop_table("quarantine")
    op.drop_table("source_records")
    op.drop_table("source_record_versions")
    op.drop_table("extracts")
