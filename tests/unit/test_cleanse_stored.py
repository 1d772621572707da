"""The hub's cleansing reads versions as plain columns (``raw`` as its stored JSON text) and has
each batch cleansed into stored rows in one worker (``cleansing.stored``): the same rows, on
SQLite and PostgreSQL, as cleansing the frame the engine reads and converting each value."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mdm_orchestration.cleansing import cleanse_batch, cleanse_pending
from mdm_orchestration.cleansing import runner as runner_module
from mdm_orchestration.cleansing.stored import (
    StoredForm,
    cleanse_stored,
    stored_column,
    stored_value,
    versions_frame,
)
from mdm_orchestration.hub.bulk import stored_datetime_of
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.hub.tables import VERSIONS
from tests.helpers import copy_landing, ingest_all, write_file

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def engine(hub_engine: sa.Engine) -> sa.Engine:
    return hub_engine


def _sqlite_text(value: object) -> object:
    """What ``bulk_insert`` does to a value of a row that is not ``stored`` (on SQLite)."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, datetime)
        else value
    )


@pytest.mark.parametrize(
    "column",
    ["given_name", "quality_score", "birth_date", "source_updated_at", "email_valid", "consents"],
)
def test_stored_column_is_stored_value_of_each_value(column) -> None:
    values = [
        "Zoë",
        "",
        None,
        pd.NA,
        float("nan"),
        0.875,
        7,
        True,
        False,
        np.int64(3),
        np.float64(0.5),
        np.bool_(True),
        date(1985, 3, 4),
        datetime(2026, 1, 2, 3, 4, 5),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        pd.Timestamp("2026-01-02 03:04:05"),
    ]
    if column == "consents":
        # The JSON columns hold dicts and lists; True and 1 are equal keys of a dict, not the
        # same JSON, and each distinct value is encoded once.
        values = [{"email": True}, {"email": 1}, {"email": True}, {}, ["a", "b"], None, pd.NA]
    got = stored_column(values, column, stored_datetime_of("sqlite"))
    want = [_sqlite_text(stored_value(v, column)) for v in values]
    assert got == want
    assert [type(v) for v in got] == [type(v) for v in want]
    if column == "consents":
        assert got[:5] == ['{"email": true}', '{"email": 1}', '{"email": true}', "{}", '["a", "b"]']
    if column == "source_updated_at":
        assert got[13] == "2026-01-02 03:04:05.000000"
        assert got[14] == "2026-01-02 01:04:05.000000"  # stored in UTC, as bulk_insert does


def test_stored_datetime_of_names_each_database() -> None:
    assert stored_datetime_of("sqlite")(NOW) == "2026-11-23 08:30:15.123456"
    assert stored_datetime_of("postgresql")(NOW) == NOW.isoformat()


def _versions_read_by_the_engine(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                VERSIONS.c.extract_id,
                VERSIONS.c.row_number,
                VERSIONS.c.source_record_id,
                VERSIONS.c.source_key,
                VERSIONS.c.raw,
                VERSIONS.c.source_updated_at,
            ).order_by(VERSIONS.c.extract_id, VERSIONS.c.row_number)
        ).all()
    columns = ["extract_id", "row_number", "source_record_id", "source_key", "raw"]
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=[*columns, "source_updated_at"], dtype=object
    )


def _table(engine: sa.Engine, table: str, drop: str) -> list[tuple]:
    with engine.connect() as conn:
        columns = [c for c in sa.inspect(conn).get_columns(table) if c["name"] not in (drop, "id")]
        names = ", ".join(c["name"] for c in columns)
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {names} FROM {table}")]


