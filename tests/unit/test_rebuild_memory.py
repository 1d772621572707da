"""What a full rebuild keeps in memory (issue 21): every current record read a batch at a time
into columns whose text values are shared (SQLModel's ``AutoString`` columns too), the whole
match frame not kept beside the party frames, and the result's pair ids not a view that keeps
a party frame's columns alive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mdm_orchestration.matching import steward
from mdm_orchestration.matching.engine import LINK_COLUMNS, PartyMatch, assemble, party_frames
from mdm_orchestration.matching.records import CLEANSED_COLUMNS, match_frame
from tests.helpers import current_sample_records


@pytest.fixture(scope="module")
def cleansed(sample_silos) -> pd.DataFrame:
    return current_sample_records(sample_silos, 80)


def test_text_columns_include_autostring_ones():
    text = {c for c in CLEANSED_COLUMNS if steward._text_column(c)}
    # AutoString (a TypeDecorator over String) and Text columns alike.
    assert {"source", "party_type", "country", "given_phonetic", "given_name"} <= text
    assert {"email_valid", "phone_valid", "national_id_valid", "birth_date"}.isdisjoint(text)


def test_every_record_read_in_batches_shares_equal_strings(monkeypatch):
    """Rows read in batches of 3: the frame holds the database's values, and each text
    column one object per distinct string across the batches."""
    engine = sa.create_engine("sqlite://")
    names = ", ".join(f'"{c}"' for c in CLEANSED_COLUMNS)
    rows = []
    for i in range(10):
        row = {c: f"{c}-{i % 3}" for c in CLEANSED_COLUMNS}
        row["source_record_id"] = f"r{i:02d}"
        row["middle_name"] = None
        row["email_valid"] = i % 2 == 0
        row["phone_valid"] = None
        row["national_id_valid"] = True
        row["birth_date"] = None
        rows.append(row)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE t ({names})")
        conn.execute(
            sa.text(
                f"INSERT INTO t ({names}) VALUES ("
                + ", ".join(f":c{k}" for k in range(len(CLEANSED_COLUMNS)))
                + ")"
            ),
            [{f"c{k}": r[c] for k, c in enumerate(CLEANSED_COLUMNS)} for r in rows],
        )
    monkeypatch.setattr(steward, "_FETCH_ROWS", 3)
    with engine.connect() as conn:
        frame = steward._frame_of_all(conn, sa.text(f"SELECT {names} FROM t ORDER BY 1"))
        plain = pd.DataFrame(
            [tuple(r) for r in conn.exec_driver_sql(f"SELECT {names} FROM t ORDER BY 1")],
            columns=list(CLEANSED_COLUMNS),
            dtype=object,
        )
    assert len(frame) == 10
    pd.testing.assert_frame_equal(frame, plain)
    for column in ("source", "party_type", "country", "given_name"):
        values = frame[column].tolist()
        assert len(set(values)) == 3
        assert len({id(v) for v in values}) == 3, column
    assert frame["middle_name"].isna().all()
    assert [type(v) for v in frame["email_valid"]] == [int] * 10  # SQLite's, unconverted


def test_party_frames_keep_only_the_link_columns_of_the_whole_frame(cleansed):
    whole = match_frame(cleansed)
    links, subs = party_frames(cleansed)
    assert list(links.columns) == LINK_COLUMNS
    pd.testing.assert_frame_equal(links, whole[LINK_COLUMNS])
    assert set(subs) == {"person", "organisation"}
    for party, sub in subs.items():
        expected = whole[whole["party_type"] == party].reset_index(drop=True)
        pd.testing.assert_frame_equal(sub, expected)
        # Not a view of the whole frame's columns.
        assert not np.shares_memory(
            links["record_id"].to_numpy(object), sub["record_id"].to_numpy(object)
        )


def test_result_pair_ids_are_not_a_view_of_the_party_frame(cleansed):
    links, subs = party_frames(cleansed)
    parts = {}
    for party, sub in subs.items():
        n = len(sub)
        ids = sub["record_id"].to_numpy(object)
        clusters = pd.DataFrame(
            {"record_id": ids, "party_type": party, "cluster_id": ids, "confidence": 1.0}
        )
        review = pd.DataFrame(columns=["party_type", "left_id", "right_id", "score"])
        left, right = np.array([0]), np.array([n - 1])
        match = PartyMatch(
            clusters, review, {}, left, right, np.array([0.9], np.float32), np.array([False])
        )
        parts[party] = (sub, match)
    result = assemble(links, parts)
    for pairs in result.pairs:
        sub = subs[pairs.party_type]
        assert pairs.ids.tolist() == sub["record_id"].tolist()
        assert not np.shares_memory(pairs.ids, sub["record_id"].to_numpy(object))
        assert pairs.rows(0.0)[0][:2] == tuple(sorted((pairs.ids[0], pairs.ids[-1])))
