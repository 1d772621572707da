"""match_frame's row-wise form (frames of fewer than 64 records: the service's proposal and
its neighbours) gives exactly the vectorised form's fields, on records fresh from the cleansers
and as the hub reads them back, odd values included; so do blocking keys joined in Python."""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd
import pytest

from mdm_orchestration.cleansing import cleanse_batch
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.matching import blocking as blocking_module
from mdm_orchestration.matching import records as records_module
from mdm_orchestration.matching.records import CLEANSED_COLUMNS, match_frame
from mdm_orchestration.sample_data.offline import landing_versions
from tests.conftest import CONFIG_DIR

TODAY = date(2026, 11, 23)


def vectorised(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    with monkeypatch.context() as m:
        m.setattr(records_module, "_VECTOR_ROWS", 0)
        return match_frame(frame)


def row_wise(frame: pd.DataFrame, size: int) -> pd.DataFrame:
    parts = [match_frame(frame.iloc[at : at + size]) for at in range(0, len(frame), size)]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def cleansed(sample_silos) -> pd.DataFrame:
    hub_config = load_hub_config(CONFIG_DIR)
    frames = []
    for name, versions in landing_versions(sample_silos / "landing", hub_config).items():
        result = cleanse_batch(
            versions.iloc[:150], hub_config.sources[name], hub_config.quality, TODAY
        )
        frames.append(result.records[[c for c in CLEANSED_COLUMNS if c in result.records]])
    return pd.concat(frames, ignore_index=True)


def as_the_hub_reads_them(frame: pd.DataFrame) -> pd.DataFrame:
    """Python values and None, as ``current_cleansed`` returns them (an object frame)."""

    def plain(v: object) -> object:
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if hasattr(v, "item") else v

    rows = [tuple(plain(v) for v in row) for row in frame.itertuples(index=False)]
    return pd.DataFrame(rows, columns=list(frame.columns), dtype=object)


def odd_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Values the cleansers rarely give: dates pandas cannot hold, datetimes, empty strings,
    NaN, pd.NA, an organisation with an email and no website, ZIP+4 postcodes."""
    base = as_the_hub_reads_them(frame.iloc[:12]).reset_index(drop=True)
    odd = {
        0: {"birth_date": date(1, 1, 1)},
        1: {"birth_date": date(9999, 12, 31)},
        2: {"birth_date": datetime(1985, 3, 4, 12, 30)},
        3: {"given_name": "", "family_key": "", "middle_name": ""},
        4: {"email_valid": None, "phone_valid": None, "national_id_valid": None},
        5: {
            "party_type": "organisation",
            "web_domain": None,
            "email_key": "a@acme.example",
            "email_valid": True,
            "company_key": "acme",
        },
        6: {"postcode": "62701-1234", "country": "US"},
        7: {"postcode": "62701-1234", "country": None},
        8: {"given_name": float("nan"), "street_name": None, "street": "1 high st"},
        9: {"given_name": pd.NA, "unit": "apt 4b", "street_number": None, "street_name": "main"},
        10: {"birth_date": date(1678, 1, 1), "middle_name": "  "},
        11: {"party_type": None, "company_key": "x"},
    }
    for at, values in odd.items():
        for column, value in values.items():
            base.at[at, column] = value
    return base


@pytest.mark.parametrize("size", [1, 7, 63])
def test_row_wise_equals_vectorised_on_fresh_records(cleansed, size, monkeypatch):
    assert len(cleansed) > 500
    pd.testing.assert_frame_equal(
        row_wise(cleansed, size), vectorised(cleansed, monkeypatch), check_exact=True
    )


@pytest.mark.parametrize("size", [1, 5, 63])
def test_row_wise_equals_vectorised_as_the_hub_reads_them(cleansed, size, monkeypatch):
    hub = pd.concat([as_the_hub_reads_them(cleansed), odd_rows(cleansed)], ignore_index=True)
    expected = vectorised(hub, monkeypatch)
    pd.testing.assert_frame_equal(row_wise(hub, size), expected, check_exact=True)
    # The odd values did what they should in both forms.
    odd = expected.iloc[len(cleansed) :].reset_index(drop=True)
    assert odd.at[2, "birth"] == "1985-03-04"
    assert odd.at[5, "email_domain"] == "acme.example"
    assert odd.at[6, "postcode"] == "62701"
    assert odd.at[7, "postcode"] == "62701-1234"


def test_values_only_pandas_reads_go_to_the_vectorised_form(cleansed, monkeypatch):
    """A date as text or flags as integers: the row-wise form hands the frame over."""
    hub = as_the_hub_reads_them(cleansed.iloc[:3])
    hub.at[0, "birth_date"] = "1985-03-04"
    hub["email_valid"] = pd.Series([1, 0, 1], dtype=object)
    for column, value in (("birth_date", "1985-03-04"), ("email_valid", 1)):
        one = as_the_hub_reads_them(cleansed.iloc[:1])
        one.at[0, column] = value
        with pytest.raises(records_module._Vectorised):
            records_module._match_rows(one)
    pd.testing.assert_frame_equal(match_frame(hub), vectorised(hub, monkeypatch), check_exact=True)
    assert match_frame(hub).at[0, "birth"] == "1985-03-04"


@pytest.mark.parametrize("party", ["person", "organisation"])
def test_blocking_keys_of_few_records_equal_arrow_joined_ones(cleansed, party, monkeypatch):
    """Keys of frames under 64 records are joined in Python; the same keys as Arrow's."""
    frame = match_frame(cleansed)
    frame = frame[frame["party_type"] == party].reset_index(drop=True)
    assert len(frame) > 20
    with monkeypatch.context() as m:
        m.setattr(blocking_module, "_ARROW_ROWS", 0)
        whole = blocking_module.blocking_keys(frame, party)
    for at in range(0, len(frame), 9):
        part = blocking_module.blocking_keys(frame.iloc[at : at + 9], party)
        assert part.keys() == whole.keys()
        for name, keys in part.items():
            expected = whole[name].iloc[at : at + 9]
            assert [k if isinstance(k, str) else None for k in keys.tolist()] == [
                k if isinstance(k, str) else None for k in expected.tolist()
            ], name
    assert sum(isinstance(k, str) for k in whole["address"].tolist()) > 0


@pytest.mark.parametrize("party", ["person", "organisation"])
@pytest.mark.parametrize("size", [1, 6, 63])
def test_few_records_index_entries_equal_vectorised_ones(cleansed, party, size, monkeypatch):
    """``index_entries`` of a few records (blocking keys and counted values made value by
    value, the service's proposals) are the entries the vectorised form makes, on fresh and
    read-back records and the odd values."""
    from mdm_orchestration.matching import frequencies as frequencies_module

    hub = pd.concat([as_the_hub_reads_them(cleansed), odd_rows(cleansed)], ignore_index=True)
    for source in (cleansed, hub):
        frame = match_frame(source)
        frame = frame[frame["party_type"] == party].reset_index(drop=True)
        assert len(frame) > 20
        # National ids around the length a characters key needs (6), street lines with and
        # without a house number.
        for at, value in enumerate(["12345", "123456", "1234567", "", None]):
            frame.at[at, "national_id"] = value
        for at, value in enumerate(["12 high st", "12high st", "high st 12", "", None], 5):
            frame.at[at, "street"] = value
        with monkeypatch.context() as m:
            m.setattr(blocking_module, "_ARROW_ROWS", 0)
            m.setattr(frequencies_module, "_FEW_ROWS", 0)
            whole = blocking_module.index_entries(frame, party)
        parts = []
        for at in range(0, len(frame), size):
            parts += blocking_module.index_entries(frame.iloc[at : at + size], party)
        assert sorted(parts) == sorted(whole)
        names = {name for _r, name, _h in whole}
        # Every key of the vectorised form has its value-by-value form (a key added to one
        # alone fails here even where no record of the sample holds it).
        assert (
            blocking_module.few_blocking_keys(frame.iloc[:3], party).keys()
            == blocking_module.blocking_keys(frame.iloc[:3], party).keys()
        )
        assert "address" in names and any(n.startswith("tf_") for n in names)
        if party == "person":
            assert {
                "family_house_number",
                "names_any_order_birth",
                "id_characters_postcode",
            } <= names
        else:
            assert {"company", "company_postcode"} <= names
    # A frame of both party types: each record's terms under its own party type.
    both = match_frame(cleansed.iloc[:40])
    with monkeypatch.context() as m:
        m.setattr(frequencies_module, "_FEW_ROWS", 0)
        expected = frequencies_module.record_terms(both)
    assert frequencies_module.record_terms(both) == expected


def test_house_numbers_of_few_records_equal_vectorised_ones():
    """The rules' house numbers of a few street lines (value by value) are pandas' extract of
    the same pattern, whatever the value."""
    import numpy as np

    from mdm_orchestration.matching.rules import Columns, house_numbers

    streets = ["12 high st", "12high st", " 12 high st", "high st 12", "007 bond st", "١٢ main st"]
    streets += ["12\tmain", "", None, float("nan"), pd.NA, 12, "3 ", "45"]
    frame = pd.DataFrame({"street": pd.Series(streets, dtype=object)})
    few = Columns(frame).house_numbers()
    expected = house_numbers(frame["street"]).to_numpy(object)
    assert [None if pd.isna(v) else v for v in expected] == list(few)
    assert list(few[:6]) == ["12", None, None, None, "007", "١٢"]
    # Past 64 records, pandas' own extract.
    many = pd.DataFrame({"street": pd.Series(streets * 10, dtype=object)})
    held = Columns(many).house_numbers()
    assert [None if pd.isna(v) else v for v in held] == list(few) * 10
    assert isinstance(held, np.ndarray)
    # A view reading another column as the street has that column's numbers, not the cache's.
    both = pd.DataFrame(
        {"street": pd.Series(["1 a st", "2 b st"]), "other": pd.Series(["7 c st", None])}
    )
    columns = Columns(both)
    assert list(columns.house_numbers()) == ["1", "2"]
    assert list(columns.renamed(street="other").house_numbers()) == ["7", None]
    assert list(columns.house_numbers()) == ["1", "2"]


@pytest.mark.parametrize("party", ["person", "organisation"])
def test_field_columns_of_few_records_equal_factorized_ones(cleansed, party, monkeypatch):
    """The model's coded fields of a few records (coded one by one) are factorize's."""
    from mdm_orchestration.matching import model as model_module
    from mdm_orchestration.matching.model import FIELDS, FieldColumns
    from mdm_orchestration.matching.rules import Columns

    frame = match_frame(cleansed)
    frame = frame[frame["party_type"] == party].reset_index(drop=True)
    for at in range(0, min(len(frame), 120), 17):
        part = frame.iloc[at : at + 17].reset_index(drop=True)
        few = FieldColumns.of_frame(Columns(part), FIELDS[party])
        with monkeypatch.context() as m:
            m.setattr(model_module, "_FACTORIZE_ROWS", 0)
            expected = FieldColumns.of_frame(part, FIELDS[party])
        assert few.values == expected.values
        assert few.codes.keys() == expected.codes.keys()
        for name, codes in few.codes.items():
            assert codes.dtype == expected.codes[name].dtype
            assert codes.tolist() == expected.codes[name].tolist(), name
