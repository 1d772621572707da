"""Syndication end to end on a real hub: a webhook receiver that fails, file and SQL targets,
consent, a failing subscriber in Dagster, crashes mid-delivery, and erasure."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.assets.syndication import LAG, subscriber_deliveries
from mdm_orchestration.cleansing import cleanse_pending
from mdm_orchestration.cli import main
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.ingestion import ingest_file
from mdm_orchestration.matching import rebuild_clusters, record_override
from mdm_orchestration.partitions import subscribers
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.survivorship import consolidate
from mdm_orchestration.syndication import replay_range, retry_dead_letters, syndicate
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import (
    build_mastered_hub,
    check_invariants,
    query_plans,
    statements_run,
    write_file,
)


class Receiver:
    """A webhook target on 127.0.0.1: fails its first ``fail_first`` requests (503), or all of
    them while ``down``; records what it accepted."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.down = False
        self.requests = 0
        self.got: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.requests += 1
                    failing = receiver.down or receiver.requests <= receiver.fail_first
                    if not failing:
                        receiver.got.append((self.headers["Idempotency-Key"], body))
                self.send_response(503 if failing else 200)
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mastered(tmp_path_factory, sample_silos) -> Path:
    root = tmp_path_factory.mktemp("mastered")
    build_mastered_hub(root, sample_silos)
    return root


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hub(tmp_path, mastered, receiver):
    shutil.copy(mastered / "hub.db", tmp_path / "hub.db")
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    out = tmp_path / "out"
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {
                "subscribers": {
                    "hook": {
                        "transport": "webhook",
                        "webhook": {"url": receiver.url, "timeout_seconds": 5},
                        "backoff_seconds": 0,
                        "max_attempts": 4,
                        "batch_size": 200,
                    },
                    "files": {
                        "transport": "file",
                        "file": {"folder": str(out / "files")},
                        "batch_size": 300,
                    },
                    "table": {
                        "transport": "sql",
                        "sql": {"url": f"sqlite:///{out / 'target.db'}", "table": "customers"},
                    },
                    "marketing": {
                        "transport": "file",
                        "file": {"folder": str(out / "marketing"), "format": "csv"},
                        "attributes": ["given_name", "family_name", "email"],
                        "filter": {"party_types": ["person"]},
                        "consent_purpose": "marketing_email",
                    },
                }
            }
        )
    )
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = create_hub_engine(url)
    yield {
        "url": url,
        "engine": engine,
        "config_dir": config_dir,
        "config": load_hub_config(config_dir),
        "out": out,
        "root": tmp_path,
        "landing": mastered / "landing",
    }
    engine.dispose()


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def active_goldens(engine) -> dict[str, int]:
    return dict(rows(engine, "SELECT golden_id, version FROM golden_records WHERE status='active'"))


def merge_two(hub) -> tuple[str, str]:
    """A steward merges two single-record person golden records; reconsolidate."""
    engine = hub["engine"]
    (a, ga), (b, gb) = rows(
        engine,
        "SELECT x.record_id, x.golden_id FROM golden_xref x JOIN "
        "golden_records g USING (golden_id) WHERE g.member_count = 1 "
        "AND g.party_type = 'person' ORDER BY x.golden_id LIMIT 2",
    )
    record_override(engine, a, b, "must_link", "test")
    rebuild_clusters(engine, hub["config"])
    consolidate(engine, hub["config"], "merge")
    return ga, gb


def no_sleep(_seconds: float) -> None:
    return None


def lag_checks(result: dg.ExecuteInProcessResult) -> list:
    """The run's evaluations of the lag check (the asset has a dead-letter check too)."""
    return [c for c in result.get_asset_check_evaluations() if c.check_name == LAG]


