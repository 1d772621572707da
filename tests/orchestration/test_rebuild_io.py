"""The full rebuild's reads and writes (issue 21): the blocking index written a batch of records
at a time, the secondary indexes dropped for the bulk load and created again (SQLite), every
current record read into shared column values. Each must give what the plain path gives, and
leave the schema as it was, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.bulk import indexes_dropped
from mdm_orchestration.hub.store import create_hub_engine, write_transaction
from mdm_orchestration.matching import current_cleansed, rebuild_clusters, writes
from mdm_orchestration.matching import rebuild as rebuild_module
from mdm_orchestration.matching.frequency_store import all_counts, index_delta
from mdm_orchestration.matching.records import CLEANSED_COLUMNS
from tests.orchestration.conftest import build_trained_hub

#: The tables a full rebuild replaces whose secondary indexes it drops and creates again.
REBUILT = ("match_clusters", "blocking_index", "match_pairs")


def index_definitions(engine: sa.Engine) -> dict[str, str]:
    """Index name -> its definition, for the rebuilt tables (primary keys included)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(
                sa.text(
                    "SELECT name, coalesce(sql, 'auto') FROM sqlite_master "
                    "WHERE type = 'index' AND tbl_name IN :tables"
                ).bindparams(sa.bindparam("tables", expanding=True)),
                {"tables": list(REBUILT)},
            ).all()
        else:
            rows = conn.execute(
                sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = current_schema() AND tablename IN :tables"
                ).bindparams(sa.bindparam("tables", expanding=True)),
                {"tables": list(REBUILT)},
            ).all()
    return dict(rows)


def blocking_rows(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT record_id, key_name, key_hash FROM blocking_index "
                    "ORDER BY record_id, key_name"
                )
            )
        ]


def _rebuild_keeps_schema_and_writes_the_whole_index(url: str, hub_config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = create_hub_engine(url)
    before = index_definitions(engine)
    # The secondary indexes each table must have (an empty set would prove nothing).
    assert {"ix_blocking_index_hash", "ix_match_pairs_right", "ix_match_clusters_cluster"} <= set(
        before
    )
    # Batches of 7 records: many batches, so their order and their counts' sum are exercised.
    monkeypatch.setattr(writes, "INDEX_BATCH_RECORDS", 7)
    rebuild_clusters(engine, hub_config)
    assert index_definitions(engine) == before
    with engine.connect() as conn:
        frame = current_cleansed(conn)
        expected = sorted(writes.index_rows(frame))
        counts = all_counts(conn)
    assert len(frame) > 100
    assert blocking_rows(engine) == expected
    assert counts == dict(index_delta(expected, []))
    engine.dispose()


def test_rebuild_keeps_indexes_and_index_rows_on_sqlite(sqlite_hub, hub_config, monkeypatch):
    _rebuild_keeps_schema_and_writes_the_whole_index(sqlite_hub, hub_config, monkeypatch)


def test_rebuild_keeps_indexes_and_index_rows_on_postgres(
    postgres_url, tmp_path, sample_silos, hub_config, monkeypatch
):
    build_trained_hub(postgres_url, sample_silos, tmp_path / "landing", hub_config)
    _rebuild_keeps_schema_and_writes_the_whole_index(postgres_url, hub_config, monkeypatch)


def test_failed_rebuild_leaves_rows_and_indexes(sqlite_hub, hub_config, monkeypatch):
    """An error after the indexes were dropped rolls the drop back with the rows."""
    engine = create_hub_engine(sqlite_hub)
    rebuild_clusters(engine, hub_config)
    before, rows = index_definitions(engine), blocking_rows(engine)

    def fail(*_args, **_kwargs) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(rebuild_module, "write_pairs", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        rebuild_clusters(engine, hub_config)
    assert index_definitions(engine) == before
    assert blocking_rows(engine) == rows
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT record_id FROM blocking_index WHERE key_hash = 'x'"
        ).all()
    assert "ix_blocking_index_hash" in " ".join(str(r[-1]) for r in plan)
    engine.dispose()


def test_dropped_indexes_keep_their_statistics(sqlite_hub, hub_config):
    """A hub that ran ANALYZE keeps its planner statistics rows across a rebuild."""
    engine = create_hub_engine(sqlite_hub)
    rebuild_clusters(engine, hub_config)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        stats = set(conn.exec_driver_sql("SELECT tbl, idx FROM sqlite_stat1").all())
    assert ("blocking_index", "ix_blocking_index_hash") in stats
    rebuild_clusters(engine, hub_config)
    with engine.connect() as conn:
        assert set(conn.exec_driver_sql("SELECT tbl, idx FROM sqlite_stat1").all()) == stats
    engine.dispose()


def test_indexes_dropped_is_a_no_op_on_postgres(postgres_url, tmp_path, sample_silos, hub_config):
    """On PostgreSQL a dropped index would lock readers out until the commit: nothing drops."""
    engine = create_hub_engine(postgres_url)
    before = index_definitions(engine)
    with write_transaction(engine) as conn, indexes_dropped(conn, "blocking_index") as names:
        assert names == []
        still = conn.execute(
            sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_blocking_index_hash'")
        ).scalar_one()
    assert still == 1
    assert index_definitions(engine) == before
    engine.dispose()


def test_index_batches_are_the_sorted_index_rows(sqlite_hub):
    """Batches of a frame in any order, concatenated, are ``sorted(index_rows(frame))``."""
    engine = create_hub_engine(sqlite_hub)
    with engine.connect() as conn:
        frame = current_cleansed(conn)
    engine.dispose()
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled["source_record_id"].is_monotonic_increasing
    batches = list(writes.index_batches(shuffled, records=11))
    assert len(batches) == -(-len(frame) // 11)
    joined = [row for batch in batches for row in batch]
    assert joined == sorted(writes.index_rows(frame))


def test_current_cleansed_of_all_is_the_frame_by_ids(sqlite_hub, tmp_path):
    """Every record read a batch at a time, with shared values, is the frame the by-ids path
    builds row by row: same columns, dtypes, values, value types and missing values."""
    engine = create_hub_engine(sqlite_hub)
    with engine.connect() as conn:
        ids = [r for (r,) in conn.exec_driver_sql("SELECT id FROM source_records")]
        whole = current_cleansed(conn)
        by_ids = current_cleansed(conn, ids)
    engine.dispose()
    assert len(whole) == len(ids) > 100
    assert list(whole.columns) == list(CLEANSED_COLUMNS)
    pd.testing.assert_frame_equal(whole, by_ids)
    assert all(dtype == np.dtype(object) for dtype in whole.dtypes)
    for column in CLEANSED_COLUMNS:
        assert [type(v) for v in whole[column]] == [type(v) for v in by_ids[column]], column
    # An empty hub: the same empty frame.
    empty_hub = create_hub_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with empty_hub.connect() as conn:
        empty, empty_by_ids = current_cleansed(conn), current_cleansed(conn, [])
    empty_hub.dispose()
    pd.testing.assert_frame_equal(empty, empty_by_ids)
    assert list(empty.columns) == list(CLEANSED_COLUMNS)
