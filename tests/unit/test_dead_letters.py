"""Poison events (RELIABILITY row 16, issue 17 defect 12): an event a subscriber refuses for
good is dead-lettered after ``dead_letter_after`` tries, the later events of its golden record
are held behind it, every other golden record keeps flowing; retry and drop; transient failures
unchanged. A real hub (SQLite and PostgreSQL), a real HTTP receiver on 127.0.0.1, a real SQL
target; the outbox is written directly (it is syndication's input)."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.config import ConfigError, load_hub_config
from mdm_orchestration.hub.status import hub_status
from mdm_orchestration.hub.tables import CHANGES, GOLDEN, HISTORY
from mdm_orchestration.survivorship import event_id
from mdm_orchestration.syndication import (
    SubscriberFailing,
    drop_dead_letters,
    ensure_state,
    list_dead_letters,
    retry_dead_letters,
    subscriber_status,
    syndicate,
)
from mdm_orchestration.syndication.transports import http_failure
from tests.conftest import CONFIG_DIR

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class Receiver:
    """A webhook on 127.0.0.1 answering ``refuse_status`` for the golden ids in ``refuse``,
    ``down_status`` to everything while ``down``, 200 otherwise (and recording what it took)."""

    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.refuse_status = 400
        self.down = False
        self.down_status = 503
        self.got: list[dict] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    if receiver.down:
                        status = receiver.down_status
                    elif body["golden_id"] in receiver.refuse:
                        status = receiver.refuse_status
                        receiver.refused.append(body["event_id"])
                    else:
                        status = 200
                        receiver.got.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, golden_id: str | None = None) -> list[tuple[str, int]]:
        return [
            (b["golden_id"], b["version"])
            for b in self.got
            if golden_id is None or b["golden_id"] == golden_id
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def write_config(tmp_path: Path, subscribers: dict) -> Path:
    config_dir = tmp_path / "config"
    if not config_dir.exists():
        shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "subscriptions.yaml").write_text(yaml.safe_dump({"subscribers": subscribers}))
    return config_dir


def hook(url: str, **extra) -> dict:
    return {
        "transport": "webhook",
        "webhook": {"url": url, "timeout_seconds": 5},
        "backoff_seconds": 0,
        "max_attempts": 4,
        "snapshot": False,
        **extra,
    }


@pytest.fixture
def engine(hub_engine: sa.Engine) -> sa.Engine:
    return hub_engine


class Outbox:
    """Golden-record versions and their outbox events, as consolidation writes them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.versions: dict[str, int] = {}

    def add(self, golden_id: str, event_type: str | None = None, **attributes) -> int:
        version = self.versions.get(golden_id, 0) + 1
        self.versions[golden_id] = version
        kind = event_type or ("created" if version == 1 else "updated")
        status = "erased" if kind == "erased" else "active"
        attrs = {"given_name": f"Given{golden_id}", "city": "Lyon", **attributes}
        if kind == "erased":
            attrs = {}
        with self.engine.begin() as conn:
            conn.execute(
                HISTORY.insert().values(
                    golden_id=golden_id,
                    version=version,
                    status=status,
                    change=kind,
                    changed=sorted(attrs),
                    party_type="person",
                    attributes=attrs,
                    lineage={},
                    consents={},
                    lifecycle="customer",
                    sources=["crm"],
                    members=[],
                    recorded_at=T0,
                )
            )
            golden = dict(
                version=version,
                status=status,
                party_type="person",
                attributes=attrs,
                keys={},
                lineage={},
                consents={},
                lifecycle="customer",
                sources=["crm"],
                member_count=1,
                content_hash="h",
                updated_at=T0,
            )
            if version == 1:
                seq = len(self.versions)
                conn.execute(
                    GOLDEN.insert().values(golden_id=golden_id, seq=seq, created_at=T0, **golden)
                )
            else:
                conn.execute(
                    GOLDEN.update().where(GOLDEN.c.golden_id == golden_id).values(**golden)
                )
            conn.execute(
                CHANGES.insert().values(
                    event_id=event_id(golden_id, version),
                    golden_id=golden_id,
                    version=version,
                    event_type=kind,
                    changed=sorted(attrs) or ["erased"],
                    related=[],
                    created_at=T0,
                )
            )
        return version


def no_sleep(_seconds: float) -> None:
    return None


