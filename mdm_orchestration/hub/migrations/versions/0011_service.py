"""The HTTP service: API keys (hashed) and the ledger of records written through the API.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("uq_api_keys_hash", "api_keys", ["key_hash"], unique=True)
    op.create_table(
        "api_writes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("extract_id", sa.Integer(), sa.ForeignKey("extracts.id"), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("source_record_id", sa.String(32), nullable=False),
        sa.Column("api_key_id", sa.String(16), nullable=False),
        sa.Column("idempotency_key_hash", sa.String(64), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "uq_api_writes_idempotency",
        "api_writes",
        ["api_key_id", "idempotency_key_hash"],
        unique=True,
    )
    op.create_index("ix_api_writes_extract", "api_writes", ["extract_id"])


def downgrade() -> None:
    op.drop_index("ix_api_writes_extract", table_name="api_writes")
    op.drop_index("uq_api_writes_idempotency", table_name="api_writes")
    op.drop_table("api_writes")
    op.drop_index("uq_api_keys_hash", table_name="api_keys")
    op.drop_table("api_keys")
