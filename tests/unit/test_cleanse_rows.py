"""cleanse_rows (a few versions value by value: the service's proposals and writes) gives
exactly cleanse_batch's records and quarantine rows, column types included: on every silo's
rows, alone and in small batches, and on odd values of every canonical field."""

from __future__ import annotations

from datetime import date, datetime
from itertools import cycle

import pandas as pd
import pytest

from mdm_orchestration.cleansing import cleanse_batch, cleanse_rows
from mdm_orchestration.cleansing.rows import _years_back
from mdm_orchestration.config import HubConfig, SourceConfig, load_hub_config
from mdm_orchestration.config.sources import DeletedFlag
from mdm_orchestration.matching.records import match_frame, match_frame_of_values
from mdm_orchestration.sample_data.offline import landing_versions
from tests.conftest import CONFIG_DIR

TODAY = date(2026, 11, 23)

#: Values of canonical fields the generated silos seldom or never send.
ODD = {
    "birth_date": [
        "1985-3-4",
        "19850304",
        "1985034",
        "04/03/85",
        "12/31/69",
        "02/29/24",
        "02/29/28",
        "12/31/45",
        "29/02/24",
        "31/02/1985",
        "0000-00-00",
        "00000000",
        "0001-01-01",
        "9999-12-31",
        "1985-03-04T10:00:00Z",
        "1985-03-04 10:00",
        "1985-03-04T10:00:00.123+02:00",
        "n/a",
        " ",
        "",
        "19xx",
        "1985/03/04",
        "1985.03.04",
        "04.03.1985",
        "04-03-1985",
        "2025-01-01",
        "1899-12-31",
        "  1985-03-04  ",
    ],
    "party_type": ["Company", " person ", "B2B", "x", "", "ORG", None],
    "email": ["not-an-email", "A@B", "x@gmail.com", "info@acme-widgets.example", " ", None],
    "phone": ["12", "+44 20 7946 0958", "n/a", "(415) 555-0132 ext 4", None],
    "full_name": ["Acme Widgets GmbH", "Dr. Mary-Ann O'Neil Jr", "unknown", "SMITH, John A."],
    "company_name": ["", "Acme & Sons Ltd", "-", "ACME INC."],
    "given_name": ["", "?", "Jo Ann", None],
    "family_name": ["", "Junior", "van der Berg", None],
    "street": ["", "PO Box 12", "12 High St Apt 4b", "null"],
    "postcode": ["00000", "SW1A 1AA", "62701-1234", "x"],
    "country": ["Deutschland", "ZZ", "", "uk", None],
    "national_id": ["123-45-6789", "12-3456789", "000", None],
    "lifecycle": ["Prospect", " ", None],
    "website": ["www.acme.example", "http://", None],
}


@pytest.fixture(scope="module")
def hub_config() -> HubConfig:
    return load_hub_config(CONFIG_DIR)


@pytest.fixture(scope="module")
def versions(sample_silos, hub_config) -> dict[str, pd.DataFrame]:
    return {
        name: frame.iloc[:200].reset_index(drop=True)
        for name, frame in landing_versions(sample_silos / "landing", hub_config).items()
    }


def assert_same(rows: list[dict], source: SourceConfig, hub_config: HubConfig) -> None:
    frame = pd.DataFrame(rows, dtype=object)
    expected = cleanse_batch(frame, source, hub_config.quality, TODAY)
    got = cleanse_rows(rows, source, hub_config.quality, TODAY)
    pd.testing.assert_frame_equal(got.records, expected.records)
    pd.testing.assert_frame_equal(got.quarantine, expected.quarantine)
    # The records' values as plain values: the frame's, with None for its NaN and NA.
    plain = [
        {c: None if v is None or v is pd.NA or v != v else v for c, v in r.items()}
        for r in expected.records.to_dict("records")
    ]
    assert got.values == plain
    assert [list(v) for v in got.values] == [list(expected.records.columns)] * len(plain)
    assert got.stopped == [
        (int(q.row_number), q.reason, q.field) for q in expected.quarantine.itertuples()
    ]
    # The service matches proposals from these values: the match frame of the frame's.
    if len(plain):
        pd.testing.assert_frame_equal(
            match_frame_of_values(got.values), match_frame(expected.records), check_exact=True
        )


def test_every_silos_rows_alone_and_in_small_batches(versions, hub_config) -> None:
    for name, frame in versions.items():
        rows = frame.to_dict("records")
        source = hub_config.sources[name]
        for at in range(0, 12):
            assert_same(rows[at : at + 1], source, hub_config)
        for size in (5, 17, 64):
            for at in range(12, len(rows), size * 3):
                assert_same(rows[at : at + size], source, hub_config)


def odd_rows(frame: pd.DataFrame, source: SourceConfig) -> list[dict]:
    """The silo's rows, each with one odd value in the source column of a canonical field (a
    field mapped from several columns takes it in its first)."""
    out = []
    base = cycle(frame.to_dict("records"))
    for field, values in ODD.items():
        mapping = source.mapping.get(field)
        if mapping is None or mapping.value is not None:
            continue
        column = mapping.column or (mapping.columns or [None])[0]
        for value in values:
            row = dict(next(base))
            row["raw"] = {**row["raw"], column: value}
            out.append(row)
    return out


def test_odd_values_of_every_field(versions, hub_config) -> None:
    checked = 0
    for name, frame in versions.items():
        source = hub_config.sources[name]
        rows = odd_rows(frame, source)
        for row in rows:
            assert_same([row], source, hub_config)
        assert_same(rows, source, hub_config)
        checked += len(rows)
    assert checked > 200


def test_rows_a_quality_rule_stops_are_quarantined_alike(versions, hub_config) -> None:
    """Rows without a name or any contact point (blocking rules) among rows that pass: the
    records and the quarantine rows, reasons and details, as cleanse_batch gives them."""
    quarantined = 0
    for name, frame in versions.items():
        source = hub_config.sources[name]
        rows = frame.iloc[:6].to_dict("records")
        for row in rows[::2]:
            row["raw"] = dict.fromkeys(row["raw"]) | {source.key_column: row["source_key"]}
        assert_same(rows, source, hub_config)
        assert_same(rows[:1], source, hub_config)
        quarantined += len(cleanse_rows(rows, source, hub_config.quality, TODAY).quarantine)
    assert quarantined > 0


def test_a_source_that_deletes_records(versions, hub_config) -> None:
    """A version the source marks deleted: the same answer (cleanse_batch's own)."""
    source = hub_config.sources["crm"].model_copy(
        update={"deleted_flag": DeletedFlag(column="deleted")}
    )
    rows = versions["crm"].iloc[:4].to_dict("records")
    rows[1]["raw"] = {**rows[1]["raw"], source.deleted_flag.column: source.deleted_flag.values[0]}
    assert_same(rows, source, hub_config)
    assert "deleted_by_source" in set(
        cleanse_rows(rows, source, hub_config.quality, TODAY).quarantine["reason"]
    )


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 2, 29),
        datetime(2028, 2, 29, 13, 5),
        datetime(2026, 11, 23),
        datetime(2000, 2, 29),
    ],
)
@pytest.mark.parametrize("years", [1, 4, 16, 100, 120])
def test_years_back_is_pandas_date_offset(moment: datetime, years: int) -> None:
    """The age limits and the two-digit-year pull-back, as ``pd.DateOffset(years=...)`` takes
    years off (29 February into a common year is the 28th)."""
    assert _years_back(moment, years) == (pd.Timestamp(moment) - pd.DateOffset(years=years))