def test_webhook_gets_everything_in_order_per_golden_record_despite_failures(hub, receiver):
    engine, config = hub["engine"], hub["config"]
    receiver.fail_first = 3
    result = syndicate(engine, config, "hook", sleep=no_sleep)
    assert result.retries == 3 and result.pending == 0
    snapshot = {b["golden_id"]: b for _k, b in receiver.got}
    assert set(snapshot) == set(active_goldens(engine))
    assert all(b["event_type"] == "snapshot" and b["attributes"] for b in snapshot.values())

    survivor, merged = merge_two(hub)
    receiver.requests, receiver.fail_first = 0, 2
    before = len(receiver.got)
    syndicate(engine, config, "hook", sleep=no_sleep)
    changes = receiver.got[before:]
    kinds = {(b["golden_id"], b["event_type"]) for _k, b in changes}
    assert (merged, "merged") in kinds and (survivor, "updated") in kinds
    merged_msg = next(b for _k, b in changes if b["event_type"] == "merged")
    assert merged_msg["related"] == [survivor] and merged_msg["attributes"] is None
    # Per golden record, versions only grow; a key is sent again only with the same body.
    seen: dict[str, int] = {}
    by_key: dict[str, dict] = {}
    for key, body in receiver.got:
        assert key == body["event_id"]
        assert by_key.setdefault(key, body) == body
        assert body["version"] >= seen.get(body["golden_id"], 0)
        seen[body["golden_id"]] = body["version"]
    assert syndicate(engine, config, "hook", sleep=no_sleep).delivered == 0  # nothing new


def test_failing_subscriber_fails_its_run_and_check_then_resumes_where_it_stopped(
    hub, receiver, tmp_path
):
    resources = {
        "hub": HubDatabase(url=hub["url"]),
        "landing": LandingZone(root=str(hub["landing"]), config_dir=str(hub["config_dir"])),
    }
    receiver.down = True
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(subscribers.name, ["hook"])
        failed = dg.materialize(
            [subscriber_deliveries],
            partition_key="hook",
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        assert not failed.success
        (check,) = lag_checks(failed)
        assert not check.passed and check.metadata["status"].value == "failing"
        state = rows(
            hub["engine"],
            "SELECT status, failing_since, last_error, cursor_seq "
            "FROM subscriber_state WHERE subscriber='hook'",
        )[0]
        assert state[0] == "failing" and state[1] is not None and state[2] == "webhook: HTTP 503"
        assert receiver.got == []

        receiver.down = False
        ok = dg.materialize(
            [subscriber_deliveries], partition_key="hook", instance=instance, resources=resources
        )
        (check,) = lag_checks(ok)
        assert check.passed
        meta = ok.asset_materializations_for_node("subscriber_deliveries")[0].metadata
        assert meta["pending_events"].value == 0 and meta["status"].value == "ok"
    assert {b["golden_id"] for _k, b in receiver.got} == set(active_goldens(hub["engine"]))


def test_file_and_sql_subscribers_hold_the_golden_state(hub):
    engine, config, out = hub["engine"], hub["config"], hub["out"]
    for name in ("files", "table"):
        syndicate(engine, config, name)
    merge_two(hub)
    for name in ("files", "table"):
        syndicate(engine, config, name)
    current = active_goldens(engine)
    target = sa.create_engine(f"sqlite:///{out / 'target.db'}")
    with target.connect() as conn:
        table = dict(conn.execute(sa.text("SELECT golden_id, version FROM customers")).all())
    target.dispose()
    assert table == current  # merged-away records deleted, versions current
    # The files replay to the same state: upserts and removals, in order.
    state: dict[str, int] = {}
    names = sorted(p.name for p in (out / "files").iterdir())
    assert names and not any(n.startswith(".") for n in names)  # no temporary file left
    snapshots = [n for n in names if "snapshot" in n]
    for name in snapshots + [n for n in names if n not in snapshots]:
        for line in (out / "files" / name).read_text().splitlines():
            m = json.loads(line)
            if m["attributes"] is None:
                state.pop(m["golden_id"], None)
            else:
                state[m["golden_id"]] = m["version"]
    assert state == current


#: The hub's tables that grow with it: a delivery batch must search them by its own keys.
GROWING_TABLES = (
    "golden_records",
    "golden_history",
    "golden_changes",
    "golden_xref",
    "household_members",
    "deliveries",
    "dead_letters",
)


def test_each_delivery_batch_searches_by_its_own_keys_not_the_whole_hub(hub, tmp_path):
    """What a batch costs follows what it delivers, not the hub's size: every read of a
    snapshot and of the changes (with a subscriber's source keys) searches an index by the
    batch's own keys or range. Regressions this catches: the snapshot's next active golden
    records read through the index on ``status`` alone, every active record sorted for each
    batch (a 1M-record hub: 805 s of CPU, quadratic); the subscriber's keys read by
    ``source IN (...)``, every cross-reference row of those sources for each chunk."""
    config_dir = tmp_path / "plans"
    shutil.copytree(hub["config_dir"], config_dir)
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {
                "subscribers": {
                    "keyed": {
                        "transport": "file",
                        "file": {"folder": str(hub["out"] / "keyed")},
                        "source_keys": ["crm", "billing"],
                        "events": ["*"],
                        "batch_size": 50,
                    }
                }
            }
        )
    )
    config = load_hub_config(config_dir)
    engine = hub["engine"]
    statements: dict[str, object] = {}

    def traced(run, *args, **kwargs):  # type: ignore[no-untyped-def]
        with statements_run(engine, ("SELECT", "UPDATE", "DELETE")) as seen:
            try:
                return run(*args, **kwargs)
            finally:
                for statement, parameters in seen.items():
                    statements.setdefault(statement, parameters)

    first = traced(syndicate, engine, config, "keyed")  # the snapshot
    merge_two(hub)
    second = traced(syndicate, engine, config, "keyed")  # the changes
    assert first.snapshot > 100 and first.batches > 2 and second.delivered > 0
    keyed = [json.loads(line) for f in (hub["out"] / "keyed").iterdir() for line in f.open()]
    assert any(m["source_keys"]["crm"] for m in keyed)
    # Dead letters retried (their versions read by (golden id, version) pairs), and a range of
    # the outbox sent again.
    events = rows(
        engine, "SELECT seq, event_id, golden_id, version FROM golden_changes ORDER BY seq"
    )
    with engine.begin() as conn:
        for seq, event_id, golden_id, version in events[:3]:
            conn.execute(
                sa.text(
                    "INSERT INTO dead_letters (subscriber, event_id, seq, golden_id, version, "
                    "state, attempts, dead_lettered_at) VALUES ('keyed', :e, :s, :g, :v, 'dead', "
                    "3, CURRENT_TIMESTAMP)"
                ),
                {"e": event_id, "s": seq, "g": golden_id, "v": version},
            )
    assert traced(retry_dead_letters, engine, subscriber="keyed") == 3
    assert traced(syndicate, engine, config, "keyed").retried == 3
    assert traced(replay_range, engine, config, "keyed", from_event=events[0][1]).messages > 100

    snapshot_reads = []
    for statement, plan in query_plans(engine, statements).items():
        text = " | ".join(plan)
        for line in plan:
            assert not any(line.startswith(f"SCAN {t}") for t in GROWING_TABLES), (
                statement,
                text,
            )
        if "FROM golden_xref" in statement:
            assert "(source=?)" not in text, (statement, text)
        if "FROM golden_records" in statement:
            assert "TEMP B-TREE" not in text, (statement, text)
            if "golden_records.golden_id >" in statement:
                snapshot_reads.append(text)
    assert snapshot_reads
    assert all("(status=? AND golden_id>?)" in text for text in snapshot_reads), snapshot_reads


