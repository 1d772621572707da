"""Ingestion of real files into a real SQLite hub: the good path and every bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from mdm_orchestration.sample_data import ERP_HEADER
from tests.helpers import write_file

BILLING_HEADER = (
    "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"
)


def billing_row(
    key: str, name: str = "Doe, Jane", updated: str = "2026-01-01 10:00:00", **extra: str
) -> str:
    """One ``;``-separated billing row, quoted the way a CSV writer quotes it."""
    fields = {
        "cust_no": key,
        "full_name": name,
        "addr_line1": "1 Main St",
        "addr_line2": "",
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
        "phone": "217-555-0100",
        "email": "jane@example.com",
        "dob": "1980-02-03",
        "ssn": "123-45-6789",
        "last_updated": updated,
    }
    fields.update(extra)
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerow(fields.values())
    return out.getvalue()


def shop_record(key: str, **extra: object) -> dict:
    """One e-commerce sign-up as the web shop exports it (nested shipping address)."""
    return {
        "user_id": key,
        "email": f"{key}@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": None,
        "birthday": None,
        "updated_at": "2026-01-01T00:00:00Z",
        "marketing_opt_in": True,
        "shipping": {
            "line1": "1 Main St",
            "line2": None,
            "city": "X",
            "region": "IL",
            "postal_code": "62701",
            "country": "US",
        },
        **extra,
    }


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("extracts", "source_record_versions", "source_records", "quarantine")
        }


def ledger(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.text("SELECT * FROM extracts ORDER BY id")).all()
        ]


def test_csv_rows_become_versions_and_records(sqlite_engine, hub_config, landing):
    path = write_file(
        landing / "billing/c1.csv",
        BILLING_HEADER + billing_row("B1") + billing_row("B2", name="Smith, John"),
    )
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert outcome.status is ExtractStatus.loaded
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (2, 2, 0)
    assert outcome.unmapped_columns == []
    with sqlite_engine.connect() as conn:
        raw = conn.execute(
            sa.text("SELECT raw FROM source_record_versions WHERE source_key = 'B2'")
        ).scalar_one()
    assert json.loads(raw)["full_name"] == "Smith, John"
    assert counts(sqlite_engine) == {
        "extracts": 1,
        "source_record_versions": 2,
        "source_records": 2,
        "quarantine": 0,
    }
    [row] = ledger(sqlite_engine)
    assert row["status"] == "loaded" and row["rows_landed"] == 2 and len(row["content_hash"]) == 64


def test_bad_rows_are_quarantined_with_field_and_reason(sqlite_engine, hub_config, landing):
    rows = [
        billing_row("B1"),
        billing_row(""),  # empty key
        billing_row("   "),  # blank key
        billing_row("B4").rstrip("\n") + ";surplus\n",  # one field too many
        billing_row("B5", updated="not a timestamp"),  # unparseable updated-at
        billing_row("B6", full_name="x" * 5000),  # oversized field
        billing_row("B7"),
    ]
    path = write_file(landing / "billing/bad.csv", BILLING_HEADER + "".join(rows))
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert outcome.rows_landed == 7
    assert outcome.rows_loaded == 2
    assert outcome.rows_quarantined == 5
    assert dict(outcome.quarantine_reasons) == {
        "missing_key": 2,
        "wrong_field_count": 1,
        "invalid_updated_at": 1,
        "field_too_long": 1,
    }
    with sqlite_engine.connect() as conn:
        quarantined = conn.execute(
            sa.text("SELECT row_number, field, reason, detail FROM quarantine ORDER BY row_number")
        ).all()
    assert [(r.row_number, r.field, r.reason) for r in quarantined] == [
        (2, "cust_no", "missing_key"),
        (3, "cust_no", "missing_key"),
        (4, None, "wrong_field_count"),
        (5, "last_updated", "invalid_updated_at"),
        (6, "full_name", "field_too_long"),
    ]
    # The reason never carries the offending value.
    assert all(
        "not a timestamp" not in (r.detail or "") and "xxxx" not in (r.detail or "")
        for r in quarantined
    )


def test_same_content_twice_is_ingested_once(sqlite_engine, hub_config, landing):
    content = BILLING_HEADER + billing_row("B1")
    first = ingest_file(
        sqlite_engine, hub_config, write_file(landing / "billing/a.csv", content), landing
    )
    again = ingest_file(sqlite_engine, hub_config, landing / "billing/a.csv", landing)
    renamed = ingest_file(
        sqlite_engine, hub_config, write_file(landing / "billing/b.csv", content), landing
    )
    assert first.status is ExtractStatus.loaded
    assert again.status is ExtractStatus.duplicate and again.duplicate_of == first.extract_id
    assert renamed.status is ExtractStatus.duplicate and renamed.duplicate_of == first.extract_id
    c = counts(sqlite_engine)
    assert c["source_record_versions"] == 1 and c["source_records"] == 1
    assert [r["status"] for r in ledger(sqlite_engine)] == ["loaded", "duplicate", "duplicate"]


def test_corrected_extract_supersedes_and_old_extract_does_not(sqlite_engine, hub_config, landing):
    v1 = BILLING_HEADER + billing_row("B1", name="Doe, Jane", updated="2026-01-01 10:00:00")
    v2 = BILLING_HEADER + billing_row("B1", name="Roe, Jane", updated="2026-02-01 10:00:00")
    old = BILLING_HEADER + billing_row("B1", name="Old, Jane", updated="2025-06-01 10:00:00")
    ingest_file(sqlite_engine, hub_config, write_file(landing / "billing/c.csv", v1), landing)
    second = ingest_file(
        sqlite_engine, hub_config, write_file(landing / "billing/c.csv", v2), landing
    )
    ingest_file(sqlite_engine, hub_config, write_file(landing / "billing/late.csv", old), landing)

    def current_name() -> str:
        with sqlite_engine.connect() as conn:
            raw = conn.execute(
                sa.text(
                    "SELECT v.raw FROM source_records r JOIN source_record_versions v "
                    "ON v.extract_id = r.current_extract_id AND v.row_number = r.current_row_number "
                    "WHERE r.source_key = 'B1'"
                )
            ).scalar_one()
        return json.loads(raw)["full_name"]

    assert second.status is ExtractStatus.loaded  # same name, new bytes: a new version
    assert current_name() == "Roe, Jane"  # the late, older extract did not overwrite it
    c = counts(sqlite_engine)
    assert c["source_record_versions"] == 3 and c["source_records"] == 1


def _assert_rejected_and_nothing_written(engine, code: str, call) -> ExtractRejected:
    before = counts(engine)
    with pytest.raises(ExtractRejected) as info:
        call()
    assert info.value.code == code, str(info.value)
    after = counts(engine)
    assert after["source_record_versions"] == before["source_record_versions"]
    assert after["source_records"] == before["source_records"]
    assert after["quarantine"] == before["quarantine"]
    last = ledger(engine)[-1]
    assert last["status"] == "rejected" and last["reason"].startswith(code)
    return info.value


@pytest.mark.parametrize(
    ("name", "content", "code", "message_part"),
    [
        ("x.xlsx", b"PK\x03\x04 not a csv", "unknown_format", "unknown file format"),
        ("m.csv", "id;full_name\n1;A\n", "missing_key_column", "cust_no"),
        (
            "l1.csv",
            (BILLING_HEADER + billing_row("B1", name="Jos\u00e9")).encode("latin-1"),
            "undecodable",
            "line 2",
        ),
        (
            "nul.csv",
            (BILLING_HEADER + billing_row("B1")).encode() + b"B2;\x00\x00;x\n",
            "corrupt",
            "line 3",
        ),
        ("cut.csv", BILLING_HEADER + billing_row("B1") + 'B2;"Doe, Ja', "truncated", "row 2"),
        ("short.csv", BILLING_HEADER + billing_row("B1") + "B2;Doe", "truncated", "row 2"),
        (
            "drift.csv",
            BILLING_HEADER.replace("full_name", "name") + billing_row("B1"),
            "schema_drift",
            "full_name",
        ),
        (
            "inj.csv",
            BILLING_HEADER.replace("cust_no;", 'cust_no;"id; DROP TABLE x";'),
            "unsafe_header",
            "column 2",
        ),
        ("dup.csv", BILLING_HEADER.replace("city;", "zip;"), "duplicate_column", "zip"),
        ("empty.csv", "", "empty_file", "empty"),
    ],
)
def test_unreadable_files_are_rejected_whole(
    sqlite_engine, hub_config, landing, name, content, code, message_part
):
    path = write_file(landing / "billing" / name, content)
    error = _assert_rejected_and_nothing_written(
        sqlite_engine, code, lambda: ingest_file(sqlite_engine, hub_config, path, landing)
    )
    assert name in error.message and message_part in error.message
    # A fixed re-drop of the same name is ingested normally.
    fixed = write_file(
        landing / "billing" / (Path(name).stem + ".csv"), BILLING_HEADER + billing_row("OK1")
    )
    assert ingest_file(sqlite_engine, hub_config, fixed, landing).status is ExtractStatus.loaded


def test_rejection_rolls_back_rows_already_written(sqlite_engine, hub_config, landing, monkeypatch):
    """A file that fails after many rows (here: a truncated JSON Lines file) leaves nothing."""
    monkeypatch.setattr("mdm_orchestration.ingestion.loader.BATCH_ROWS", 10)
    rows = [json.dumps(shop_record(f"u{i}")) for i in range(55)]
    path = write_file(landing / "ecommerce/cut.jsonl", "\n".join(rows) + "\n" + rows[0][:30])
    _assert_rejected_and_nothing_written(
        sqlite_engine, "truncated", lambda: ingest_file(sqlite_engine, hub_config, path, landing)
    )


def test_jsonl_nested_objects_wrong_types_and_malformed_lines(sqlite_engine, hub_config, landing):
    good = shop_record("u1", phone="555", email_verified=False, created_at="2025-01-01T00:00:00Z")
    lines = [
        json.dumps(good),
        json.dumps({**good, "user_id": "u2", "phone": ["1", "2"]}),  # wrong type
        "{not json",  # malformed line
        json.dumps([1, 2]),  # not an object
        json.dumps({**good, "user_id": None}),  # missing key
        json.dumps({**good, "user_id": 42, "loyalty_tier": "gold"}),  # numbers as text, new column
    ]
    path = write_file(landing / "ecommerce/s.jsonl", "\ufeff" + "\n".join(lines) + "\n")
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (6, 2, 4)
    assert dict(outcome.quarantine_reasons) == {
        "wrong_type": 1,
        "malformed_json": 1,
        "not_an_object": 1,
        "missing_key": 1,
    }
    assert outcome.unmapped_columns == ["loyalty_tier"]
    with sqlite_engine.connect() as conn:
        raws = [
            json.loads(r)
            for r in conn.execute(
                sa.text("SELECT raw FROM source_record_versions ORDER BY row_number")
            ).scalars()
        ]
    assert raws[0]["shipping.city"] == "X" and raws[0]["marketing_opt_in"] == "true"
    assert raws[1]["user_id"] == "42"
    with sqlite_engine.connect() as conn:
        field = conn.execute(
            sa.text("SELECT field FROM quarantine WHERE reason = 'wrong_type'")
        ).scalar_one()
    assert field == "phone"


def _erp_table(rows: list[dict]) -> pa.Table:
    cols = ERP_HEADER
    return pa.table({c: pa.array([r.get(c, "") for r in rows], pa.string()) for c in cols})


def test_parquet_extract_and_sap_null_dates(sqlite_engine, hub_config, landing):
    path = landing / "erp/KNA1.parquet"
    pq.write_table(
        _erp_table(
            [
                {"KUNNR": "0001", "NAME1": "ACME INC", "AEDAT": "20260105"},
                {"KUNNR": "0002", "NAME1": "Jane Doe", "AEDAT": "00000000"},
                {"KUNNR": "", "NAME1": "No Key", "AEDAT": "20260105"},
            ]
        ),
        path,
    )
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert (outcome.rows_loaded, outcome.rows_quarantined) == (1, 2)
    assert dict(outcome.quarantine_reasons) == {"invalid_updated_at": 1, "missing_key": 1}
    with sqlite_engine.connect() as conn:
        updated = conn.execute(sa.text("SELECT source_updated_at FROM source_records")).scalar_one()
    assert str(updated).startswith("2026-01-05")


def test_corrupt_parquet_and_gzip_are_rejected(sqlite_engine, hub_config, landing):
    good = landing / "erp/good.parquet"
    pq.write_table(_erp_table([{"KUNNR": "0001", "AEDAT": "20260105"}]), good)
    cut = write_file(landing / "erp/cut.parquet", good.read_bytes()[:-40])
    _assert_rejected_and_nothing_written(
        sqlite_engine, "corrupt", lambda: ingest_file(sqlite_engine, hub_config, cut, landing)
    )
    gz = write_file(landing / "billing/c.csv.gz", gzip.compress(b"x")[:-4])
    _assert_rejected_and_nothing_written(
        sqlite_engine, "unknown_format", lambda: ingest_file(sqlite_engine, hub_config, gz, landing)
    )


def test_bom_and_crlf_and_sql_looking_values(sqlite_engine, hub_config, landing):
    evil = "Robert'); DROP TABLE source_records;--"
    content = "\ufeff" + (BILLING_HEADER + billing_row("B1", name=evil)).replace("\n", "\r\n")
    outcome = ingest_file(
        sqlite_engine, hub_config, write_file(landing / "billing/bom.csv", content), landing
    )
    assert outcome.rows_loaded == 1
    with sqlite_engine.connect() as conn:
        raw = json.loads(
            conn.execute(sa.text("SELECT raw FROM source_record_versions")).scalar_one()
        )
    assert "cust_no" in raw  # the BOM did not stick to the first header
    assert raw["full_name"] == evil  # stored literally, byte-exact
    assert counts(sqlite_engine)["source_records"] == 1


def test_paths_outside_the_landing_root_are_refused(sqlite_engine, hub_config, landing, tmp_path):
    outside = write_file(tmp_path / "secret.csv", BILLING_HEADER + billing_row("B1"))
    os.symlink(outside, landing / "billing/link.csv")
    for path in (landing / "billing/link.csv", landing / "billing/../../secret.csv"):
        with pytest.raises(ExtractRejected) as info:
            ingest_file(sqlite_engine, hub_config, path, landing)
        assert info.value.code == "outside_landing_root"
    assert counts(sqlite_engine)["source_record_versions"] == 0


def test_unknown_source_folder_is_rejected(sqlite_engine, hub_config, landing):
    path = write_file(landing / "nosuchsource/x.csv", "a\n1\n")
    with pytest.raises(ExtractRejected) as info:
        ingest_file(sqlite_engine, hub_config, path, landing)
    assert info.value.code == "unknown_source" and "nosuchsource" in info.value.message


def test_generated_silos_every_row_accounted_for(sqlite_engine, hub_config, sample_silos):
    landing = sample_silos / "landing"
    totals = {"landed": 0, "loaded": 0, "quarantined": 0}
    reasons: set[str] = set()
    for path in sorted(landing.rglob("*.*")):
        outcome = ingest_file(sqlite_engine, hub_config, path, landing)
        assert outcome.status is ExtractStatus.loaded, outcome.reason
        assert outcome.unmapped_columns == [], (path.name, outcome.unmapped_columns)
        totals["landed"] += outcome.rows_landed
        totals["loaded"] += outcome.rows_loaded
        totals["quarantined"] += outcome.rows_quarantined
        reasons |= set(outcome.quarantine_reasons)
    assert totals["loaded"] + totals["quarantined"] == totals["landed"]
    assert 0 < totals["quarantined"] < 0.03 * totals["landed"]
    assert reasons <= {"missing_key", "wrong_field_count", "wrong_type", "invalid_updated_at"}
    truth_keys = (sample_silos / "truth.csv").read_text().count("\n") - 1
    assert counts(sqlite_engine)["source_records"] <= truth_keys
