"""The generalisation scenarios (benchmarks/scenarios): each onboards by its own sources.yaml,
every truth row reaches a cleansed record, and each scenario holds the traps it claims."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.scenarios import SCENARIOS, build
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.sample_data.offline import cleansed_frame

TODAY = date(2026, 11, 23)
SOURCES = {
    "consumer": {"bank", "telco", "webshop"},
    "b2b": {"erp", "crm", "support"},
    "international": {"loyalty", "crm", "eshop"},
}


_BUILT: dict[str, tuple[str, pd.DataFrame, dict]] = {}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):  # noqa: ANN001, ANN201
    """Each scenario generated (tiny), onboarded by its sources.yaml and cleansed, once."""

    def get(name: str) -> tuple[str, pd.DataFrame, dict]:
        if name not in _BUILT:
            _BUILT[name] = _onboard(name, tmp_path_factory.mktemp(name))
        return _BUILT[name]

    return get


def _onboard(name: str, out: Path) -> tuple[str, pd.DataFrame, dict]:
    landing, truth_csv, config_dir = build(name, out, records=700, seed=11)
    config = load_hub_config(config_dir)
    assert set(config.sources) == SOURCES[name]
    cleansed = cleansed_frame(landing, config, TODAY)
    truth = pd.read_csv(truth_csv, dtype=str)
    merged = truth.merge(
        cleansed, on=["source", "source_key"], how="outer", indicator=True, validate="1:1"
    )
    traps = json.loads((Path(out) / "traps.json").read_text())
    return name, merged, traps


@pytest.mark.parametrize("which", SCENARIOS)
def test_every_truth_row_is_a_cleansed_record(scenarios, which: str) -> None:  # noqa: ANN001
    name, merged, _ = scenarios(which)
    assert len(merged) >= 500
    assert (merged["_merge"] == "both").all(), merged["_merge"].value_counts()
    assert set(merged["source"]) == SOURCES[name]
    # More records than entities: there is something to match.
    assert merged["entity_id"].nunique() < 0.8 * len(merged)


def _pairs_across_entities(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Pairs of records of different entities that agree on every one of ``keys``."""
    sub = frame.dropna(subset=keys)
    pairs = sub.merge(sub, on=keys, suffixes=("_a", "_b"))
    return pairs[pairs["entity_id_a"] < pairs["entity_id_b"]]


def test_consumer_traps(scenarios) -> None:  # noqa: ANN001
    _, merged, traps = scenarios("consumer")
    assert (merged["party_type"] == "person").all()
    # A Jr/Sr pair: one name at one address, different entities and birth dates.
    jr_sr = {tuple(sorted(p)) for p in traps["jr_sr"]}
    same = _pairs_across_entities(merged, ["given_key", "family_key", "address_key"])
    same = same[same["birth_date_a"].notna() & same["birth_date_b"].notna()]
    same = same[same["birth_date_a"] != same["birth_date_b"]]
    found = {tuple(sorted(p)) for p in zip(same["entity_id_a"], same["entity_id_b"], strict=True)}
    assert found & jr_sr
    # Households: one surname, one address and one landline, different given names.
    household = _pairs_across_entities(merged, ["family_key", "address_key", "phone"])
    assert (household["given_key_a"] != household["given_key_b"]).any()
    # Common names in several towns, as different people.
    common = merged[merged["entity_id"].isin(traps["common_names"])]
    by_name = common.groupby(["given_key", "family_key"])
    assert (by_name["entity_id"].nunique() >= 2).any()
    assert (by_name["city"].nunique() >= 2).any()
    # Two records of one person inside one silo; moves; married names.
    per_silo = merged.groupby(["source", "entity_id"]).size()
    assert (per_silo >= 2).any()
    addresses = merged.groupby("entity_id")["address_key"].nunique()
    assert (addresses[addresses.index.isin(traps["movers"])] >= 2).any()
    surnames = merged.groupby("entity_id")["family_key"].nunique()
    assert (surnames[surnames.index.isin(traps["married"])] >= 2).any()


def test_b2b_traps(scenarios) -> None:  # noqa: ANN001
    _, merged, traps = scenarios("b2b")
    assert (merged["party_type"] == "organisation").all()
    assert set(merged["country"].dropna()) == {"GB", "DE", "FR", "ES", "US"}
    forms = set(merged["legal_form"].dropna())
    assert {"Ltd", "GmbH", "Inc", "LLC", "AG"} <= forms
    # Same-named companies in two countries are different entities.
    same_name = _pairs_across_entities(merged, ["company_key"])
    abroad = same_name[same_name["country_a"] != same_name["country_b"]]
    assert len(abroad) and traps["same_name_other_country"]
    # ... and in two cities of one country.
    home = same_name[
        (same_name["country_a"] == same_name["country_b"])
        & (same_name["city_a"] != same_name["city_b"])
    ]
    assert len(home) and traps["same_name_other_city"]
    # Group companies at one address: different entities, one street, postcode and city.
    at_one_address = _pairs_across_entities(merged, ["street", "postcode", "city"])
    groups = {tuple(sorted(g))[:2] for g in traps["group_at_one_address"]}
    found = set(zip(at_one_address["entity_id_a"], at_one_address["entity_id_b"], strict=True))
    assert found & groups
    # One switchboard for the tenants of a building: one phone, three or more entities.
    phones = merged.dropna(subset=["phone"]).groupby("phone")["entity_id"].nunique()
    assert (phones >= 3).any()
    # Registration ids valid for their country; web or email domains carried.
    ids = merged.dropna(subset=["national_id"])
    assert len(ids) and ids["national_id_valid"].fillna(False).astype(bool).mean() > 0.95
    assert merged["email"].str.contains("@", na=False).any()
    if "web_domain" in merged.columns:
        assert merged["web_domain"].notna().mean() > 0.3


def test_international_traps(scenarios) -> None:  # noqa: ANN001
    _, merged, traps = scenarios("international")
    assert (merged["party_type"] == "person").all()
    assert set(merged["country"].dropna()) == {"GB", "DE", "FR"}
    assert merged["national_id"].isna().all()
    names = (merged["given_name"].fillna("") + merged["family_name"].fillna("")).tolist()
    assert any(ch in "äöüßéèêëàçôîï" for n in names for ch in n.lower())
    assert traps["diacritics"]
    # Day-first dates read as such: birth dates with a day after the 12th came through.
    born = pd.to_datetime(merged["birth_date"], errors="coerce").dropna()
    assert len(born) > 0.4 * len(merged) and (born.dt.day > 12).any()
    # National phone formats understood per country.
    phones = merged.dropna(subset=["phone"])
    for prefix in ("+44", "+49", "+33"):
        assert phones["phone"].str.startswith(prefix).any()
    assert phones["phone_valid"].fillna(False).astype(bool).mean() > 0.95
    # Postcodes of each country.
    gb = merged[merged["country"] == "GB"]["postcode"].dropna()
    assert gb.str.contains(r"^[A-Z]{1,2}\d", regex=True).all()
    de = merged[merged["country"] == "DE"]["postcode"].dropna()
    assert de.str.fullmatch(r"\d{5}").all()
