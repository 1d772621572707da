"""Business events on the real RabbitMQ (a vhost of each test's own, deleted afterwards) and
MariaDB (a database of the test's own, dropped afterwards): a move and a purchase, a filtered
subscriber, a connection cut mid-delivery, and a replay of a range."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mdm_orchestration.config import HubConfig, SubscriptionsConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.syndication import replay_range, syndicate
from tests.conftest import CONFIG_DIR
from tests.integration.test_rabbitmq import _drain, _Proxy, _url, vhost  # noqa: F401  (the fixture)
from tests.integration.test_sql_subscribers import mariadb_url  # noqa: F401  (the fixture)
from tests.outbox import T0, Outbox, deliver_changes_from_start

pytestmark = pytest.mark.rabbitmq


def _config(subscribers: dict[str, Any]) -> HubConfig:
    base = load_hub_config(CONFIG_DIR)
    subs = SubscriptionsConfig(subscribers=subscribers)
    return HubConfig(**{**base.model_dump(), "subscriptions": subs})


def _bus(url: str, queue: str = "crm", **kw: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"transport": "amqp", "amqp": {"url": url, "queue": queue}, **kw}


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


def test_a_move_and_a_purchase_reach_the_bus_and_mariadb(
    tmp_path: Path,
    engine: sa.Engine,
    vhost: str,  # noqa: F811
    mariadb_url: str,  # noqa: F811
) -> None:
    config = _config(
        {
            "bus": _bus(
                _url(vhost),
                events=["address_changed", "became_customer"],
                source_keys=["crm", "billing"],
            ),
            "crm_db": {
                "transport": "sql",
                "sql": {"url": mariadb_url, "table": "customers"},
                "events": ["*"],
            },
        }
    )
    box = Outbox(engine)
    box.put("G1", keys={"crm": "C-1001", "billing": "B-77"}, street="1 Old St", city="York")
    box.put("G2", lifecycle="lead", keys={"crm": "C-2002"}, street="2 Mill Ln", city="Hull")
    box.put("G1", street="5 New St", city="Leeds", postcode="LS1 4AP")  # moves
    box.put("G2", lifecycle="customer")  # the lead buys
    for name in ("bus", "crm_db"):
        deliver_changes_from_start(engine, name)
        assert syndicate(engine, config, name, home=tmp_path).pending == 0
    got = _drain(vhost)
    assert [(b["golden_id"], b["event_type"]) for _, _, b in got] == [
        ("G1", "address_changed"),
        ("G2", "became_customer"),
    ]
    (m1, p1, moved), (m2, _, bought) = got
    assert m1.routing_key == "address_changed" and p1.headers["Idempotency-Key"] == p1.message_id
    assert "street" in moved["changed"] and moved["attributes"]["street"] == "5 New St"
    assert moved["source_keys"] == {"crm": ["C-1001"], "billing": ["B-77"]}
    assert moved["caused_by"] == box.ids[2] and p1.message_id != box.ids[2]
    assert bought["lifecycle"] == "customer" and bought["changed"] == ["lifecycle"]
    assert bought["source_keys"] == {"crm": ["C-2002"], "billing": []}
    assert m2.routing_key == "became_customer"
    target = sa.create_engine(mariadb_url)
    try:
        with target.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT golden_id, version, street, lifecycle FROM customers ORDER BY 1")
            ).all()
    finally:
        target.dispose()
    assert [tuple(r) for r in rows] == [
        ("G1", 2, "5 New St", "customer"),
        ("G2", 2, "2 Mill Ln", "customer"),
    ]


def test_a_filtered_subscriber_receives_only_what_matches(
    tmp_path: Path,
    engine: sa.Engine,
    vhost: str,  # noqa: F811
) -> None:
    config = _config(
        {
            "movers": _bus(
                _url(vhost),
                events=["*"],
                where={"country": ["GB", "IE"], "lifecycle": ["customer"]},
                changed_any=["street", "city", "postcode"],
            )
        }
    )
    box = Outbox(engine)
    box.put("G1", country="GB", street="1 A St", city="York")
    box.put("G2", country="FR", street="2 Rue", city="Lyon")  # another country
    box.put("G3", country="IE", lifecycle="lead", street="3 B Rd", city="Cork")  # not a customer
    box.put("G1", email="new@example.com")  # no address change
    box.put("G2", street="4 Rue", city="Paris")  # moves, but in France
    box.put("G1", street="9 C St")  # moves in GB
    deliver_changes_from_start(engine, "movers")
    syndicate(engine, config, "movers", home=tmp_path)
    got = [(b["golden_id"], b["version"], b["event_type"]) for _, _, b in _drain(vhost)]
    assert got == [("G1", 1, "created"), ("G1", 3, "updated"), ("G1", 3, "address_changed")]


class _CuttingProxy(_Proxy):
    """A TCP relay to the broker that drops every connection once, after ``cut_after`` bytes
    from the client: a network fault in the middle of a window of unconfirmed messages."""

    def __init__(self, cut_after: int) -> None:
        self.cut_after, self.sent, self.cuts = cut_after, 0, 0
        self.lock = threading.Lock()
        super().__init__()

    def _relayed(self, size: int, outbound: bool) -> None:
        if not outbound:
            return
        with self.lock:
            self.sent += size
            cut = self.cuts == 0 and self.sent >= self.cut_after
            self.cuts += cut
        if cut:
            self.cut()


def test_a_connection_cut_mid_delivery_loses_nothing_and_keeps_order_per_golden_id(
    tmp_path: Path,
    engine: sa.Engine,
    vhost: str,  # noqa: F811
) -> None:
    box = Outbox(engine)
    for round_ in range(6):
        for g in range(1, 31):
            box.put(f"G{g}", street=f"{round_} Elm St", city=f"Town{round_}")
    proxy = _CuttingProxy(cut_after=120_000)
    try:
        url = _url(vhost, proxy.port)
        config = _config(
            {
                "bus": _bus(url, events=["*"], batch_size=100, max_attempts=5),
                "mirror": {
                    "transport": "file",
                    "file": {"folder": str(tmp_path / "m")},
                    "events": ["*"],
                },
            }
        )
        deliver_changes_from_start(engine, "bus")
        result = syndicate(engine, config, "bus", home=tmp_path, sleep=lambda _s: None)
    finally:
        proxy.close()
    assert proxy.cuts == 1 and result.retries >= 1 and result.pending == 0
    deliver_changes_from_start(engine, "mirror")
    syndicate(engine, config, "mirror", home=tmp_path)
    expected: dict[str, list[str]] = {}
    for path in sorted((tmp_path / "m").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            m = json.loads(line)
            expected.setdefault(m["golden_id"], []).append(m["event_id"])
    got = _drain(vhost)
    seen: set[str] = set()
    arrived: dict[str, list[str]] = {}
    for _, props, body in got:
        # A duplicate comes only under the id (the idempotency key) it had the first time.
        assert props.message_id == body["event_id"] == props.headers["Idempotency-Key"]
        if body["event_id"] not in seen:
            seen.add(body["event_id"])
            arrived.setdefault(body["golden_id"], []).append(body["event_id"])
    assert arrived == expected  # everything, in order per golden id (30 x 6 changes + moves)
    assert sum(map(len, expected.values())) == 30 * 6 + 30 * 5


def test_replay_resends_exactly_the_range_asked_for(
    tmp_path: Path,
    engine: sa.Engine,
    vhost: str,  # noqa: F811
) -> None:
    config = _config({"bus": _bus(_url(vhost), events=["*"])})
    box = Outbox(engine)
    box.put("G1", street="1 A St")
    box.put("G2", street="2 B St")
    box.put("G1", street="3 C St")
    box.put("G2", email="b@example.com")
    box.put("G1", lifecycle="lead")
    deliver_changes_from_start(engine, "bus")
    syndicate(engine, config, "bus", home=tmp_path)
    first = [b for _, _, b in _drain(vhost)]
    assert len(first) == 7  # 5 changes, one address_changed, one contact_details_changed
    replay = replay_range(
        engine, config, "bus", from_event=box.ids[2], to_event=box.ids[3], home=tmp_path
    )
    again = [b for _, _, b in _drain(vhost)]
    assert (replay.first_seq, replay.last_seq, replay.messages) == (3, 4, 4)
    in_range = [m for m in first if m["seq"] in (3, 4)]
    assert [m["event_id"] for m in again] == [m["event_id"] for m in in_range]
    # By time: the outbox records one event a minute from T0; --since without --until runs
    # to the subscriber's cursor (the end here).
    by_time = replay_range(engine, config, "bus", since=T0 + timedelta(minutes=3), home=tmp_path)
    assert (by_time.first_seq, by_time.last_seq) == (4, 5)
    assert [b["seq"] for _, _, b in _drain(vhost)] == [4, 4, 5]