def test_marketing_receives_consenting_persons_only_and_a_withdrawal(hub):
    engine, config = hub["engine"], hub["config"]
    syndicate(engine, config, "marketing")
    (csv_file,) = (hub["out"] / "marketing").glob("*.csv")
    with csv_file.open() as fh:
        sent = list(csv.DictReader(fh))
    consenting = {
        g
        for g, c, p in rows(
            engine,
            "SELECT golden_id, consents, party_type FROM golden_records WHERE status = 'active'",
        )
        if p == "person" and json.loads(c).get("marketing_email", {}).get("granted")
    }
    assert {r["golden_id"] for r in sent} == consenting
    assert set(sent[0]) >= {"given_name", "family_name", "email"}
    assert "national_id" not in sent[0] and "phone" not in sent[0]
    # Every message field a JSON Lines file has, lists and objects as JSON.
    assert list(sent[0])[-7:] == [
        "changed",
        "source_keys",
        "household_id",
        "organisation_golden_id",
        "consents",
        "caused_by",
        "change_type",
    ]
    for row in sent:
        consents = json.loads(row["consents"])
        assert list(consents) == ["marketing_email"] and consents["marketing_email"]["granted"]
        changed = json.loads(row["changed"])
        assert isinstance(changed, list)
        assert changed == [] if row["event_type"] in ("snapshot", "created") else changed
        assert json.loads(row["source_keys"]) == {}

    # A loyalty member withdraws consent in a later extract.
    golden, key = next(
        (g, json.loads(c)["marketing_email"]["source_key"])
        for g, c in rows(engine, "SELECT golden_id, consents FROM golden_records")
        if json.loads(c).get("marketing_email", {}).get("source") == "loyalty"
        and json.loads(c)["marketing_email"]["granted"]
    )
    raw = rows(
        engine,
        "SELECT v.raw FROM source_record_versions v JOIN source_records s ON "
        "s.current_extract_id = v.extract_id AND s.current_row_number = "
        "v.row_number WHERE s.source = 'loyalty' AND s.source_key = :k",
        k=key,
    )[0][0]
    values = json.loads(raw) if isinstance(raw, str) else raw
    values.update(consent_marketing="N", last_update="20/11/2026 09:00")
    landing = hub["root"] / "landing2"
    header = list(values)
    write_file(
        landing / "loyalty" / "withdrawal.csv",
        ",".join(header) + "\n" + ",".join(f'"{values[h] or ""}"' for h in header) + "\n",
    )
    ingest_file(engine, config, landing / "loyalty" / "withdrawal.csv", landing)
    cleanse_pending(engine, config)
    rebuild_clusters(engine, config)
    consolidate(engine, config, "withdrawal")
    result = syndicate(engine, config, "marketing")
    assert result.delivered == 1
    removal = [p for p in (hub["out"] / "marketing").glob("*.csv") if p != csv_file]
    with removal[0].open() as fh:
        (message,) = list(csv.DictReader(fh))
    assert message["golden_id"] == golden and message["event_type"] == "removed"
    assert message["reason"] == "no_consent" and message["email"] == ""