def test_the_hub_cleanses_the_versions_as_the_engine_reads_them(
    engine, hub_config, sample_silos, tmp_path
) -> None:
    ingest_all(engine, hub_config, copy_landing(sample_silos, tmp_path / "landing"))
    with engine.connect() as conn:
        extract_id, source_name = conn.execute(
            sa.text("SELECT id, source FROM extracts WHERE status = 'loaded' ORDER BY id LIMIT 1")
        ).one()
        batch = runner_module._read_versions(conn, extract_id, 0, 10_000)
    # raw comes as text (decoding is the worker's), and decodes to what the engine reads.
    assert batch and all(isinstance(v, str) for v in batch[4])
    read = _versions_read_by_the_engine(engine)
    expected = read[read["extract_id"] == extract_id].reset_index(drop=True)
    frame = versions_frame(batch)
    pd.testing.assert_frame_equal(frame, expected)

    # One batch cleansed into stored rows: the records and quarantine rows of cleanse_batch.
    source = hub_config.sources[source_name]
    to_text = stored_datetime_of(engine.dialect.name)
    result = cleanse_stored(batch, source, hub_config.quality, TODAY, StoredForm(to_text, "now"))
    plain = cleanse_batch(expected, source, hub_config.quality, TODAY)
    assert len(result.records) == len(plain.records) and result.rule_counts == plain.rule_counts
    first = plain.records.iloc[0]
    assert result.records[0][: len(first)] == tuple(
        to_text(v) if isinstance(v, datetime) else v
        for v in (stored_value(first[c], c) for c in plain.records.columns)
    )
    assert result.records[0][-1] == "now"
    assert [q[:2] for q in result.quarantine] == list(
        zip(plain.quarantine["extract_id"], plain.quarantine["row_number"], strict=True)
    )
    assert all(q[2] == "cleanse" and q[-1] == "now" for q in result.quarantine)


#: A loyalty extract with rows that cleansing quarantines (no name), between good ones.
LATE_LOYALTY = (
    "member_no,given_name,surname,birthday,email_address,mobile,street_address,town,"
    "state,postcode,last_update,consent_marketing\n"
    "L-NEW-1,Zoë,Ngata,02/01/1990,zoe@example.com,,,,,,01/06/2026 10:00,Y\n"
    "L-NEW-2,,,,,,,,,,01/06/2026 10:00,N\n"
    "L-NEW-3,,,31/02/1985,not-an-email,,,,,,01/06/2026 10:00,\n"
    "L-NEW-4,Ann,Lee,04/03/1985,ann@example.com,(415) 555-2671,1 Main St,Boston,MA,02134,"
    "01/06/2026 10:00,Y\n"
    "L-NEW-5,,,,,,,,,,01/06/2026 10:00,Y\n"
)


def test_batches_on_workers_write_what_one_process_writes(
    hub_config, sample_silos, tmp_path
) -> None:
    """Small batches on two worker processes, and one process with whole extracts: the same
    cleansed records and quarantine rows (reasons, fields and details per row)."""
    tables = []
    for workers, chunk in ((1, 50_000), (2, 97)):
        engine = create_hub_engine(f"sqlite:///{tmp_path / f'hub{workers}.db'}")
        landing = copy_landing(sample_silos, tmp_path / f"landing{workers}")
        write_file(landing / "loyalty" / "zz-late.csv", LATE_LOYALTY)
        ingest_all(engine, hub_config, landing)
        config = hub_config.model_copy(
            update={"quality": hub_config.quality.model_copy(update={"workers": workers})}
        )
        summary = cleanse_pending(engine, config, today=TODAY, chunk_rows=chunk)
        assert summary.quarantined == 3 and summary.cleansed > 1000
        tables.append(
            (
                sorted(_table(engine, "cleansed_records", "cleansed_at")),
                sorted(_table(engine, "quarantine", "quarantined_at"), key=repr),
                summary.rule_counts,
            )
        )
        engine.dispose()
    assert tables[0] == tables[1]
    cleansing = [q for q in tables[0][1] if q[2] == "cleanse"]
    # extract, row, stage, field, reason, detail: each row says where and why, never a value.
    assert len(cleansing) == 3 and all(q[3] and q[4] and q[5] for q in cleansing)
    assert {q[4] for q in cleansing} == {"no_name"}
