"""Defect 11: a rejection is recorded once per content; changed content is tried again."""

from __future__ import annotations

import pytest

from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from tests.helpers import write_file
from tests.unit.test_ingest import BILLING_HEADER, billing_row, ledger

DRIFTED = BILLING_HEADER.replace("full_name", "name")


def _reject(engine, config, path, landing) -> ExtractRejected:
    with pytest.raises(ExtractRejected) as info:
        ingest_file(engine, config, path, landing)
    return info.value


def test_same_rejected_content_is_recorded_once(sqlite_engine, hub_config, landing):
    path = write_file(landing / "billing/drift.csv", DRIFTED + billing_row("B1"))
    for _ in range(3):
        assert _reject(sqlite_engine, hub_config, path, landing).code == "schema_drift"
    # The same bytes under another name: the same content, still one rejection.
    copy = write_file(landing / "billing/drift_again.csv", DRIFTED + billing_row("B1"))
    _reject(sqlite_engine, hub_config, copy, landing)
    rows = ledger(sqlite_engine)
    assert [r["status"] for r in rows] == ["rejected"]
    from mdm_orchestration.ingestion import rejected_extract_id

    assert rejected_extract_id(sqlite_engine, "billing", rows[0]["content_hash"]) == rows[0]["id"]

    # New bytes under the same name are tried again, and recorded.
    write_file(path, DRIFTED + billing_row("B2"))
    _reject(sqlite_engine, hub_config, path, landing)
    assert [r["status"] for r in ledger(sqlite_engine)] == ["rejected", "rejected"]
    # And once fixed, loaded.
    write_file(path, BILLING_HEADER + billing_row("B2"))
    assert ingest_file(sqlite_engine, hub_config, path, landing).status.value == "loaded"


def test_rejection_before_hashing_is_recorded_once_per_name_and_reason(
    sqlite_engine, hub_config, landing
):
    path = write_file(landing / "nosuchsource/x.csv", BILLING_HEADER)
    for _ in range(2):
        assert _reject(sqlite_engine, hub_config, path, landing).code == "unknown_source"
    assert [r["status"] for r in ledger(sqlite_engine)] == ["rejected"]
