"""Business events as messages of their own, messages a subscriber can act on, business
criteria (``where``, ``changed_any``), ``source_keys`` and replay: pure decisions, config
validation, and delivery to a file subscriber over a small SQLite hub."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.config import (
    ConfigError,
    HubConfig,
    Subscriber,
    SubscriptionsConfig,
    init_config_dir,
    load_hub_config,
)
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.syndication import (
    GoldenVersion,
    Held,
    OutboxEvent,
    business_event_id,
    expand,
    replay_range,
    syndicate,
)
from mdm_orchestration.syndication.delivery import Step, _Run
from mdm_orchestration.syndication.messages import Extras, with_extras
from tests.conftest import CONFIG_DIR
from tests.outbox import Outbox, deliver_changes_from_start

AT = datetime(2026, 3, 1, tzinfo=UTC)
MOVED = ["city", "postcode", "street"]


def sub(**kw) -> Subscriber:  # type: ignore[no-untyped-def]
    return Subscriber(transport="file", file={"folder": "x"}, **kw)


def version(v: int = 2, **attributes) -> GoldenVersion:  # type: ignore[no-untyped-def]
    return GoldenVersion(
        "G1",
        v,
        "active",
        "person",
        {"given_name": "Ann", "street": "1 New St", "city": "Leeds", "country": "GB", **attributes},
        {"marketing_email": {"granted": True}, "analytics": {"granted": False}},
        "customer",
        ["crm"],
        organisation_golden_id="G9",
    )


def event(v: int = 2, changed=MOVED, business=("address_changed",)) -> OutboxEvent:  # type: ignore[no-untyped-def]
    eid = f"{v:08d}-0000-5000-8000-000000000000"
    return OutboxEvent(v, eid, "G1", v, "updated", list(changed), [], AT, list(business))


def test_a_change_expands_into_its_message_and_one_per_selected_business_event() -> None:
    everything = sub(events=["*"])
    messages, held = expand(everything, event(), version(), Held(1, True))
    assert [m.event_type for m in messages] == ["updated", "address_changed"]
    base, moved = messages
    assert held == Held(2, True)
    assert moved.event_id == business_event_id(base.event_id, "address_changed") != base.event_id
    assert business_event_id(base.event_id, "address_changed") == moved.event_id  # stable
    assert moved.caused_by == base.event_id and moved.change_type == "updated"
    assert moved.changed == MOVED and moved.attributes["street"] == "1 New St"
    assert moved.organisation_golden_id == "G9" and not moved.removes
    # Only the business event selected: it goes alone, and the ledger moves on.
    only, held = expand(sub(events=["address_changed"]), event(), version(), Held(1, True))
    assert [m.event_type for m in only] == ["address_changed"] and held == Held(2, True)
    # Change events only (the default): no business event.
    plain, _ = expand(sub(), event(), version(), Held(1, True))
    assert [m.event_type for m in plain] == ["updated"]


def test_changed_and_consents_are_cut_to_what_the_subscriber_may_see() -> None:
    marketing = sub(
        events=["*"],
        attributes=["given_name", "city"],
        consent_purpose="marketing_email",
    )
    changes = ["city", "national_id", "consents.analytics", "consents.marketing_email"]
    messages, _ = expand(marketing, event(changed=changes), version(), Held(1, True))
    assert messages[0].changed == ["city", "consents.marketing_email"]
    assert messages[0].consents == {"marketing_email": {"granted": True}}
    assert set(messages[0].attributes) == {"given_name", "city"}


def test_where_filters_on_values_and_changed_any_on_changes() -> None:
    irish = sub(events=["*"], where={"country": ["IE"], "lifecycle": ["customer"]})
    assert expand(irish, event(), version(), None) == ([], None)
    removed, held = expand(irish, event(), version(), Held(1, True))
    assert [(m.event_type, m.reason) for m in removed] == [("removed", "filtered")]
    assert held == Held(2, False)
    british = sub(events=["*"], where={"country": ["GB", "IE"]})
    assert len(expand(british, event(), version(), Held(1, True))[0]) == 2
    movers = sub(events=["*"], changed_any=["street", "postcode"])
    assert len(expand(movers, event(), version(), Held(1, True))[0]) == 2
    renamed = event(changed=["given_name"], business=["name_changed"])
    assert expand(movers, renamed, version(), Held(1, True)) == ([], Held(1, True))


def test_source_keys_and_household_come_with_every_message() -> None:
    crm = sub(events=["*"], source_keys=["crm", "billing"])
    messages, _ = expand(crm, event(), version(), Held(1, True))
    extras = Extras({"crm": ["C-7"], "web": ["W-1"]}, "H1")
    sent = [with_extras(crm, m, extras) for m in messages]
    assert all(m.source_keys == {"crm": ["C-7"], "billing": []} for m in sent)
    assert all(m.household_id == "H1" for m in sent)
    body = sent[1].as_dict()
    assert body["event_type"] == "address_changed" and body["source_keys"]["crm"] == ["C-7"]


def test_a_step_is_settled_only_once_all_its_messages_are_through() -> None:
    two = Step(1, ("a", "b"), None)  # type: ignore[arg-type]
    one = Step(2, ("c",), None)  # type: ignore[arg-type]
    empty = Step(3, (), None)
    assert _Run._prefix([two, one, empty], 0) == 0
    assert _Run._prefix([two, one, empty], 1) == 0  # half of the first step: resend it whole
    assert _Run._prefix([two, one, empty], 2) == 1
    assert _Run._prefix([empty, two], 0) == 1
    assert _Run._prefix([two, one, empty], 3) == 3


def _config_dir(tmp_path: Path, subscribers: dict) -> Path:  # type: ignore[type-arg]
    folder = tmp_path / "config"
    init_config_dir(folder)
    (folder / "subscriptions.yaml").write_text(yaml.safe_dump({"subscribers": subscribers}))
    return folder


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"where": {"shoe_size": ["42"]}}, "where", "unknown field(s) ['shoe_size']"),
        ({"where": {"lifecycle": ["vip"]}}, "where", "unknown value(s) ['vip']"),
        ({"where": {"country": []}}, "where", "list at least one value"),
        ({"changed_any": ["stret"]}, "changed_any", "unknown field(s) ['stret']"),
        ({"source_keys": ["sap"]}, "source_keys", "unknown source(s) ['sap']"),
        ({"events": ["address_moved"]}, "events", "unknown event type(s) ['address_moved']"),
    ],
)
def test_bad_criteria_are_errors_naming_the_subscriber_and_the_field(
    tmp_path: Path,
    body: dict,  # type: ignore[type-arg]
    field: str,
    message: str,
) -> None:
    folder = _config_dir(
        tmp_path, {"crm_feed": {"transport": "file", "file": {"folder": "o"}, **body}}
    )
    with pytest.raises(ConfigError) as caught:
        load_hub_config(folder)
    text = str(caught.value)
    assert "subscriber 'crm_feed'" in text and f"field '{field}" in text and message in text


def test_good_criteria_load_and_the_warehouse_takes_every_event_type(tmp_path: Path) -> None:
    folder = _config_dir(
        tmp_path,
        {
            "crm_feed": {
                "transport": "file",
                "file": {"folder": "o"},
                "events": ["address_changed", "became_customer", "erased"],
                "where": {"country": ["GB", "IE"], "lifecycle": ["customer"]},
                "changed_any": ["street", "city", "postcode"],
                "source_keys": ["crm"],
            }
        },
    )
    feed = load_hub_config(folder).subscriptions.subscribers["crm_feed"]
    assert feed.source_keys == ["crm"] and feed.wants("address_changed")
    assert not feed.wants("updated")
    warehouse = load_hub_config(CONFIG_DIR).subscriptions.subscribers["warehouse"]
    assert warehouse.wants("updated") and warehouse.wants("became_customer")


def _hub(tmp_path: Path, subscribers: dict):  # type: ignore[no-untyped-def, type-arg]
    base = load_hub_config(CONFIG_DIR)
    subs = SubscriptionsConfig(subscribers=subscribers)
    config = HubConfig(**{**base.model_dump(), "subscriptions": subs})
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    return config, engine


def _read(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_a_file_subscriber_gets_business_events_and_a_replay_resends_just_the_range(
    tmp_path: Path,
) -> None:
    config, engine = _hub(
        tmp_path,
        {
            "warehouse": {
                "transport": "file",
                "file": {"folder": str(tmp_path / "wh")},
                "events": ["*"],
                "source_keys": ["crm"],
            }
        },
    )
    try:
        box = Outbox(engine)
        box.put("G1", lifecycle="lead", street="1 Old St", city="York", household="H1")
        box.put("G2", street="9 High St", city="Bath")
        box.put("G1", lifecycle="customer")  # the lead buys
        box.put("G1", street="5 New St", city="Leeds")  # and moves
        box.put("G2", email="b@example.com")
        deliver_changes_from_start(engine, "warehouse")
        result = syndicate(engine, config, "warehouse", home=tmp_path)
        got = _read(tmp_path / "wh")
        assert result.pending == 0 and result.delivered == len(got) == 8
        assert [(m["golden_id"], m["event_type"]) for m in got] == [
            ("G1", "created"),
            ("G2", "created"),
            ("G1", "updated"),
            ("G1", "became_customer"),
            ("G1", "updated"),
            ("G1", "address_changed"),
            ("G2", "updated"),
            ("G2", "contact_details_changed"),
        ]
        moved = got[5]
        assert moved["changed"] == ["city", "street"] and moved["source_keys"] == {"crm": ["C-G1"]}
        assert moved["household_id"] == "H1" and moved["version"] == 3
        assert all("changed" in m and "event_type" in m for m in got)
        # Replay the lead's purchase up to the move: exactly those two events' messages.
        for path in (tmp_path / "wh").glob("*.jsonl"):
            path.unlink()
        again = replay_range(
            engine, config, "warehouse", from_event=box.ids[2], to_event=box.ids[3], home=tmp_path
        )
        replayed = _read(tmp_path / "wh")
        assert (again.first_seq, again.last_seq, again.events) == (3, 4, 2)
        assert [m["event_id"] for m in replayed] == [m["event_id"] for m in got[2:6]]
        with pytest.raises(ValueError, match="no outbox event"):
            replay_range(engine, config, "warehouse", from_event="nope", home=tmp_path)
        # An erased person's versions are scrubbed: a replay does not send them again.
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE golden_records SET status = 'erased' WHERE golden_id = 'G2'")
            )
            conn.execute(sa.text("DELETE FROM golden_xref WHERE golden_id = 'G2'"))
        for path in (tmp_path / "wh").glob("*.jsonl"):
            path.unlink()
        whole = replay_range(engine, config, "warehouse", from_event=box.ids[0], home=tmp_path)
        assert {m["golden_id"] for m in _read(tmp_path / "wh")} == {"G1"} and whole.skipped == 2
    finally:
        engine.dispose()


def test_household_moves_are_judged_against_the_households_before_the_change() -> None:
    from mdm_orchestration.config import EventsConfig
    from mdm_orchestration.survivorship.business_events import (
        HouseholdBefore,
        HouseholdMove,
        business_events,
        household_move,
    )

    pair = HouseholdBefore("H1", "a1", "smith", 2)
    alone = HouseholdBefore("H9", "a9", "smith", 1)
    garcias = HouseholdBefore("H2", "a2", "garcia", 3)
    # Moves in with the Garcia Lopez family's compatible household: leaves the Smiths.
    assert household_move(pair, "a2", "garcia lopez", [garcias]) == HouseholdMove(True, True)
    # Moves from living alone to an empty address: nothing to tell.
    assert household_move(alone, "a3", "smith", []) == HouseholdMove()
    # Same address, same household (a new phone number, say): nothing.
    assert household_move(pair, "a1", "smith", [pair]) == HouseholdMove()
    # Same address, another family name: leaves the household it shared.
    assert household_move(pair, "a1", "jones", [pair]) == HouseholdMove(False, True)
    names = business_events(
        EventsConfig(), ["street"], None, None, {}, {}, HouseholdMove(joined=True)
    )
    assert names == ["address_changed", "joined_household"]


def test_a_replay_time_with_an_offset_is_turned_into_utc():
    """The hub stores UTC and SQLite compares times as written: ``--since 13:30+02:00`` must
    reach the query as 11:30 UTC, not as 13:30 with its offset dropped."""
    from datetime import UTC, datetime, timedelta

    from mdm_orchestration.cli_syndication import _when

    got = _when("2026-11-20T13:30:00+02:00")
    assert got is not None and got.utcoffset() == timedelta(0)
    assert got.replace(tzinfo=None) == datetime(2026, 11, 20, 11, 30)
    assert _when("2026-11-20T13:30:00") == datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
    assert _when(None) is None


def test_a_replay_takes_times_with_offsets_and_leaves_a_failing_target_s_state_alone(
    tmp_path: Path,
) -> None:
    """``since`` in another zone means the same instant (SQLite compares times as written);
    a replay to a target that is down gives up without marking the subscriber failing."""
    import socket
    from datetime import timedelta, timezone

    from mdm_orchestration.syndication import SubscriberFailing
    from tests.outbox import T0

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config, engine = _hub(
        tmp_path,
        {
            "warehouse": {"transport": "file", "file": {"folder": str(tmp_path / "wh")}},
            "hook": {
                "transport": "webhook",
                "webhook": {"url": f"http://127.0.0.1:{closed}/e", "timeout_seconds": 2},
                "backoff_seconds": 0.01,
                "max_attempts": 2,
                "snapshot": False,
            },
        },
    )
    try:
        box = Outbox(engine)
        for n in range(4):
            box.put(f"G{n}", street=f"{n} Main St")
        deliver_changes_from_start(engine, "warehouse")
        syndicate(engine, config, "warehouse", home=tmp_path)
        plus_two = timezone(timedelta(hours=2))
        since = (T0 + timedelta(minutes=2)).astimezone(plus_two)  # the third event's minute
        got = replay_range(engine, config, "warehouse", since=since, home=tmp_path)
        assert (got.first_seq, got.last_seq) == (3, 4)

        with engine.begin() as conn:  # the hook has had its deliveries (cursor at the end)
            conn.execute(
                sa.text(
                    "INSERT INTO subscriber_state (subscriber, cursor_seq, snapshot_done, "
                    "delivered_total, status, attempts, updated_at) "
                    "VALUES ('hook', 4, 1, 4, 'ok', 0, :now)"
                ),
                {"now": datetime.now(UTC)},
            )
        with pytest.raises(SubscriberFailing):
            replay_range(
                engine, config, "hook", from_event=box.ids[0], home=tmp_path, sleep=lambda s: None
            )
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status, last_error FROM subscriber_state WHERE subscriber = 'hook'")
            ).one()
        assert tuple(status) == ("ok", None)
    finally:
        engine.dispose()
