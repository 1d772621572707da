"""Cleansed records and the per-extract cleansing watermark.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("extracts") as batch:
        batch.add_column(sa.Column("cleansed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "cleansed_records",
        sa.Column("extract_id", sa.Integer(), sa.ForeignKey("extracts.id"), primary_key=True),
        sa.Column("row_number", sa.Integer(), primary_key=True),
        sa.Column("source_record_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("source_key", sa.String(256), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("party_type", sa.String(16), nullable=False),
        sa.Column("lifecycle", sa.String(32), nullable=True),
        *[
            sa.Column(name, sa.Text(), nullable=True)
            for name in (
                "title",
                "given_name",
                "middle_name",
                "family_name",
                "suffix",
                "full_name",
                "given_key",
                "family_key",
            )
        ],
        sa.Column("given_phonetic", sa.String(16), nullable=True),
        sa.Column("family_phonetic", sa.String(16), nullable=True),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column("legal_form", sa.String(32), nullable=True),
        sa.Column("company_key", sa.Text(), nullable=True),
        sa.Column("job_title", sa.Text(), nullable=True),
        sa.Column("organisation_record_id", sa.String(32), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_key", sa.Text(), nullable=True),
        sa.Column("email_valid", sa.Boolean(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("phone_valid", sa.Boolean(), nullable=True),
        *[
            sa.Column(name, sa.Text(), nullable=True)
            for name in (
                "street_number",
                "street_name",
                "unit",
                "street",
                "city",
                "region",
                "postcode",
            )
        ],
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("address_key", sa.Text(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("national_id", sa.Text(), nullable=True),
        sa.Column("national_id_type", sa.String(32), nullable=True),
        sa.Column("national_id_valid", sa.Boolean(), nullable=True),
        sa.Column("consents", sa.JSON(), nullable=False),
        sa.Column("quality_score", sa.Float(), nullable=False),
        sa.Column("quality_flags", sa.JSON(), nullable=False),
        sa.Column("cleansed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_cleansed_source_record", "cleansed_records", ["source_record_id"])
    op.create_index("ix_cleansed_source", "cleansed_records", ["source"])


def downgrade() -> None:
    op.drop_table("cleansed_records")
    with op.batch_alter_table("extracts") as batch:
        batch.drop_column("cleansed_at")