def states(engine, subscriber: str = "hook") -> dict[tuple[str, int], str]:
    return {
        (d.golden_id, d.version): d.state
        for d in list_dead_letters(engine, subscriber=subscriber, include_resolved=True)
    }


def outbox_accounted_for(engine, receiver: Receiver, subscriber: str = "hook") -> None:
    """Every outbox event ends delivered, dead-lettered or held: nothing lost."""
    with engine.connect() as conn:
        events = conn.execute(sa.select(CHANGES.c.golden_id, CHANGES.c.version)).all()
    delivered = set(receiver.events())
    unresolved = {
        (d.golden_id, d.version)
        for d in list_dead_letters(engine, subscriber=subscriber)
        if d.state in ("dead", "held", "queued")
    }
    missing = {tuple(e) for e in events} - delivered - unresolved
    assert missing == set()


def in_order_per_golden(receiver: Receiver) -> None:
    last: dict[str, int] = {}
    for golden_id, version in receiver.events():
        assert version > last.get(golden_id, 0), (golden_id, version)
        last[golden_id] = version


def test_a_poison_event_is_dead_lettered_others_flow_and_its_later_events_wait(
    engine, receiver, tmp_path
):
    config = load_hub_config(write_config(tmp_path, {"hook": hook(receiver.url)}))
    ensure_state(engine, "hook", config.subscriptions.subscribers["hook"])
    box = Outbox(engine)
    for g in ("G1", "P", "G2"):
        box.add(g)
    box.add("P")  # P v2, behind the poison v1
    box.add("G3")
    receiver.refuse = {"P"}

    result = syndicate(engine, config, "hook", sleep=no_sleep)  # no SubscriberFailing

    assert sorted(receiver.events()) == [("G1", 1), ("G2", 1), ("G3", 1)]
    assert receiver.refused == [event_id("P", 1)] * 3  # dead_letter_after: 3 by default
    assert states(engine) == {("P", 1): "dead", ("P", 2): "held"}
    (dead, held) = list_dead_letters(engine, subscriber="hook")
    assert (dead.event_id, dead.attempts, dead.error_class, dead.error_status) == (
        event_id("P", 1),
        3,
        "HTTP",
        400,
    )
    assert dead.seq is not None and held.seq is not None and held.seq > dead.seq
    assert result.dead_lettered == 1 and result.held == 1 and result.pending == 0
    status = subscriber_status(engine, config)["hook"]
    assert status["status"] == "ok" and status["cursor_seq"] == status["outbox_seq"]
    assert (status["dead_lettered"], status["held"], status["requeued"]) == (1, 1, 0)
    hub = hub_status(engine)
    assert hub["dead_lettered_events"] == 1
    assert hub["dead_letters"] == {"hook": {"dead": 1, "held": 1, "queued": 0}}
    outbox_accounted_for(engine, receiver)

    # The receiver is fixed, but nothing of P goes out before the dead letter is resolved;
    # new events of P wait too, other golden records still flow.
    receiver.refuse = set()
    box.add("P")
    box.add("G1")
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert receiver.events("P") == []
    assert ("G1", 2) in receiver.events()
    assert states(engine) == {("P", 1): "dead", ("P", 2): "held", ("P", 3): "held"}
    outbox_accounted_for(engine, receiver)

    # Retry by event: the dead one and everything held behind it, in order, next delivery.
    assert retry_dead_letters(engine, event_id=event_id("P", 1)) == 3
    assert retry_dead_letters(engine, event_id=event_id("P", 1)) == 0  # idempotent
    assert subscriber_status(engine, config)["hook"]["pending"] == 3  # a run is due
    result = syndicate(engine, config, "hook", sleep=no_sleep)
    assert receiver.events("P") == [("P", 1), ("P", 2), ("P", 3)]
    assert result.retried == 3
    assert set(states(engine).values()) == {"delivered"}
    assert list_dead_letters(engine) == []
    assert subscriber_status(engine, config)["hook"]["pending"] == 0
    in_order_per_golden(receiver)
    outbox_accounted_for(engine, receiver)
    assert retry_dead_letters(engine) == 0


