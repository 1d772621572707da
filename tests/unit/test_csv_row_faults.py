"""Defect 7: a bad CSV quote quarantines that row (with its reason) and loads the rest."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from tests.helpers import write_file
from tests.unit.test_ingest import BILLING_HEADER, billing_row
from tests.unit.test_reader_faults import _quarantine


def test_bad_csv_quote_quarantines_the_row_and_loads_the_rest(sqlite_engine, hub_config, landing):
    """Defect 7: one bad quote rejected the whole file."""
    bad = billing_row("B2").replace("Doe, Jane", '"Doe, Ja"ne"')
    assert bad != billing_row("B2")
    content = BILLING_HEADER + billing_row("B1") + bad + billing_row("B3") + billing_row("B4")
    path = write_file(landing / "billing/quote.csv", content)
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert outcome.status is ExtractStatus.loaded
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (4, 3, 1)
    [(row_number, _field, reason, detail)] = _quarantine(sqlite_engine)
    assert (row_number, reason) == (2, "bad_quoting")
    assert "Ja" not in detail and "Doe" not in detail  # the reason carries no value
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT source_key, row_number FROM source_record_versions ORDER BY row_number")
        ).all()
    # Row numbers after the bad row stay right.
    assert [tuple(r) for r in rows] == [("B1", 1), ("B3", 3), ("B4", 4)]


def test_bad_quote_spanning_lines_keeps_later_row_numbers(sqlite_engine, hub_config, landing):
    bad = billing_row("B2").replace("Doe, Jane", '"Doe,\nJa"ne"')
    content = BILLING_HEADER + billing_row("B1") + bad + billing_row("B3")
    path = write_file(landing / "billing/quote2.csv", content)
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (3, 2, 1)
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT source_key, row_number FROM source_record_versions ORDER BY row_number")
        ).all()
    assert [tuple(r) for r in rows] == [("B1", 1), ("B3", 3)]


def test_truncated_csv_quote_is_still_a_whole_file_rejection(sqlite_engine, hub_config, landing):
    path = write_file(
        landing / "billing/cut.csv", BILLING_HEADER + billing_row("B1") + 'B2;"Doe, Ja'
    )
    with pytest.raises(ExtractRejected) as info:
        ingest_file(sqlite_engine, hub_config, path, landing)
    assert info.value.code == "truncated"
