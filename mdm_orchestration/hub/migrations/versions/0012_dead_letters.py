"""Dead letters: outbox events a subscriber refused permanently, and the events held behind
them (issue 17, defect 12).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("golden_id", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error_class", sa.String(40), nullable=True),
        sa.Column("error_status", sa.Integer, nullable=True),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(80), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.UniqueConstraint("subscriber", "event_id", name="uq_dead_letters_subscriber_event"),
    )
    op.create_index("ix_dead_letters_subscriber_state", "dead_letters", ["subscriber", "state"])
    op.create_index(
        "ix_dead_letters_subscriber_golden", "dead_letters", ["subscriber", "golden_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_subscriber_golden", table_name="dead_letters")
    op.drop_index("ix_dead_letters_subscriber_state", table_name="dead_letters")
    op.drop_table("dead_letters")
