"""The PostgreSQL column of RELIABILITY rows 8, 10 and 21: the file-level and value-level
ingest faults tested on SQLite in test_encodings and test_ingest, run against a hub on each
database (a throwaway PostgreSQL database of the test's own).

Row 8: a BOM stripped, header names exact, mixed line endings, a declared Latin-1 file decoded
and an undeclared one rejected naming the line, Zoë in NFC and NFD one customer. Row 10: an
added column reported as unmapped while the rows load. Row 21: SQL-looking values stored
byte-exact and a header carrying SQL rejected, the tables intact."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from mdm_orchestration.sample_data.generator import LOYALTY_HEADER
from tests.helpers import write_file
from tests.unit.test_encodings import (
    NFC,
    NFD,
    _config_with,
    _ingest_zoe,
    _loyalty_csv,
    _loyalty_row,
)
from tests.unit.test_ingest import BILLING_HEADER, billing_row, shop_record


@pytest.fixture
def engine(hub_engine: sa.Engine) -> sa.Engine:
    return hub_engine


def raws(engine: sa.Engine) -> list[dict]:
    """Every loaded row's raw values, in load order (JSON: text on SQLite, parsed by psycopg2)."""
    with engine.connect() as conn:
        return [
            json.loads(r) if isinstance(r, str) else r
            for r in conn.execute(
                sa.text("SELECT raw FROM source_record_versions ORDER BY extract_id, row_number")
            ).scalars()
        ]


def scalar(engine: sa.Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def test_encodings_bom_line_endings_and_nfd_names(engine, hub_config, landing, tmp_path):
    rows = [_loyalty_row("L1", "Ann"), _loyalty_row("L2", NFD), _loyalty_row("L3", "Bea")]
    lines = [",".join(r) for r in [LOYALTY_HEADER, *rows]]
    content = "\ufeff" + lines[0] + "\r\n" + lines[1] + "\n" + lines[2] + "\r" + lines[3] + "\r\n"
    outcome = ingest_file(
        engine, hub_config, write_file(landing / "loyalty/m.csv", content), landing
    )
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (3, 3, 0)
    loaded = raws(engine)
    assert sorted(loaded[0]) == sorted(LOYALTY_HEADER)  # no BOM, no stray \r in a name
    assert loaded[1]["given_name"] == NFD  # verbatim; cleansing normalises
    assert all("\r" not in v and "\n" not in v for r in loaded for v in r.values() if v)

    # Undeclared Latin-1 bytes: rejected naming the line, no customer value in the reason.
    latin = _loyalty_csv([_loyalty_row("L4", "Ann"), _loyalty_row("L5", NFC)]).encode("latin-1")
    with pytest.raises(ExtractRejected) as info:
        ingest_file(engine, hub_config, write_file(landing / "loyalty/l1.csv", latin), landing)
    assert info.value.code == "undecodable" and "line 2" in info.value.message
    assert NFC not in info.value.message
    # Declared, the same bytes decode.
    config = _config_with(tmp_path, loyalty="latin-1")
    again = ingest_file(engine, config, write_file(landing / "loyalty/l2.csv", latin), landing)
    assert again.status is ExtractStatus.loaded and raws(engine)[-1]["given_name"] == NFC


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # SQLite: test_encodings
def test_nfc_and_nfd_forms_of_a_name_are_one_customer(engine, landing, tmp_path):
    """Zoë Brontë as NFC in a Latin-1 loyalty file and as NFD in a UTF-8 CRM file (BOM, CRLF):
    cleansed to one form and matched into one cluster; a Zoe Bronte elsewhere stays apart."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.matching import rebuild_clusters, train_models

    config = _config_with(tmp_path, loyalty="latin-1")
    _ingest_zoe(engine, config, landing)
    cleanse_pending(engine, config)
    train_models(engine, config)
    rebuild_clusters(engine, config)
    with engine.connect() as conn:
        names = dict(
            conn.execute(
                sa.text(
                    "SELECT s.source_key, c.given_name FROM cleansed_records c "
                    "JOIN source_records s ON s.id = c.source_record_id"
                )
            ).all()
        )
        cluster = dict(
            conn.execute(
                sa.text(
                    "SELECT s.source_key, m.cluster_id FROM match_clusters m "
                    "JOIN source_records s ON s.id = m.record_id"
                )
            ).all()
        )
    assert names["L1"] == names["C1"] == NFC  # one canonical form
    assert cluster["L1"] == cluster["C1"] != cluster["L2"]


def test_an_added_column_is_reported_and_the_rows_load(engine, hub_config, landing):
    good = shop_record("u1")
    lines = [json.dumps(good), json.dumps({**good, "user_id": "u2", "loyalty_tier": "gold"})]
    path = write_file(landing / "ecommerce/s.jsonl", "\n".join(lines) + "\n")
    outcome = ingest_file(engine, hub_config, path, landing)
    assert outcome.status is ExtractStatus.loaded
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (2, 2, 0)
    assert outcome.unmapped_columns == ["loyalty_tier"]
    assert scalar(engine, "SELECT count(*) FROM source_records") == 2


def test_sql_in_values_is_stored_literally_and_in_a_header_rejected(engine, hub_config, landing):
    evil = "Robert'); DROP TABLE source_records;--"
    content = BILLING_HEADER + billing_row("B1", name=evil) + billing_row("B2", name="a\\'b\"c")
    outcome = ingest_file(
        engine, hub_config, write_file(landing / "billing/s.csv", content), landing
    )
    assert outcome.rows_loaded == 2
    assert [r["full_name"] for r in raws(engine)] == [evil, "a\\'b\"c"]  # byte-exact
    header = BILLING_HEADER.replace("cust_no;", 'cust_no;"id; DROP TABLE x";')
    with pytest.raises(ExtractRejected) as info:
        ingest_file(
            engine,
            hub_config,
            write_file(landing / "billing/h.csv", header + billing_row("B3")),
            landing,
        )
    assert info.value.code == "unsafe_header" and "column 2" in info.value.message
    assert scalar(engine, "SELECT count(*) FROM source_records") == 2  # still there, unchanged
    assert {"source_records", "extracts", "golden_records"} <= set(
        sa.inspect(engine).get_table_names()
    )
