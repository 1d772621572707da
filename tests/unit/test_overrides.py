"""Attribute overrides, pure: applied last (over every survivorship rule), shown as ``override``
in the lineage, retired when what they were made over changes, and in the consolidation plan
(applied once, retired with a golden record that merges away). The hub side (pin, remove,
retire on a source change, a full rebuild) is tests/workbench/test_overrides_hub.py."""

from __future__ import annotations

import pytest

from mdm_orchestration.config import AttributeRule
from mdm_orchestration.survivorship import OVERRIDE_RULE, Override, apply_overrides
from mdm_orchestration.survivorship.consolidate import Previous, plan_consolidation
from mdm_orchestration.survivorship.ids import golden_id_for
from mdm_orchestration.survivorship.overrides import (
    APPLIED,
    RECORD,
    RETIRED,
    VALUE,
    group_values,
    pinned_values,
)
from tests.unit.test_survivorship import rec, survivor

G1, G2 = golden_id_for(1), golden_id_for(2)


def _records() -> list[dict]:
    return [
        rec("a", "billing", "2026-01-01", email="ann@billing.example", email_valid=True),
        rec("b", "loyalty", "2026-03-01", email="ann@loyalty.example", email_valid=True),
    ]


def _survivor():
    return survivor(email=AttributeRule(strategies=["valid_only", "source_trust"]))


def test_a_pinned_value_is_applied_last_over_the_rules_with_override_lineage():
    records = _records()
    out = _survivor().survive(records)
    assert out.attributes["email"] == "ann@billing.example"  # billing is the most trusted
    pin = Override(
        1,
        G1,
        "email",
        VALUE,
        pinned={"email": "ann@steward.example"},
        baseline=group_values(out.attributes, "email"),
    )
    (outcome,) = apply_overrides(out, [pin], records)
    assert outcome.outcome == APPLIED
    assert out.attributes["email"] == "ann@steward.example"
    assert out.lineage["email"]["rule"] == OVERRIDE_RULE == "override"
    assert out.lineage["email"]["source"] == "steward"
    assert out.lineage["email"]["override_id"] == "1"


def test_a_pinned_record_supplies_the_whole_group_and_its_keys():
    records = [
        rec("a", "billing", street="1 Main St", city="Springfield", postcode="11111"),
        rec("b", "loyalty", street="9 Elm Rd", city="Shelbyville", address_key="elm"),
    ]
    out = survivor().survive(records)
    assert out.attributes["street"] == "1 Main St"
    pin = Override(
        2, G1, "address", RECORD, record_id="b", baseline=group_values(records[1], "address")
    )
    (outcome,) = apply_overrides(out, [pin], records)
    assert outcome.outcome == APPLIED
    assert (out.attributes["street"], out.attributes["city"]) == ("9 Elm Rd", "Shelbyville")
    assert "postcode" not in out.attributes  # never a mix of two records' address parts
    assert out.lineage["city"] == {
        "record_id": "b",
        "source": "loyalty",
        "source_key": "k-b",
        "rule": "override",
        "override_id": "2",
    }
    assert out.keys["address_key"] == "elm"


def test_a_pinned_value_brings_its_own_keys_not_the_chosen_records():
    """Householding reads the golden record's address and family keys: a steward's typed
    address or name gives the keys cleansing derives from it, never the keys of the record
    survivorship chose (which would place the person at the old address)."""
    from mdm_orchestration.cleansing.keys import group_keys

    records = [
        rec(
            "a",
            "billing",
            street="1 Main St",
            city="Springfield",
            postcode="62701",
            country="US",
            address_key="main-key",
            family_key="lee",
        ),
    ]
    out = survivor().survive(records)
    assert out.keys["address_key"] == "main-key"
    pinned = {"street": "9 Elm Rd", "city": "Shelbyville", "postcode": "62565", "country": "US"}
    pins = [
        Override(
            1, G1, "address", VALUE, pinned=pinned, baseline=group_values(out.attributes, "address")
        ),
        Override(
            2,
            G1,
            "name",
            VALUE,
            pinned={"given_name": "Ann", "family_name": "Smith"},
            baseline=group_values(out.attributes, "name"),
        ),
    ]
    assert [o.outcome for o in apply_overrides(out, pins, records)] == [APPLIED, APPLIED]
    assert out.keys["address_key"] == group_keys("address", pinned, "US")["address_key"]
    assert out.keys["address_key"] not in (None, "main-key")
    assert (
        out.keys["family_key"]
        == group_keys("name", {"given_name": "Ann", "family_name": "Smith"}, "US")["family_key"]
    )
    assert out.keys["family_key"] != "lee"