@pytest.mark.parametrize("transport", ["hook", "files"])
def test_a_delivery_killed_after_sending_is_redelivered_and_nothing_is_lost(
    hub, receiver, transport
):
    engine = hub["engine"]
    script = (
        "import sys; from mdm_orchestration.config import load_hub_config;"
        "from mdm_orchestration.hub.store import create_hub_engine;"
        "from mdm_orchestration.syndication import syndicate;"
        "syndicate(create_hub_engine(sys.argv[1]), load_hub_config(sys.argv[2]), sys.argv[3])"
    )
    env = {**os.environ, "MDM_CRASH_AT": "syndication:after_send_before_commit"}
    proc = subprocess.run(
        [sys.executable, "-c", script, hub["url"], str(hub["config_dir"]), transport],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert rows(engine, "SELECT count(*) FROM deliveries") == [(0,)]  # nothing recorded as sent
    syndicate(engine, hub["config"], transport)
    current = set(active_goldens(engine))
    if transport == "hook":
        keys = [k for k, _b in receiver.got]
        assert {b["golden_id"] for _k, b in receiver.got} == current
        assert len(keys) > len(set(keys))  # the first batch came twice, under the same keys
    else:
        delivered = set()
        for path in (hub["out"] / "files").iterdir():
            delivered |= {json.loads(line)["golden_id"] for line in path.read_text().splitlines()}
        assert delivered == current
    ledger = rows(engine, "SELECT count(*) FROM deliveries WHERE subscriber = :s", s=transport)
    assert ledger == [(len(current),)]


def test_erasure_removes_the_person_everywhere_and_tells_every_recipient(hub, receiver, tmp_path):
    engine, config = hub["engine"], hub["config"]
    tag = uuid.uuid4().hex[:8]
    name, email = f"Canaryname{tag}", f"zz-canary-{tag}@example.invalid"
    canaries = [name, email, "Canarystreet"]
    landing = hub["root"] / "landing3"
    billing = write_file(
        landing / "billing" / "canary.csv",
        "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"
        f"C{tag};Zed {name};1 Canarystreet Rd;;Springfield;IL;62701;217-555-0199;{email};"
        "1980-02-03;;2026-01-01 00:00:00\n",
    )
    loyalty_header = (
        "member_no,given_name,surname,birthday,email_address,mobile,street_address,"
        "town,state,postcode,last_update,consent_marketing\n"
    )
    loyalty_row = (
        f"LC{tag},Zed,{name},03/02/1980,{email},217-555-0199,1 Canarystreet Rd,"
        "Springfield,IL,62701,01/01/2026 10:00,Y\n"
    )
    loyalty = write_file(landing / "loyalty" / "canary.csv", loyalty_header + loyalty_row)
    for path in (billing, loyalty):
        ingest_file(engine, config, path, landing)
    cleanse_pending(engine, config)
    rebuild_clusters(engine, config)
    consolidate(engine, config, "canary")
    resources = {
        "hub": HubDatabase(url=hub["url"]),
        "landing": LandingZone(root=str(landing), config_dir=str(hub["config_dir"])),
    }
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        names = list(config.subscriptions.subscribers)
        instance.add_dynamic_partitions(subscribers.name, names)
        for sub in names:
            assert dg.materialize(
                [subscriber_deliveries], partition_key=sub, instance=instance, resources=resources
            ).success
        (golden,) = {
            g
            for (g,) in rows(
                engine,
                "SELECT golden_id FROM golden_xref WHERE source_key IN (:a, :b)",
                a=f"C{tag}",
                b=f"LC{tag}",
            )
        }
        assert len(rows(engine, "SELECT 1 FROM golden_xref WHERE golden_id=:g", g=golden)) == 2
        recipients = {
            s
            for (s,) in rows(
                engine, "SELECT subscriber FROM deliveries WHERE golden_id = :g", g=golden
            )
        }
        assert recipients == {"hook", "files", "table", "marketing"}

        assert main(["erase", "--source", "billing", "--key", f"C{tag}", "--hub", hub["url"]]) == 0
        for sub in names:
            assert dg.materialize(
                [subscriber_deliveries], partition_key=sub, instance=instance, resources=resources
            ).success

    # Gone from every hub table (the tombstone holds hashes only) ...
    dump = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            dump += [str(r) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
    text = "\n".join(dump)
    assert not [c for c in canaries if c in text]
    # No kept match pair still names a record that is gone.
    assert rows(
        engine,
        "SELECT count(*) FROM match_pairs WHERE left_record_id NOT IN (SELECT id "
        "FROM source_records) OR right_record_id NOT IN (SELECT id FROM "
        "source_records)",
    ) == [(0,)]
    assert rows(
        engine, "SELECT status, attributes FROM golden_records WHERE golden_id=:g", g=golden
    ) == [("erased", "{}")]
    check_invariants(engine)
    # ... from Dagster's storage ...
    leaked = [
        p
        for p in dagster_home.rglob("*")
        if p.is_file() and any(c.encode() in p.read_bytes() for c in canaries)
    ]
    assert leaked == []
    # ... and every subscriber that received the person was told.
    assert [b["event_type"] for _k, b in receiver.got if b["golden_id"] == golden][-1] == "erased"
    for folder in ("files", "marketing"):
        last = None
        for path in sorted((hub["out"] / folder).iterdir(), key=lambda p: p.stat().st_mtime_ns):
            text = path.read_text()
            if golden in text:
                last = text
        assert last is not None and "erased" in last
    target = sa.create_engine(f"sqlite:///{hub['out'] / 'target.db'}")
    with target.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM customers WHERE golden_id = :g"), {"g": golden}
            ).scalar_one()
            == 0
        )
    target.dispose()

    # A later extract carrying the person again is quarantined, not loaded.
    again = write_file(
        landing / "loyalty" / "again.csv",
        loyalty_header + loyalty_row + "LOTHER,Amy,Other,,a@b.co,,,,,,01/01/2026 10:00,N\n",
    )
    ingest_file(engine, config, again, landing)
    reasons = rows(
        engine,
        "SELECT q.reason FROM quarantine q JOIN extracts e ON e.id = "
        "q.extract_id WHERE e.file_name LIKE '%again.csv'",
    )
    assert reasons == [("erased_subject",)]
    assert rows(
        engine, "SELECT count(*) FROM source_records WHERE source_key = :k", k=f"LC{tag}"
    ) == [(0,)]
    assert rows(engine, "SELECT count(*) FROM source_records WHERE source_key = 'LOTHER'") == [(1,)]


