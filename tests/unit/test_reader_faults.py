"""Reader faults end as a rejection or a quarantined row with a reason, never as a crash."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from tests.helpers import write_file
from tests.unit.test_ingest import counts, ledger, shop_record


def _quarantine(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT row_number, field, reason, detail FROM quarantine ORDER BY row_number"
                )
            ).all()
        ]


@pytest.mark.parametrize("opener", ["{", "["])
def test_deeply_nested_jsonl_line_is_quarantined_not_a_crash(
    sqlite_engine, hub_config, landing, opener
):
    """Defect 6: a line nested 2,000 deep raised RecursionError and left no ledger row."""
    closer = {"{": "}", "[": "]"}[opener]
    inner = ('{"a":' * 2000 + "1" + "}" * 2000) if opener == "{" else "[" * 2000 + "]" * 2000
    deep = json.dumps(shop_record("u2"))[:-1] + f', "deep": {inner}' + "}"
    assert closer in deep
    lines = [json.dumps(shop_record("u1")), deep, json.dumps(shop_record("u3"))]
    path = write_file(landing / "ecommerce/deep.jsonl", "\n".join(lines) + "\n")
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (3, 2, 1)
    [(row_number, _field, reason, detail)] = _quarantine(sqlite_engine)
    assert (row_number, reason) == (2, "too_deeply_nested")
    assert "deep" not in (detail or "") or "nested" in detail
    assert ledger(sqlite_engine)[-1]["status"] == "loaded"


def test_moderately_nested_object_is_quarantined_by_depth(sqlite_engine, hub_config, landing):
    """Nesting that json accepts but that is far beyond any real extract is a row error."""
    inner = '{"a":' * 200 + "1" + "}" * 200
    deep = json.dumps(shop_record("u2"))[:-1] + f', "deep": {inner}' + "}"
    path = write_file(
        landing / "ecommerce/deep2.jsonl", json.dumps(shop_record("u1")) + "\n" + deep + "\n"
    )
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert (outcome.rows_loaded, outcome.rows_quarantined) == (1, 1)
    [(row_number, field, reason, _detail)] = _quarantine(sqlite_engine)
    assert (row_number, reason) == (2, "too_deeply_nested") and field.startswith("deep")


def test_any_unexpected_reader_error_is_recorded_as_a_rejection(
    sqlite_engine, hub_config, landing, monkeypatch
):
    """Whatever a reader raises ends as a ledger row ``rejected`` naming the file and row."""
    from mdm_orchestration.ingestion import readers

    def broken(self, value):  # noqa: ANN001, ARG001
        raise ValueError("boom")

    monkeypatch.setattr(readers, "_scalar", lambda value: broken(None, value))
    path = write_file(landing / "ecommerce/odd.jsonl", json.dumps(shop_record("u1")) + "\n")
    before = counts(sqlite_engine)
    with pytest.raises(ExtractRejected) as info:
        ingest_file(sqlite_engine, hub_config, path, landing)
    assert info.value.code == "reader_error"
    assert "odd.jsonl" in info.value.message and "row 1" in info.value.message
    last = ledger(sqlite_engine)[-1]
    assert last["status"] == ExtractStatus.rejected.value and last["reason"].startswith(
        "reader_error"
    )
    after = counts(sqlite_engine)
    assert after["source_record_versions"] == before["source_record_versions"]


def _no_resource_warning(action) -> None:  # type: ignore[no-untyped-def]
    """Run ``action`` and collect garbage with ResourceWarning an error: a file a reader left
    open is reported when its object is collected (pytest -W error::ResourceWarning)."""
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        action()
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, [str(w.message) for w in leaked]


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("nokey.csv", "a;b\n1;2\n", "missing_key_column"),
        ("unsafe.csv", "cust_no;bad\x01col\nB1;x\n", "unsafe_header"),
        ("dup.csv", "cust_no;cust_no\nB1;x\n", "duplicate_column"),
        ("empty.csv", "", "empty_file"),
        ("quote.csv", 'cust_no;"a\n', "malformed_csv"),
    ],
)
def test_a_rejected_csv_header_closes_the_file(
    sqlite_engine, hub_config, landing, name, content, code
):
    """Defect 14: the CSV reader opened the file, then raised on a bad header without closing it."""
    path = write_file(landing / "billing" / name, content)

    def ingest() -> None:
        with pytest.raises(ExtractRejected) as info:
            ingest_file(sqlite_engine, hub_config, path, landing)
        assert info.value.code == code

    _no_resource_warning(ingest)


def test_a_rejected_parquet_header_closes_the_file(sqlite_engine, hub_config, landing):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = landing / "erp/nokey.parquet"
    pq.write_table(pa.table({"NAME1": ["x"]}), path)

    def ingest() -> None:
        with pytest.raises(ExtractRejected, match="missing_key_column"):
            ingest_file(sqlite_engine, hub_config, path, landing)

    _no_resource_warning(ingest)


def test_a_reader_abandoned_mid_file_closes_it(sqlite_engine, hub_config, landing, monkeypatch):
    """A rejection after some rows were read (the file changed while it was read) leaves no
    open handle either: the loader closes its reader whatever happens."""
    from tests.unit.test_ingest import BILLING_HEADER, billing_row

    path = write_file(
        landing / "billing/changing.csv",
        BILLING_HEADER + "".join(billing_row(f"B{i}") for i in range(5)),
    )
    import mdm_orchestration.ingestion.rows as rows_module

    def load_part(self, rows, batch):  # type: ignore[no-untyped-def]
        next(iter(rows))
        raise ExtractRejected("changed_while_reading", "changed.csv: the file changed")

    monkeypatch.setattr(rows_module.RowLoader, "load", load_part)

    def ingest() -> None:
        with pytest.raises(ExtractRejected, match="changed_while_reading"):
            ingest_file(sqlite_engine, hub_config, path, landing)

    _no_resource_warning(ingest)
