"""Scored record pairs kept for incremental matching; clusters found by their organisation;
on SQLite, the blocking index stored in record order (WITHOUT ROWID), so that an incremental
run's changes to it touch a page per record rather than one per key; households found by
address, and a cursor over the outbox for them.

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
        sqlite_with_rowid=False,
    )
    op.create_index("ix_match_pairs_right", "match_pairs", ["right_record_id"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TABLE blocking_index_new (record_id VARCHAR(32) NOT NULL, "
            "key_name VARCHAR(32) NOT NULL, key_hash VARCHAR(32) NOT NULL, "
            "PRIMARY KEY (record_id, key_name)) WITHOUT ROWID"
        )
        op.execute(
            "INSERT INTO blocking_index_new SELECT record_id, key_name, key_hash "
            "FROM blocking_index"
        )
        op.drop_index("ix_blocking_index_hash", "blocking_index")
        op.drop_table("blocking_index")
        op.rename_table("blocking_index_new", "blocking_index")
        op.create_index("ix_blocking_index_hash", "blocking_index", ["key_hash"])
    op.create_index("ix_match_clusters_org", "match_clusters", ["organisation_cluster_id"])
    # Households follow the outbox: those at the addresses of changed golden records are redone.
    op.create_index("ix_households_address", "households", ["address_key"])
    # A run's checks read the golden records it wrote.
    op.create_index("ix_golden_records_updated_run", "golden_records", ["updated_run_id"])
    op.create_table(
        "hub_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_golden_records_updated_run", "golden_records")
    op.drop_table("hub_cursors")
    op.drop_index("ix_households_address", "households")
    op.drop_index("ix_match_clusters_org", "match_clusters")
    op.drop_index("ix_match_pairs_right", "match_pairs")
    op.drop_table("match_pairs")