def test_syndication_sensor_requests_a_run_per_subscriber_with_pending_events(hub, tmp_path):
    from mdm_orchestration.sensors import syndication_sensor

    resources = {
        "hub": HubDatabase(url=hub["url"]),
        "landing": LandingZone(root=str(hub["landing"]), config_dir=str(hub["config_dir"])),
    }
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            first = syndication_sensor(context)
        assert {r.partition_key for r in first.run_requests} == set(
            hub["config"].subscriptions.subscribers
        )
        (added,) = first.dynamic_partitions_requests
        assert set(added.partition_keys) == {"hook", "files", "table", "marketing"}
        for name in ("files", "table", "marketing"):
            syndicate(hub["engine"], hub["config"], name)
        with dg.build_sensor_context(
            instance=instance, resources=resources, cursor=first.cursor
        ) as context:
            second = syndication_sensor(context)
        assert [r.partition_key for r in second.run_requests] == ["hook"]
        keys = {r.partition_key: r.run_key for r in first.run_requests}
        assert second.run_requests[0].run_key == keys["hook"]  # same state, same run key


def test_a_slow_drip_webhook_is_a_failed_retried_delivery_never_a_delivered_one(hub):
    """Issue 17, defect 4: a receiver dripping one byte a second ends each attempt at the
    request's total deadline; the attempts are retried with backoff, then the subscriber is
    failing and nothing is recorded as delivered."""
    from mdm_orchestration.config import Subscriber, SubscriptionsConfig
    from mdm_orchestration.syndication import SubscriberFailing
    from tests.unit.test_webhook_deadline import SlowDrip

    engine = hub["engine"]
    drip = SlowDrip("body")
    slow = Subscriber(
        transport="webhook",
        webhook={"url": drip.url, "timeout_seconds": 1},
        max_attempts=3,
        backoff_seconds=0.1,
        max_backoff_seconds=0.15,
    )
    config = hub["config"].model_copy(
        update={"subscriptions": SubscriptionsConfig(subscribers={"slow": slow})}
    )
    waits: list[float] = []
    started = time.monotonic()
    try:
        with pytest.raises(SubscriberFailing, match="TimeoutError"):
            syndicate(engine, config, "slow", sleep=waits.append)
    finally:
        drip.close()
    assert time.monotonic() - started < 3 * 1 + 4  # three attempts of 1 s each, plus slack
    assert drip.requests == 3 and len(waits) == 2
    assert all(0.05 <= w <= 0.15 for w in waits)
    status, attempts, error, delivered, cursor = rows(
        engine,
        "SELECT status, attempts, last_error, delivered_total, cursor_seq "
        "FROM subscriber_state WHERE subscriber='slow'",
    )[0]
    assert status == "failing" and attempts == 3 and "TimeoutError" in error
    assert delivered == 0 and cursor == 0
    assert rows(engine, "SELECT count(*) FROM deliveries WHERE subscriber='slow'")[0][0] == 0