def test_refused_again_is_dead_again_then_a_drop_lets_the_golden_record_flow(
    engine, receiver, tmp_path, monkeypatch
):
    config = load_hub_config(
        write_config(tmp_path, {"hook": hook(receiver.url, dead_letter_after=2)})
    )
    ensure_state(engine, "hook", config.subscriptions.subscribers["hook"])
    box = Outbox(engine)
    box.add("P")
    box.add("P")
    box.add("G1")
    receiver.refuse, receiver.refuse_status = {"P"}, 422
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert len(receiver.refused) == 2  # dead_letter_after: 2
    assert states(engine) == {("P", 1): "dead", ("P", 2): "held"}

    assert retry_dead_letters(engine, subscriber="hook") == 2
    syndicate(engine, config, "hook", sleep=no_sleep)  # still refused: dead again
    assert states(engine) == {("P", 1): "dead", ("P", 2): "held"}
    (dead, _held) = list_dead_letters(engine)
    assert dead.attempts == 4 and dead.error_status == 422
    assert receiver.events("P") == []

    with pytest.raises(ValueError, match="reason"):
        drop_dead_letters(engine, reason=" ", by="ops")
    assert drop_dead_letters(engine, reason="bad address upstream", by="ops", subscriber="x") == 0
    assert drop_dead_letters(engine, reason="bad address upstream", by="ops") == 2
    assert drop_dead_letters(engine, reason="again", by="ops") == 0  # idempotent
    dropped = list_dead_letters(engine, include_resolved=True)
    assert {(d.state, d.reason, d.resolved_by) for d in dropped} == {
        ("dropped", "bad address upstream", "ops")
    }
    assert all(d.resolved_at is not None for d in dropped)
    assert retry_dead_letters(engine) == 0  # a dropped one is not retried

    receiver.refuse = set()
    box.add("P")
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert receiver.events("P") == [("P", 3)]  # after a drop, its next events flow
    assert subscriber_status(engine, config)["hook"]["dead_lettered"] == 0


@pytest.mark.parametrize("status", [503, 429, 408, 401, 404])
def test_transient_and_endpoint_wide_failures_keep_the_subscriber_failing_not_dead_lettered(
    engine, receiver, tmp_path, status
):
    config = load_hub_config(write_config(tmp_path, {"hook": hook(receiver.url)}))
    ensure_state(engine, "hook", config.subscriptions.subscribers["hook"])
    box = Outbox(engine)
    box.add("G1")
    box.add("G2")
    receiver.down, receiver.down_status = True, status
    with pytest.raises(SubscriberFailing, match=f"HTTP {status}"):
        syndicate(engine, config, "hook", sleep=no_sleep)
    state = subscriber_status(engine, config)["hook"]
    assert state["status"] == "failing" and state["pending"] == 2
    assert list_dead_letters(engine, include_resolved=True) == []
    receiver.down = False
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert receiver.events() == [("G1", 1), ("G2", 1)]


def test_an_erasure_is_not_held_behind_a_dead_letter_and_supersedes_it(engine, receiver, tmp_path):
    config = load_hub_config(write_config(tmp_path, {"hook": hook(receiver.url)}))
    ensure_state(engine, "hook", config.subscriptions.subscribers["hook"])
    box = Outbox(engine)
    box.add("P")
    syndicate(engine, config, "hook", sleep=no_sleep)  # the subscriber holds P v1
    box.add("P")
    box.add("P")
    receiver.refuse = {"P"}
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert states(engine) == {("P", 2): "dead", ("P", 3): "held"}

    receiver.refuse = set()
    box.add("P", "erased")
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert [b["event_type"] for b in receiver.got if b["golden_id"] == "P"] == [
        "created",
        "erased",
    ]
    assert set(states(engine).values()) == {"superseded"}
    assert retry_dead_letters(engine) == 0


def test_a_snapshot_row_refused_for_good_is_dead_lettered_and_retried(engine, receiver, tmp_path):
    box = Outbox(engine)
    for g in ("G1", "P", "G2"):
        box.add(g)
    config = load_hub_config(
        write_config(tmp_path, {"hook": hook(receiver.url, snapshot=True, batch_size=2)})
    )
    receiver.refuse = {"P"}
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert sorted(receiver.events()) == [("G1", 1), ("G2", 1)]
    (dead,) = list_dead_letters(engine)
    assert (dead.golden_id, dead.seq, dead.state) == ("P", None, "dead")
    box.add("P")
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert states(engine) == {("P", 1): "dead", ("P", 2): "held"}

    receiver.refuse = set()
    retry_dead_letters(engine)
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert [(b["event_type"], b["version"]) for b in receiver.got if b["golden_id"] == "P"] == [
        ("snapshot", 1),
        ("updated", 2),
    ]
    assert list_dead_letters(engine) == []


