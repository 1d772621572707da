"""The household of each golden-record version, recorded by the households refresh that follows
the consolidation writing it, so a change event says the household as of its version however
late it is delivered or replayed (issue 20). NULL: not recorded yet (delivery reads the
current membership); an empty string: recorded, no household.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("golden_history") as batch:
        batch.add_column(sa.Column("household_id", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("golden_history") as batch:
        batch.drop_column("household_id")