def test_subscriber_deliveries_is_in_the_hub_writer_pool():
    """It writes the hub (the delivery ledger, the cursor, dead letters) like the other
    hub-writing assets, so it shares their one-writer pool (issue 17, defect 13)."""
    from mdm_orchestration.definitions import defs

    graph = defs.resolve_asset_graph()

    def pool(key: str) -> str | None:
        return graph.get(dg.AssetKey(key)).assets_def.op.pool

    assert pool("subscriber_deliveries") == "hub_writer"
    assert pool("subscriber_deliveries") == pool("golden_records") == pool("source_extracts")


def test_a_poison_golden_record_in_the_snapshot_is_dead_lettered_and_the_rest_delivered(hub):
    """Row 16 on a consolidated hub: the webhook refuses one golden record (400) for good."""
    from mdm_orchestration.syndication import list_dead_letters, retry_dead_letters
    from tests.unit.test_dead_letters import Receiver as RefusingReceiver

    engine = hub["engine"]
    target = RefusingReceiver()
    try:
        config_dir = hub["config_dir"]
        spec = yaml.safe_load((config_dir / "subscriptions.yaml").read_text())
        spec["subscribers"]["hook"]["webhook"]["url"] = target.url
        (config_dir / "subscriptions.yaml").write_text(yaml.safe_dump(spec))
        config = load_hub_config(config_dir)
        goldens = active_goldens(engine)
        poison = sorted(goldens)[len(goldens) // 2]
        target.refuse = {poison}

        result = syndicate(engine, config, "hook", sleep=no_sleep)

        assert {g for g, _v in target.events()} == set(goldens) - {poison}
        (dead,) = list_dead_letters(engine, subscriber="hook")
        assert (dead.golden_id, dead.state, dead.attempts, dead.error_status) == (
            poison,
            "dead",
            3,
            400,
        )
        assert result.dead_lettered == 1 and result.pending == 0
        held = dict(
            rows(engine, "SELECT golden_id, version FROM deliveries WHERE subscriber='hook'")
        )
        assert poison not in held and len(held) == len(goldens) - 1

        target.refuse = set()
        assert retry_dead_letters(engine, subscriber="hook") == 1
        syndicate(engine, config, "hook", sleep=no_sleep)
        assert {g for g, _v in target.events()} == set(goldens)
        assert list_dead_letters(engine) == []
    finally:
        target.close()
