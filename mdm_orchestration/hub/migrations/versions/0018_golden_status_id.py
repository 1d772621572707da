"""Active golden records in golden-id order: a subscriber's snapshot reads them a batch at a time
(``status = 'active' AND golden_id > :after ORDER BY golden_id LIMIT :n``). With the index on
``status`` alone, SQLite searched every active record and sorted them for each batch, so a
snapshot cost grew with the square of the hub (1M records: 805 s of CPU); this index answers
each batch with a range of ``batch_size`` rows.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_golden_records_status_golden", "golden_records", ["status", "golden_id"])


def downgrade() -> None:
    op.drop_index("ix_golden_records_status_golden", table_name="golden_records")
