"""Business events (``events.yaml``) on each outbox row: what a golden change means to a
business (address changed, became a customer, consent withdrawn), derived in the transaction
that writes the change (issue 20).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("golden_changes") as batch:
        batch.add_column(
            sa.Column("business_events", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("golden_changes") as batch:
        batch.drop_column("business_events")