def test_a_sql_target_refusing_one_row_dead_letters_that_event_only(engine, tmp_path):
    target = tmp_path / "target.db"
    target_engine = sa.create_engine(f"sqlite:///{target}")
    with target_engine.begin() as conn:  # the subscriber's own table: city is required there
        conn.exec_driver_sql(
            "CREATE TABLE customers (golden_id VARCHAR(16) PRIMARY KEY, version INTEGER NOT "
            "NULL, event_id VARCHAR(36) NOT NULL, party_type VARCHAR(16), lifecycle "
            "VARCHAR(32), given_name TEXT, city TEXT NOT NULL, updated_at VARCHAR(40) NOT NULL)"
        )
    sub = {
        "transport": "sql",
        "sql": {"url": f"sqlite:///{target}", "table": "customers"},
        "attributes": ["given_name", "city"],
        "snapshot": False,
        "backoff_seconds": 0,
    }
    config = load_hub_config(write_config(tmp_path, {"table": sub}))
    ensure_state(engine, "table", config.subscriptions.subscribers["table"])
    box = Outbox(engine)
    box.add("G1")
    box.add("P", city=None)
    box.add("G2")
    box.add("P", city="Paris")
    syndicate(engine, config, "table", sleep=no_sleep)
    with target_engine.connect() as conn:
        held = dict(conn.exec_driver_sql("SELECT golden_id, version FROM customers").all())
    target_engine.dispose()
    assert held == {"G1": 1, "G2": 1}  # the rows before and after it are delivered
    assert states(engine, "table") == {("P", 1): "dead", ("P", 2): "held"}
    (dead, _held) = list_dead_letters(engine, subscriber="table")
    assert (dead.error_class, dead.error_status) == ("IntegrityError", None)


def test_http_failures_are_classified():
    assert http_failure(400).permanent and http_failure(422).permanent
    assert http_failure(409).permanent and http_failure(413).permanent
    for status in (408, 425, 429, 401, 403, 404, 405, 407, 500, 502, 503, 504, 302):
        assert not http_failure(status).permanent, status
    assert (http_failure(400).error_class, http_failure(400).status) == ("HTTP", 400)
    assert str(http_failure(400)) == "webhook: HTTP 400"


def test_dead_letter_after_is_validated(tmp_path, receiver):
    with pytest.raises(ConfigError, match=r"subscriber 'hook'.*dead_letter_after"):
        load_hub_config(write_config(tmp_path, {"hook": hook(receiver.url, dead_letter_after=5)}))
    with pytest.raises(ConfigError, match=r"subscriber 'hook': field 'dead_letter_after'"):
        load_hub_config(write_config(tmp_path, {"hook": hook(receiver.url, dead_letter_after=0)}))
    config = load_hub_config(write_config(tmp_path, {"hook": hook(receiver.url, max_attempts=2)}))
    sub = config.subscriptions.subscribers["hook"]
    assert (sub.dead_letter_after, sub.dead_letter_tries) == (3, 2)  # the default fits in


def test_a_held_event_left_without_its_dead_one_is_delivered_not_stranded(
    engine, receiver, tmp_path
):
    """A retry or drop racing a delivery that holds a new event leaves a held row with no dead
    row before it: the next delivery queues it rather than holding it behind nothing."""
    config = load_hub_config(write_config(tmp_path, {"hook": hook(receiver.url)}))
    ensure_state(engine, "hook", config.subscriptions.subscribers["hook"])
    box = Outbox(engine)
    box.add("P")
    box.add("P")
    receiver.refuse = {"P"}
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert states(engine) == {("P", 1): "dead", ("P", 2): "held"}
    # What the race leaves: the dead row dropped, the held one written after the drop.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE dead_letters SET state = 'dropped' WHERE version = 1"))
    receiver.refuse = set()
    syndicate(engine, config, "hook", sleep=no_sleep)
    assert receiver.events("P") == [("P", 2)]
    assert states(engine) == {("P", 1): "dropped", ("P", 2): "delivered"}
