"""Survivorship, golden ids and households on small tables (pure functions, no hub)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime

import pytest

from mdm_orchestration.config import AttributeRule, SurvivorshipConfig, load_hub_config
from mdm_orchestration.survivorship import Survivor, assign_golden_ids, build_households
from mdm_orchestration.survivorship.consolidate import Previous, plan_consolidation
from mdm_orchestration.survivorship.ids import golden_id_for
from tests.conftest import CONFIG_DIR

SOURCES = load_hub_config(CONFIG_DIR).sources  # billing 1, erp 2, crm 3, ecommerce 4, loyalty 5


def rec(rid: str, source: str, updated: str | None = None, **values) -> dict:
    return {
        "source_record_id": rid,
        "source": source,
        "source_key": f"k-{rid}",
        "source_updated_at": datetime.fromisoformat(updated).replace(tzinfo=UTC)
        if updated
        else None,
        "quality_flags": values.pop("flags", []),
        "consents": values.pop("consents", {}),
        **values,
    }


def survivor(**attributes: AttributeRule) -> Survivor:
    config = SurvivorshipConfig(attributes=attributes) if attributes else SurvivorshipConfig()
    return Survivor(config, SOURCES)


def test_source_trust_most_recent_and_tie_break_order():
    s = survivor(
        phone=AttributeRule(strategies=["source_trust"]),
        email=AttributeRule(strategies=["most_recent"]),
    )
    records = [
        rec(
            "a",
            "loyalty",
            "2026-03-01",
            phone="+15550000001",
            phone_valid=True,
            email="new@x.com",
            email_key="new@x.com",
            email_valid=True,
        ),
        rec(
            "b",
            "billing",
            "2025-01-01",
            phone="+15550000002",
            phone_valid=True,
            email="old@x.com",
            email_key="old@x.com",
            email_valid=True,
        ),
    ]
    out = s.survive(records)
    assert out.attributes["phone"] == "+15550000002"
    assert out.lineage["phone"] == {
        "record_id": "b",
        "source": "billing",
        "source_key": "k-b",
        "rule": "source_trust",
    }
    assert out.attributes["email"] == "new@x.com" and out.lineage["email"]["rule"] == "most_recent"


def test_most_frequent_and_most_complete():
    s = survivor(
        birth_date=AttributeRule(strategies=["most_frequent"]),
        name=AttributeRule(strategies=["most_complete"]),
    )
    records = [
        rec(
            "a",
            "loyalty",
            birth_date="1980-01-02",
            full_name="Ann Lee",
            given_name="Ann",
            family_name="Lee",
            given_key="ann",
            family_key="lee",
        ),
        rec(
            "b",
            "crm",
            birth_date="1980-02-01",
            full_name="Ann B Lee",
            given_name="Ann",
            middle_name="B",
            family_name="Lee",
            given_key="ann",
            family_key="lee",
        ),
        rec("c", "erp", birth_date="1980-01-02"),
    ]
    out = s.survive(records)
    assert out.attributes["birth_date"] == "1980-01-02"
    assert out.lineage["birth_date"]["rule"] == "most_frequent"
    # The records agree on the name; the most complete rendering of it survives.
    assert out.attributes["middle_name"] == "B" and out.lineage["middle_name"]["record_id"] == "b"
    assert out.lineage["full_name"]["rule"] == "agreed"


def test_valid_only_leaves_the_attribute_empty_and_prefer_valid_falls_back():
    strict = survivor(email=AttributeRule(strategies=["valid_only", "source_trust"]))
    lenient = survivor(email=AttributeRule(strategies=["prefer_valid", "source_trust"]))
    invalid = [
        rec("a", "billing", email="not-an-email", email_valid=False, flags=["email_invalid"])
    ]
    assert "email" not in strict.survive(invalid).attributes
    assert lenient.survive(invalid).attributes["email"] == "not-an-email"
    mixed = invalid + [
        rec("b", "loyalty", email="ok@x.com", email_key="ok@x.com", email_valid=True)
    ]
    for s in (strict, lenient):
        out = s.survive(mixed)
        assert out.attributes["email"] == "ok@x.com"
        assert out.lineage["email"]["rule"] in ("valid_only", "prefer_valid")


def test_address_parts_survive_together_from_one_record():
    s = survivor(address=AttributeRule(strategies=["most_recent"]))
    records = [
        rec(
            "old",
            "billing",
            "2024-01-01",
            street="1 Old Rd",
            city="Springfield",
            postcode="11111",
            region="IL",
            country="US",
            address_key="1 old rd 11111",
        ),
        rec(
            "new",
            "loyalty",
            "2026-01-01",
            street="9 New St",
            city="Shelbyville",
            address_key="9 new st",
        ),  # no postcode: it must not borrow the old one
    ]
    out = s.survive(records)
    assert out.attributes["street"] == "9 New St" and out.attributes["city"] == "Shelbyville"
    assert "postcode" not in out.attributes and "region" not in out.attributes
    assert {
        out.lineage[f]["record_id"] for f in ("street", "city", "country") if f in out.lineage
    } == {"new"}
    assert out.keys["address_key"] == "9 new st"


def test_invalidating_flags_count_for_prefer_valid():
    s = survivor(address=AttributeRule(strategies=["prefer_valid", "most_recent"]))
    records = [
        rec(
            "a",
            "loyalty",
            "2026-01-01",
            street="2 Bad Zip",
            postcode="0",
            flags=["postcode_invalid"],
        ),
        rec("b", "billing", "2020-01-01", street="3 Good St", postcode="60601"),
    ]
    assert s.survive(records).attributes["street"] == "3 Good St"


def test_ties_are_broken_the_same_way_whatever_the_input_order():
    s = survivor(phone=AttributeRule(strategies=["most_frequent"]))
    records = [
        rec(r, src, "2026-01-01", phone=p, phone_valid=True)
        for r, src, p in [
            ("r3", "crm", "+15550000003"),
            ("r1", "crm", "+15550000001"),
            ("r2", "crm", "+15550000002"),
        ]
    ]
    results = {
        (
            s.survive(list(order)).attributes["phone"],
            s.survive(list(order)).lineage["phone"]["rule"],
        )
        for order in itertools.permutations(records)
    }
    assert results == {("+15550000001", "tie_break")}  # the smallest record id, last resort


def test_source_order_overrides_trust_rank_for_one_attribute():
    s = survivor(email=AttributeRule(strategies=["source_trust"], source_order=["loyalty"]))
    records = [
        rec(
            "a",
            "billing",
            email="b@x.com",
            email_key="b@x.com",
            email_valid=True,
            phone="+15550000001",
            phone_valid=True,
        ),
        rec(
            "b",
            "loyalty",
            email="l@x.com",
            email_key="l@x.com",
            email_valid=True,
            phone="+15550000002",
            phone_valid=True,
        ),
    ]
    out = Survivor(
        SurvivorshipConfig(
            attributes={
                "email": AttributeRule(strategies=["source_trust"], source_order=["loyalty"]),
                "phone": AttributeRule(strategies=["source_trust"]),
            }
        ),
        SOURCES,
    ).survive(records)
    assert out.attributes["email"] == "l@x.com"  # members curate their own email
    assert out.attributes["phone"] == "+15550000001"  # billing is trusted most otherwise
    assert s.survive(records).attributes["email"] == "l@x.com"


def test_consent_most_recent_statement_wins_with_lineage_and_lifecycle_order():
    s = survivor()
    records = [
        rec(
            "a", "billing", "2026-02-01", consents={"marketing_email": False}, lifecycle="customer"
        ),
        rec(
            "b",
            "loyalty",
            "2025-01-01",
            consents={"marketing_email": True, "sms": True},
            lifecycle="lead",
        ),
        rec("c", "erp", None, lifecycle="one-off"),
    ]
    out = s.survive(records)
    assert out.consents["marketing_email"]["granted"] is False
    assert out.consents["marketing_email"]["record_id"] == "a"
    assert out.consents["marketing_email"]["stated_at"].startswith("2026-02-01")
    assert out.consents["sms"]["granted"] is True and out.consents["sms"]["source"] == "loyalty"
    assert out.lifecycle == "customer" and out.lineage["lifecycle"]["record_id"] == "a"
    assert s.survive(records[1:]).lifecycle == "one-off"  # a paying one-off outranks a lead
    assert out.sources == ["billing", "erp", "loyalty"]


def test_unknown_strategy_and_attribute_are_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        AttributeRule(strategies=["loudest"])
    with pytest.raises(ValueError, match="unknown golden attribute"):
        SurvivorshipConfig(attributes={"shoe_size": AttributeRule(strategies=["most_recent"])})


def test_survivorship_yaml_errors_name_the_file_and_attribute(tmp_path):
    import shutil

    from mdm_orchestration.config import ConfigError

    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    (tmp_path / "config" / "survivorship.yaml").write_text(
        "attributes:\n  email: {strategies: [source_trust], source_order: [nosuch]}\n"
    )
    with pytest.raises(ConfigError, match=r"survivorship.yaml: attribute 'email'.*'nosuch'"):
        load_hub_config(tmp_path / "config")


# --- golden ids -------------------------------------------------------------------------------

G1, G2, G3 = golden_id_for(1), golden_id_for(2), golden_id_for(3)


def test_ids_survive_a_rerun_and_new_clusters_get_new_ids():
    previous = {"a": G1, "b": G1, "c": G2}
    clusters = {"ka": ["a", "b"], "kc": ["c"], "kd": ["d"]}
    out = assign_golden_ids(clusters, previous, [G1, G2], next_seq=3)
    assert out.golden_of_cluster == {"ka": G1, "kc": G2, "kd": G3}
    assert out.minted == {G3: []} and not out.merged and not out.retired and out.next_seq == 4


def test_merge_keeps_the_oldest_id_and_records_the_other_as_merged():
    previous = {"a": G1, "b": G2, "c": G2}
    out = assign_golden_ids({"k": ["a", "b", "c"]}, previous, [G1, G2], next_seq=3)
    assert out.golden_of_cluster == {"k": G1}  # G1 is older, though G2 brings more records
    assert out.merged == {G2: G1} and not out.minted


def test_split_keeps_the_id_on_the_larger_part_and_mints_for_the_rest():
    previous = {r: G1 for r in "abc"}
    out = assign_golden_ids({"k1": ["a"], "k2": ["b", "c"]}, previous, [G1], next_seq=2)
    assert out.golden_of_cluster == {"k2": G1, "k1": golden_id_for(2)}
    assert out.minted == {golden_id_for(2): [G1]}
    # An even split: the part holding the smallest record id keeps the id.
    even = assign_golden_ids({"k1": ["b"], "k2": ["a"]}, {"a": G1, "b": G1}, [G1], next_seq=2)
    assert even.golden_of_cluster["k2"] == G1


def test_ids_are_never_reused_and_empty_goldens_retire():
    # G2 was merged away earlier and G3 lost its last record: neither comes back.
    out = assign_golden_ids({"k": ["a"], "n": ["z"]}, {"a": G1}, [G1, G3], next_seq=4)
    assert out.retired == [G3]
    assert out.golden_of_cluster == {"k": G1, "n": golden_id_for(4)}


# --- consolidation plan -----------------------------------------------------------------------


def _plan(membership, records, previous_xref=None, previous=None, next_seq=1):
    return plan_consolidation(
        membership, records, previous_xref or {}, previous or {}, next_seq, survivor()
    )


def test_a_rerun_with_nothing_new_plans_nothing_and_contacts_link_to_their_organisation():
    membership = {
        "p1": ("p1", "person", "o1"),
        "p2": ("p1", "person", None),
        "o1": ("o1", "organisation", None),
    }
    groups = {
        "p1": [
            rec("p1", "crm", given_name="Ann", family_name="Lee", full_name="Ann Lee"),
            rec("p2", "billing", full_name="Ann Lee", family_name="Lee"),
        ],
        "o1": [rec("o1", "crm", company_name="Acme", company_key="acme")],
    }
    first = _plan(membership, list(groups.items()))
    assert first.counts()["created"] == 2
    by_party = {s.party_type: (g, s) for g, s in first.states.items()}
    org_id = by_party["organisation"][0]
    assert by_party["person"][1].organisation_golden_id == org_id
    previous = {
        g: Previous(
            1,
            s.digest(),
            s.party_type,
            s.attributes,
            s.lineage,
            s.consents,
            s.lifecycle,
            s.organisation_golden_id,
        )
        for g, s in first.states.items()
    }
    again = _plan(membership, list(groups.items()), first.xref, previous, first.assignment.next_seq)
    assert again.events == [] and again.unchanged == 2 and again.xref == first.xref


def test_an_update_names_what_changed():
    membership = {"p1": ("p1", "person", None)}
    before = _plan(
        membership,
        [
            (
                "p1",
                [
                    rec(
                        "p1",
                        "crm",
                        "2025-01-01",
                        full_name="Ann Lee",
                        family_name="Lee",
                        city="Springfield",
                    )
                ],
            )
        ],
    )
    ((gid, s),) = before.states.items()
    previous = {
        gid: Previous(
            1, s.digest(), "person", s.attributes, s.lineage, s.consents, s.lifecycle, None
        )
    }
    after = _plan(
        membership,
        [
            (
                "p1",
                [
                    rec(
                        "p1",
                        "crm",
                        "2026-01-01",
                        full_name="Ann Lee",
                        family_name="Lee",
                        city="Shelbyville",
                        consents={"marketing_email": True},
                    )
                ],
            )
        ],
        before.xref,
        previous,
        2,
    )
    (event,) = after.events
    assert event.event_type == "updated" and event.golden_id == gid
    assert event.changed == ["city", "consents.marketing_email"]


# --- households -------------------------------------------------------------------------------


def test_households_need_one_address_and_a_compatible_family_name():
    persons = [
        ("G1", "1 main st 60601", "garcia"),
        ("G2", "1 main st 60601", "garcia lopez"),  # double-barrelled: shares "garcia"
        ("G3", "1 main st 60601", "smith"),  # a lodger: a household of their own
        ("G4", "2 main st 60601", "garcia"),  # next door
        ("G5", None, "garcia"),  # no address: no household
        ("G6", "1 main st 60601", "smith-jones"),
    ]
    households = {h.members: h for h in build_households(persons)}
    assert set(households) == {("G1", "G2"), ("G3", "G6"), ("G4",)}
    again = {h.members: h.household_id for h in build_households(reversed(persons))}
    assert again == {m: h.household_id for m, h in households.items()}  # stable ids
    assert len({h.household_id for h in households.values()}) == 3


def test_a_plan_keeps_each_new_state_as_its_json():
    """The plan holds a new golden record's content as the JSON the writer stores (not the
    survivor's dicts, which hold the records' values): read back, it is the survivor's content
    as the hub returns it (a date as its ISO text), with the same digest."""
    from mdm_orchestration.survivorship.consolidate import GoldenState
    from mdm_orchestration.survivorship.rows import to_json

    membership = {"p1": ("p1", "person", None), "p2": ("p1", "person", None)}
    records = [
        rec(
            "p1",
            "crm",
            "2025-01-01",
            full_name="Ann Lee",
            family_name="Lee",
            birth_date=date(1980, 2, 3),
            consents={"marketing": True},
        ),
        rec("p2", "billing", "2025-02-01", full_name="Ann Lee", email="ann@example.com"),
    ]
    plan = _plan(membership, [("p1", records)])
    ((gid, state),) = plan.states.items()
    survived = survivor().survive(records)
    expected = GoldenState(
        party_type="person",
        attributes=survived.attributes,
        keys=survived.keys,
        lineage=survived.lineage,
        consents=survived.consents,
        lifecycle=survived.lifecycle,
        organisation_golden_id=None,
        sources=survived.sources,
        members=["p1", "p2"],
    )
    texts, digest = expected.encoded()
    assert state.encoded() == (texts, digest)
    assert state.digest() == digest and state.texts == texts
    for name in ("attributes", "keys", "lineage", "consents", "sources", "members"):
        assert getattr(state, name) == json.loads(to_json(getattr(expected, name)))
    assert state.attributes["birth_date"] == "1980-02-03"
    assert state.attributes["email"] == "ann@example.com"
    assert (state.party_type, state.lifecycle, state.member_count) == ("person", None, 2)