def test_a_record_pin_retires_when_the_record_changes_or_leaves():
    records = _records()
    pin = Override(3, G1, "email", RECORD, record_id="b", baseline={"email": "ann@loyalty.example"})
    changed = [records[0], {**records[1], "email": "ann@new.example"}]
    out = _survivor().survive(changed)
    (outcome,) = apply_overrides(out, [pin], changed)
    assert outcome.outcome == RETIRED and "changed" in outcome.reason
    assert out.attributes["email"] == "ann@billing.example"  # survivorship's choice stands
    assert out.lineage["email"]["rule"] != "override"
    gone = records[:1]
    (outcome,) = apply_overrides(_survivor().survive(gone), [pin], gone)
    assert outcome.outcome == RETIRED and "left" in outcome.reason


def test_a_value_pin_retires_when_survivorship_would_choose_otherwise():
    records = _records()
    pin = Override(
        4,
        G1,
        "email",
        VALUE,
        pinned={"email": "x@y.example"},
        baseline={"email": "ann@billing.example"},
    )
    # Only the chosen value counts: a change of the loyalty record changes nothing.
    other = [records[0], {**records[1], "email": "ann2@loyalty.example"}]
    out = _survivor().survive(other)
    assert apply_overrides(out, [pin], other)[0].outcome == APPLIED
    moved = [{**records[0], "email": "ann@moved.example"}, records[1]]
    out = _survivor().survive(moved)
    (outcome,) = apply_overrides(out, [pin], moved)
    assert outcome.outcome == RETIRED and "survivorship" in outcome.reason
    assert out.attributes["email"] == "ann@moved.example"


def test_the_newer_of_two_pins_on_one_group_wins():
    records = _records()
    baseline = {"email": "ann@billing.example"}
    older = Override(5, G1, "email", VALUE, pinned={"email": "old@x.example"}, baseline=baseline)
    newer = Override(6, G1, "email", VALUE, pinned={"email": "new@x.example"}, baseline=baseline)
    out = _survivor().survive(records)
    apply_overrides(out, [newer, older], records)
    assert out.attributes["email"] == "new@x.example"
    assert out.lineage["email"]["override_id"] == "6"


def test_pinned_values_are_checked_against_the_group():
    assert pinned_values("name", {"given_name": "  Ann ", "family_name": "Lee", "title": ""}) == {
        "given_name": "Ann",
        "family_name": "Lee",
    }
    with pytest.raises(ValueError, match="not in the name group"):
        pinned_values("name", {"email": "a@b.c"})
    with pytest.raises(ValueError, match="at least one value"):
        pinned_values("email", {"email": "  "})
    with pytest.raises(ValueError, match="no attribute group"):
        pinned_values("shoe_size", {"shoe_size": "9"})


def _previous(plan) -> dict[str, Previous]:
    return {
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
        for g, s in plan.states.items()
    }


def test_the_plan_applies_a_pin_once_and_retires_one_whose_golden_record_merged_away():
    s = _survivor()
    membership = {"a": ("ka", "person", None), "b": ("kb", "person", None)}
    records = _records()
    groups = [("ka", records[:1]), ("kb", records[1:])]
    first = plan_consolidation(membership, groups, {}, {}, 1, s)
    g_a, g_b = first.xref["a"], first.xref["b"]
    previous = _previous(first)
    pin = Override(
        7,
        g_a,
        "email",
        VALUE,
        pinned={"email": "p@x.example"},
        baseline={"email": "ann@billing.example"},
    )
    pinned = plan_consolidation(
        membership, groups, first.xref, previous, 3, s, overrides={g_a: [pin]}
    )
    assert [(o.override_id, o.outcome) for o in pinned.override_outcomes] == [(7, APPLIED)]
    assert pinned.states[g_a].attributes["email"] == "p@x.example"
    assert [e.changed for e in pinned.events] == [["email"]]
    # Applied already: the next plan reports nothing new about it.
    previous = {**previous, **_previous(pinned)}
    applied = Override(**{**vars(pin), "applied": True})
    again = plan_consolidation(
        membership, groups, first.xref, previous, 3, s, overrides={g_a: [applied]}
    )
    assert again.override_outcomes == [] and again.events == []
    # The two merge: the pin on the golden record that merges away is retired.
    pin_b = Override(
        8,
        g_b,
        "email",
        VALUE,
        pinned={"email": "q@x.example"},
        baseline={"email": "ann@loyalty.example"},
    )
    merged = plan_consolidation(
        {"a": ("ka", "person", None), "b": ("ka", "person", None)},
        [("ka", records)],
        first.xref,
        previous,
        3,
        s,
        overrides={g_a: [applied], g_b: [pin_b]},
    )
    assert merged.assignment.merged == {g_b: g_a}
    assert [(o.override_id, o.outcome) for o in merged.override_outcomes] == [(8, RETIRED)]
    assert "merged into" in merged.override_outcomes[0].reason
    assert merged.states[g_a].attributes["email"] == "p@x.example"
    assert {G1, G2} == {g_a, g_b}
