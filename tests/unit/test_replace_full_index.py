"""A full rebuild's blocking index: made exactly the rows of the current records, by changing
only the rows that differ (SQLite), or written whole when most of it differs."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.matching import writes as writes_module
from mdm_orchestration.matching.frequency_store import index_delta
from mdm_orchestration.matching.writes import INDEX_COLUMNS, index_rows, replace_full_index
from tests.helpers import current_sample_records


@pytest.fixture(scope="module")
def cleansed(sample_silos) -> pd.DataFrame:
    return current_sample_records(sample_silos, 120)


def stored(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                "SELECT record_id, key_name, key_hash FROM blocking_index "
                "ORDER BY record_id, key_name"
            )
        ]


def replaced(engine: sa.Engine, cleansed: pd.DataFrame, records: int) -> Counter:
    with engine.begin() as conn:
        return replace_full_index(conn, cleansed, records)


def seed(engine: sa.Engine, rows: list[tuple[str, str, str]]) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, "blocking_index", INDEX_COLUMNS, sorted(rows), stored=True)


def test_only_the_differing_rows_change(tmp_path, cleansed, monkeypatch):
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    expected = sorted(index_rows(cleansed))
    ids = sorted({r[0] for r in expected})
    assert len(ids) > 400
    # The stored index of an earlier rebuild: some rows missing, some hashes changed, and
    # rows of records that are gone, before the first id, between batches and after the last.
    old = [r for k, r in enumerate(expected) if k % 17]
    old = [(r, k, "0" * 32) if n % 23 == 0 else (r, k, h) for n, (r, k, h) in enumerate(old)]
    stale = ["0", ids[50] + "0", ids[99] + "x", ids[200] + "0", "z" * 32]
    old += [(rid, name, "f" * 32) for rid in stale for name in ("email", "phone")]
    seed(engine, old)

    def whole(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the index was written whole")

    monkeypatch.setattr(writes_module, "write_full_index", whole)
    counts = replaced(engine, cleansed, records=50)
    assert stored(engine) == expected
    assert counts == index_delta(expected, [])
    # Nothing to change: a second rebuild of the same records writes nothing.
    assert replaced(engine, cleansed, records=50) == counts
    assert stored(engine) == expected
    engine.dispose()


@pytest.mark.parametrize("seeded", ["empty", "mostly different"])
def test_an_index_that_mostly_differs_is_written_whole(tmp_path, cleansed, seeded, monkeypatch):
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    expected = sorted(index_rows(cleansed))
    if seeded == "mostly different":
        seed(engine, [(r, k, "0" * 32) for r, k, _h in expected])
    monkeypatch.setattr(writes_module, "INDEX_REWRITE_MIN_ROWS", 10)
    wrote = []
    real = writes_module.write_full_index
    monkeypatch.setattr(
        writes_module, "write_full_index", lambda *a, **k: wrote.append(1) or real(*a, **k)
    )
    counts = replaced(engine, cleansed, records=60)
    assert wrote == [1]
    assert stored(engine) == expected
    assert counts == index_delta(expected, [])
    with engine.connect() as conn:  # its secondary index is back
        names = [r[1] for r in conn.exec_driver_sql("PRAGMA index_list(blocking_index)")]
    assert "ix_blocking_index_hash" in names
    engine.dispose()


def test_without_records_the_index_is_emptied(tmp_path, cleansed):
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    seed(engine, sorted(index_rows(cleansed))[:30])
    assert replaced(engine, cleansed.iloc[:0], records=50) == Counter()
    assert stored(engine) == []
    engine.dispose()
