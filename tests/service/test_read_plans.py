"""The golden-record reads search indexes: every SELECT of ``GET /v1/golden/{id}``'s lookup, of
a person, of an organisation with contacts and of a merged id, is planned by SQLite as a search
of an index, never a scan or a search by ``status`` alone of a table that grows with the hub
(found once: after an index on (status, golden_id), the contacts of an organisation were read
through every active golden record: 0.5 -> 53 ms per read at 46k golden records)."""

from __future__ import annotations

import sqlalchemy as sa

from mdm_orchestration.survivorship.lookup import lookup
from tests.helpers import query_plans, statements_run

GROWING_TABLES = ("golden_records", "golden_history", "golden_xref", "household_members")


def test_golden_reads_search_indexes(hub_engine):
    with hub_engine.connect() as conn:
        org = conn.execute(
            sa.text(
                "SELECT organisation_golden_id FROM golden_records WHERE status = 'active' "
                "AND organisation_golden_id IS NOT NULL LIMIT 1"
            )
        ).scalar_one()
        person = conn.execute(
            sa.text(
                "SELECT golden_id FROM golden_records WHERE status = 'active' "
                "AND party_type = 'person' LIMIT 1"
            )
        ).scalar_one()
        merged = conn.execute(
            sa.text("SELECT golden_id FROM golden_records WHERE status = 'merged' LIMIT 1")
        ).scalar()
    with statements_run(hub_engine) as statements, hub_engine.connect() as conn:
        found = [lookup(conn, golden_id=g) for g in (org, person, merged) if g]
    assert all(found) and any(d.get("contacts") for docs in found for d in docs)
    assert any("organisation_golden_id" in s for s in statements)
    for statement, plan in query_plans(hub_engine, statements).items():
        text = " | ".join(plan)
        for line in plan:
            for table in GROWING_TABLES:
                assert not line.startswith(f"SCAN {table}"), (statement, text)
                assert not line.endswith("(status=?)"), (statement, text)
