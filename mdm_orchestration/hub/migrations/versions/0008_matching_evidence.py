"""Matching on evidence: a website and the domain derived from it (or from a business email),
the digits of a phone that fails validation, an organisation's legal-form family; review items
ranked by how much a decision changes (one per pair of clusters); hub-wide value counts for
frequency-aware matching, kept by the incremental path.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

CLEANSED = (
    ("website", sa.Text()),
    ("web_domain", sa.String(253)),
    ("phone_digits", sa.String(32)),
    ("legal_form_family", sa.String(32)),
)
REVIEW = (
    ("priority", sa.Float()),
    ("records_affected", sa.Integer()),
    ("left_cluster_id", sa.String(32)),
    ("right_cluster_id", sa.String(32)),
    ("records_digest", sa.String(64)),
)


def upgrade() -> None:
    with op.batch_alter_table("cleansed_records") as batch:
        for name, kind in CLEANSED:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("review_queue") as batch:
        for name, kind in REVIEW:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_index("ix_review_queue_priority", "review_queue", ["status", "priority"])
    op.create_table(
        "term_frequencies",
        sa.Column("party_type", sa.String(16), primary_key=True),
        sa.Column("field", sa.String(16), primary_key=True),
        sa.Column("value_key", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("term_frequencies")
    op.drop_index("ix_review_queue_priority", "review_queue")
    with op.batch_alter_table("review_queue") as batch:
        for name, _kind in REVIEW:
            batch.drop_column(name)
    with op.batch_alter_table("cleansed_records") as batch:
        for name, _kind in CLEANSED:
            batch.drop_column(name)
