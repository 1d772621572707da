"""What each subscriber receives for an outbox event (pure decisions)."""

from __future__ import annotations

from datetime import UTC, datetime

from mdm_orchestration.config import Subscriber
from mdm_orchestration.syndication.messages import GoldenVersion, Held, OutboxEvent, decide

AT = datetime(2026, 3, 1, tzinfo=UTC)
MARKETING = Subscriber(
    transport="file",
    file={"folder": "x"},
    consent_purpose="marketing_email",
    attributes=["given_name", "email"],
    filter={"party_types": ["person"]},
    events=["created", "updated", "merged", "split", "retired"],
)
EVERYTHING = Subscriber(transport="file", file={"folder": "x"})


def version(
    v: int, *, granted: bool | None = True, status: str = "active", party="person", **attributes
) -> GoldenVersion:
    consents = {} if granted is None else {"marketing_email": {"granted": granted}}
    return GoldenVersion(
        "G1",
        v,
        status,
        party,
        {"given_name": "Ann", "email": "a@x.com", "national_id": "123", **attributes},
        consents,
        "customer",
        ["crm"],
    )


def event(v: int, kind: str = "updated", changed=("email",), related=()) -> OutboxEvent:
    return OutboxEvent(v, f"e{v}", "G1", v, kind, list(changed), list(related), AT)


def test_upsert_carries_only_the_subscribed_attributes():
    message, held = decide(MARKETING, event(1, "created"), version(1), None)
    assert message.event_type == "created" and held == Held(1, True)
    assert message.attributes == {"given_name": "Ann", "email": "a@x.com"}
    full, _ = decide(EVERYTHING, event(1, "created"), version(1), None)
    assert full.attributes["national_id"] == "123"


def test_no_consent_means_nothing_and_a_withdrawal_is_a_removal():
    assert decide(MARKETING, event(1, "created"), version(1, granted=None), None) == (None, None)
    message, held = decide(MARKETING, event(2), version(2, granted=False), Held(1, True))
    assert message.event_type == "removed" and message.reason == "no_consent"
    assert message.attributes is None and held == Held(2, False)
    # Consent given again: the record comes back as a full upsert.
    back, held = decide(MARKETING, event(3), version(3), Held(2, False))
    assert back.event_type == "updated" and back.attributes and held.present


def test_filters_events_and_irrelevant_changes():
    org = version(1, party="organisation")
    assert decide(MARKETING, event(1, "created"), org, None) == (None, None)
    # A change to an attribute it does not receive is not sent.
    assert decide(
        MARKETING, event(2, changed=["national_id", "members"]), version(2), Held(1, True)
    ) == (None, Held(1, True))
    # The survivor of a merge is sent even when nothing it receives changed: it now stands
    # for the golden record merged into it.
    survivor, held = decide(
        MARKETING, event(2, changed=["members"], related=["G0"]), version(2), Held(1, True)
    )
    assert survivor.event_type == "updated" and survivor.related == ["G0"] and held.present
    only_created = Subscriber(transport="file", file={"folder": "x"}, events=["created"])
    assert decide(only_created, event(2), version(2), Held(1, True))[0] is None


def test_merged_and_retired_reach_holders_only_and_erasure_reaches_anyone_who_ever_held():
    merged = event(2, "merged", ["status"], ["G0"])
    message, held = decide(MARKETING, merged, version(2, status="merged"), Held(1, True))
    assert message.event_type == "merged" and message.related == ["G0"] and not held.present
    assert decide(MARKETING, merged, version(2, status="merged"), None) == (None, None)
    erased = event(3, "erased", [])
    notice, held = decide(MARKETING, erased, version(3, status="erased"), Held(2, False))
    assert notice.event_type == "erased" and notice.attributes is None
    assert decide(MARKETING, erased, None, None) == (None, None)


def test_versions_already_delivered_are_not_sent_again():
    assert decide(EVERYTHING, event(2), version(2), Held(3, True)) == (None, Held(3, True))
