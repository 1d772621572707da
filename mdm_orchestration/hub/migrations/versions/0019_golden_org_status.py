"""An organisation's active contacts in golden-id order (``organisation_golden_id = :org AND
status = 'active' ORDER BY golden_id``, every golden-record read: ``GET /v1/golden``, ``mdm
golden``, the workbench). Once 0018 added (status, golden_id), SQLite chose that index for this
query, to save the sort, and read every active golden record for each read: 0.5 ms -> 53 ms per
``GET /v1/golden`` on a hub of 46k golden records, growing with the hub. This index answers it
with the organisation's own rows, in order; it serves the lookups by organisation alone as
well, so it replaces ix_golden_records_org.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_golden_records_org_status",
        "golden_records",
        ["organisation_golden_id", "status", "golden_id"],
    )
    op.drop_index("ix_golden_records_org", table_name="golden_records")


def downgrade() -> None:
    op.create_index("ix_golden_records_org", "golden_records", ["organisation_golden_id"])
    op.drop_index("ix_golden_records_org_status", table_name="golden_records")
