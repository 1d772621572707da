"""Matching on evidence: organisation traps, frequency-aware person matching, and the evidence
cleansing keeps (invalid phones' digits, validated national ids)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mdm_orchestration.config import MatchingConfig
from mdm_orchestration.matching.engine import (
    PairScorer,
    explain_records,
    match_records,
    score_pairs,
)
from mdm_orchestration.matching.frequencies import Frequencies, Levels, level_changes, value_key
from mdm_orchestration.matching.labels import load_default_labels
from mdm_orchestration.matching.model import train_model
from mdm_orchestration.matching.records import match_frame
from mdm_orchestration.matching.rules import distinct_names
from tests.unit.test_matching import person


@pytest.fixture(scope="module")
def models():
    labels = load_default_labels()
    return {
        party: train_model(party, [tuple(p) for p in s["match"]], [tuple(p) for p in s["distinct"]])
        for party, s in labels.items()
    }


def organisation(rid: str, company: str, **fields) -> dict:
    """A cleansed organisation record (company key as cleansing folds it)."""
    return (
        person(
            rid,
            party_type="organisation",
            given_name=None,
            family_name=None,
            given_key=None,
            family_key=None,
            given_phonetic=None,
            family_phonetic=None,
            company_key=company,
        )
        | fields
    )


def clusters(records: list[dict], models) -> dict[str, str]:
    result = match_records(pd.DataFrame(records, dtype=object), models, MatchingConfig())
    return dict(zip(result.clusters["record_id"], result.clusters["cluster_id"], strict=True))


LEEDS = {"street": "12 park row", "postcode": "LS1 5AB", "city": "Leeds", "country": "GB"}
OHIO = {"street": "400 main st", "postcode": "43004", "city": "Columbus", "country": "US"}


def test_the_same_name_in_two_countries_is_two_companies(models):
    records = [
        organisation("a", "jones", legal_form="LTD", legal_form_family="limited", **LEEDS),
        organisation("b", "jones", legal_form="LTD", legal_form_family="limited", **LEEDS)
        | {"street": "12 park rw"},
        organisation("c", "jones", legal_form="CORP", legal_form_family="corporation", **OHIO),
    ]
    c = clusters(records, models)
    assert c["a"] == c["b"]  # one street line one slip apart, one postcode: corroborated
    assert c["c"] != c["a"]


def test_the_same_domain_and_street_merge_despite_a_misspelt_name(models):
    records = [
        organisation("a", "acme logistics", web_domain="acme-logistics.co.uk", **LEEDS),
        organisation("b", "acme logistcs", web_domain="acme-logistics.co.uk", **LEEDS),
    ]
    c = clusters(records, models)
    assert c["a"] == c["b"]


def test_two_companies_of_one_group_at_one_address_stay_apart(models):
    shared = {"web_domain": "acme.co.uk", "phone": "+441132000000", "phone_valid": True, **LEEDS}
    records = [
        organisation("a", "acme holdings", **shared),
        organisation("b", "acme logistics", **shared),
        organisation("c", "acme property services", **shared),
    ]
    c = clusters(records, models)
    assert len(set(c.values())) == 3


def test_the_tenants_of_one_building_behind_one_switchboard_stay_apart(models):
    board = {"phone": "+441132999999", "phone_valid": True, **LEEDS}
    records = [
        organisation("a", "northern widgets", **board),
        organisation("b", "harrogate legal", **board),
        organisation("c", "pennine dental care", **board),
    ]
    assert len(set(clusters(records, models).values())) == 3


def test_legal_forms_of_different_families_and_registration_ids_contradict(models):
    records = [
        organisation("a", "orbis", legal_form="INC", legal_form_family="corporation", **OHIO)
        | {"web_domain": "orbis.com"},
        organisation("b", "orbis", legal_form="GMBH", legal_form_family="limited", **OHIO)
        | {"web_domain": "orbis.com"},
        organisation("c", "orbis", national_id="12-3456789", **OHIO) | {"web_domain": "orbis.com"},
        organisation("d", "orbis", national_id="98-7654321", **OHIO) | {"web_domain": "orbis.com"},
    ]
    c = clusters(records, models)
    assert c["a"] != c["b"]
    assert c["c"] != c["d"]


def test_a_name_agreeing_with_nothing_else_is_not_evidence_for_organisations(models):
    records = [
        organisation("a", "jones", **LEEDS),
        organisation("b", "jones", city="Leeds", country="GB"),
    ]
    frame = match_frame(pd.DataFrame(records, dtype=object))
    model = models["organisation"]
    scores, by_rule = score_pairs(
        frame, "organisation", model, MatchingConfig(), np.array([0]), np.array([1])
    )
    assert not by_rule[0]
    assert scores[0] < model.threshold


def test_rare_words_weigh_more_than_common_ones():
    tokens = np.empty(2, dtype=object)
    tokens[:] = [["acme", "holdings"], ["acme", "logistics"]]
    # "holdings" held by 64 organisations, "logistics" by 1: the names differ in a rare word.
    counts = np.empty(2, dtype=object)
    counts[:] = [[1, 64], [1, 1]]
    assert distinct_names(tokens, counts, np.array([0]), np.array([1]), 0.75)[0]
    # Both differing words common and the shared one rare: the same name, nearly.
    counts[:] = [[1, 64], [1, 64]]
    assert not distinct_names(tokens, counts, np.array([0]), np.array([1]), 0.3)[0]


def _pair(given: str, family: str, birth: str, **more) -> list[dict]:
    common = {"given_name": given.title(), "given_key": given, "family_key": family}
    return [
        person("x1", **common, birth_date=birth, city="Springfield", **more),
        person("x2", **common, birth_date=birth, city="Springfield", **more) | {"source": "erp"},
    ]


def test_an_agreement_on_a_common_value_counts_less(models):
    config = MatchingConfig()
    pair = match_frame(pd.DataFrame(_pair("john", "smith", "1980-01-01"), dtype=object))
    left, right = np.array([0]), np.array([1])
    model = models["person"]
    alone, _ = score_pairs(pair, "person", model, config, left, right, Frequencies({}))
    # The same two records in a hub where 2,000 records carry the given name, the family name
    # and the birth date.
    crowd = Frequencies(
        {
            ("person", f, value_key(f, v)): 2000
            for f, v in (("given_key", "john"), ("family", "smith"), ("birth", "1980-01-01"))
        }
    )
    crowded, _ = score_pairs(pair, "person", model, config, left, right, crowd)
    assert crowded[0] < alone[0]


def _penalties(rows: list[dict], counts: dict[tuple[str, str], int], models) -> dict[str, float]:
    """The frequency terms of the pair ``rows`` in a hub holding ``counts`` (field, value)."""
    frame = match_frame(pd.DataFrame(rows, dtype=object))
    crowd = Frequencies({("person", f, value_key(f, v)): n for (f, v), n in counts.items()})
    why = explain_records(frame, "person", models["person"], MatchingConfig(), crowd, 0, 1)
    return {k: v for k, v in why.adjustments if k.startswith("frequency:")}


COMMON_PARTS = {("given_key", "john"): 4000, ("family", "smith"): 4000}


def test_a_common_full_name_is_weighed_once_and_a_rare_one_made_of_common_parts_not_at_all(
    models,
):
    pair = _pair("john", "smith", "1980-01-01")
    # John and Smith are each common, but few records are John Smith: no coincidence.
    assert _penalties(pair, COMMON_PARTS, models) == {}
    common = _penalties(pair, {**COMMON_PARTS, ("full_name", "john|smith"): 4000}, models)
    assert set(common) == {"frequency:full_name"}
    assert common["frequency:full_name"] < 0
    # Only the given name agrees: it is weighed on its own.
    rows = _pair("john", "smith", "1980-01-01")
    rows[1] = rows[1] | {"family_key": "jones"}
    assert set(_penalties(rows, COMMON_PARTS, models)) == {"frequency:given_key"}


def test_an_identifying_agreement_lifts_the_frequency_penalty(models):
    counts = {**COMMON_PARTS, ("full_name", "john|smith"): 4000, ("birth", "1980-01-01"): 400}
    plain = _pair("john", "smith", "1980-01-01")
    assert set(_penalties(plain, counts, models)) == {"frequency:full_name", "frequency:birth"}
    shared = _pair("john", "smith", "1980-01-01", email_key="js@x.com", email_valid=True)
    assert _penalties(shared, counts, models) == {}


def test_a_postcode_and_its_town_are_weighed_once(models):
    counts = {("postcode", "10001"): 4000, ("city", "springfield"): 4000}
    both = _pair("john", "smith", "1980-01-01", postcode="10001")
    assert set(_penalties(both, counts, models)) == {"frequency:postcode"}
    town = _pair("john", "smith", "1980-01-01")
    assert set(_penalties(town, counts, models)) == {"frequency:city"}


def test_a_birth_date_stops_being_distinctive_sooner_than_a_name(models):
    pair = _pair("john", "smith", "1980-01-01")
    # 40 records share the birth date (a million-record hub): below the name reference (64),
    # above the birth date's (8).
    assert set(_penalties(pair, {("birth", "1980-01-01"): 40}, models)) == {"frequency:birth"}
    assert _penalties(pair, {("full_name", "john|smith"): 40}, models) == {}


def test_the_full_names_level_reads_both_its_rarity_and_its_frequency():
    levels = Levels.of(MatchingConfig())
    name = ("person", "full_name", "n")
    assert level_changes({name: 127}, {name: 1}, levels) == [name]  # 128: penalty grows
    assert level_changes({name: 129}, {name: 1}, levels) == []
    assert level_changes({name: 0}, {name: 1}, levels) == [name]  # 1: no longer absent


def test_levels_change_only_at_powers_of_two():
    levels = Levels(rare_name_records=2)
    key = ("person", "given_key", "k")
    assert level_changes({key: 5}, {key: 1}, levels) == []  # 5 -> 6: level 2 both
    assert level_changes({key: 7}, {key: 1}, levels) == [key]  # 7 -> 8: level 2 -> 3
    name = ("person", "full_name", "n")
    assert level_changes({name: 2}, {name: 1}, levels) == [name]  # 2 -> 3: no longer rare
    assert level_changes({name: 3}, {name: 1}, levels) == []  # 3 -> 4: common either way


def test_two_valid_national_ids_are_two_people_but_a_slip_is_not(models):
    base = {"birth_date": "1990-04-01", "street": "1 elm st", "postcode": "10001", "city": "NY"}
    records = [
        person("p1", **base, national_id="123456789", national_id_valid=True),
        person("p2", **base, national_id="987654321", national_id_valid=True) | {"source": "b"},
        person("p3", **base, national_id="123456798", national_id_valid=True) | {"source": "c"},
    ]
    c = clusters(records, models)
    assert c["p2"] != c["p1"]
    assert c["p3"] == c["p1"]


def test_the_digits_of_an_invalid_phone_corroborate_a_name(models):
    a = person("a", given_name="Kim", given_key="kim", family_key="novak", city="Dublin")
    b = person("b", given_name="Kim", given_key="kim", family_key="novak", city="Cork")
    without = clusters([a, b], models)
    assert without["a"] != without["b"]  # nothing but the name
    digits = {"phone_digits": "0879628803", "phone_valid": False}
    with_digits = clusters([a | digits, b | digits | {"source": "erp"}], models)
    assert with_digits["a"] == with_digits["b"]


def test_explanations_add_up_to_the_engine_score(models):
    """Frequency adjustments, the name-only cap, a rule and a contradiction all show in the
    explanation, and its terms add up to the score the engine gives the pair."""
    config = MatchingConfig()
    rows = _pair("john", "smith", "1980-01-01") + [
        person("y1", given_key="kim", family_key="novak", city="Dublin"),
        person("y2", given_key="kim", family_key="novak", city="Cork", source="erp"),
        person("z1", email_key="ann@x.com", email_valid=True),
        person("z2", email_key="ann@x.com", email_valid=True, source="erp"),
        person("v1", national_id="123456789", national_id_valid=True),
        person("v2", national_id="987654321", national_id_valid=True, source="erp"),
    ]
    frame = match_frame(pd.DataFrame(rows, dtype=object))
    crowd = Frequencies(
        {
            ("person", f, value_key(f, v)): 2000
            for f, v in (("given_key", "john"), ("family", "smith"), ("full_name", "john|smith"))
        }
    )
    left, right = np.array([0, 2, 4, 6]), np.array([1, 3, 5, 7])
    model = models["person"]
    scores, _ = score_pairs(frame, "person", model, config, left, right, crowd)
    for i, j, score in zip(left, right, scores, strict=True):
        why = explain_records(frame, "person", model, config, crowd, int(i), int(j))
        assert why.score == pytest.approx(float(score), abs=1e-4)
    names = [
        [k for k, _v in explain_records(frame, "person", model, config, crowd, i, j).adjustments]
        for i, j in ((0, 1), (2, 3), (4, 5), (6, 7))
    ]
    assert "frequency:full_name" in names[0]
    assert "cap:not_enough_evidence" in names[1]
    assert any(n.startswith("rule:") for n in names[2])
    assert "contradiction" in names[3]
    # Explained together (as /v1/match explains its top candidates), each is explained alike.
    together = PairScorer(frame, "person", model, config, crowd).explain_pairs(left, right)
    assert [w.as_dict() for w in together] == [
        explain_records(frame, "person", model, config, crowd, int(i), int(j)).as_dict()
        for i, j in zip(left, right, strict=True)
    ]


def test_a_branch_without_postcode_and_a_slip_in_the_name_still_merge(models):
    records = [
        organisation("a", "horizon logistics", street="17 lopez wall", city="Dallas", country="US"),
        organisation(
            "b", "horizon logistics", street="17 lopez wall", city="Dallas", postcode="75201"
        )
        | {"country": "US"},
        organisation("c", "gil consulting", web_domain="gill.co.uk", **LEEDS),
        organisation("d", "gill consulting", web_domain="gill.co.uk", **LEEDS),
    ]
    c = clusters(records, models)
    assert c["a"] == c["b"]  # the same street line in the same town, one postcode missing
    assert c["c"] == c["d"]  # one slip in the whole name, with the same domain and address


def test_a_level_no_score_reads_changes_nothing():
    levels = Levels.of(MatchingConfig())
    city = ("person", "city", "k")
    # Below the reference count (64) and past the cap, crossing a power of two re-scores nothing.
    assert level_changes({city: 31}, {city: 1}, levels) == []
    assert level_changes({city: 131_071}, {city: 1}, levels) == []
    assert level_changes({city: 127}, {city: 1}, levels) == [city]


def test_records_without_a_full_name_are_never_rare(models):
    config = MatchingConfig(rare_name_records=5)
    rows = [
        person("s1", given_name=None, given_key=None, family_key="smith", city="Leeds"),
        person("s2", given_name=None, given_key=None, family_key="smith", city="Leeds")
        | {"source": "erp"},
    ]
    frame = match_frame(pd.DataFrame(rows, dtype=object))
    model = models["person"]
    scores, _ = score_pairs(frame, "person", model, config, np.array([0]), np.array([1]))
    assert scores[0] < model.threshold
