"""Matrix rows that need a consolidated hub, in one module so that its base hubs (the
consolidated hub of tests/reliability, SQLite and PostgreSQL) are built once.

Row 4: a corrected extract under the same name (different bytes) is a new version of the file:
the changed row supersedes its record's version, the golden record holding it is recomputed,
nothing is duplicated. Extracts are deltas: a row the correction leaves out keeps its record's
last version (a silo deletes a record with its ``deleted_flag`` column, tested in
test_incremental).

Row 11: two reconsolidations in two processes behind a barrier never write at the same time.

Row 12: a steward's pin racing a batch consolidation keeps both intents.

Row 18 on PostgreSQL: a ``pg_dump`` from before an erasure, restored with ``pg_restore``,
loses the person again at ``mdm erasure replay``.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.cli import main
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.ingestion import ingest_file
from mdm_orchestration.syndication import syndicate
from tests.conftest import CONFIG_DIR, PG_ADMIN_URL
from tests.helpers import check_convergence, check_invariants, write_file
from tests.reliability.steps import files_of, reconsolidate

CONFIG = load_hub_config(CONFIG_DIR)
CORRECTED_AT = datetime(2026, 12, 1, 8, 0)


def rows(engine: sa.Engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def current_extract(engine: sa.Engine, source: str, key: str) -> int:
    return rows(
        engine,
        "SELECT current_extract_id FROM source_records WHERE source = :s AND source_key = :k",
        s=source,
        k=key,
    )[0][0]


def golden_of(engine: sa.Engine, source: str, key: str) -> tuple[str, int, dict]:
    g, version, attributes = rows(
        engine,
        "SELECT g.golden_id, g.version, g.attributes FROM golden_xref x JOIN golden_records g "
        "ON g.golden_id = x.golden_id WHERE x.source = :s AND x.source_key = :k",
        s=source,
        k=key,
    )[0]
    return g, version, json.loads(attributes) if isinstance(attributes, str) else attributes


def correction(silos: Path) -> tuple[Path, str, str, str, list[str]]:
    """The last billing extract as its silo corrects it: the first customer's street changed
    (stamped after every other version of the person: the newest address survives), the last
    customer left out. Returns the original, the corrected text, the changed and the removed
    customer's keys and the original's data lines."""
    original = [p for p in files_of(silos) if p.parent.name == "billing"][-1]
    header, *lines = original.read_bytes().decode("utf-8").splitlines(keepends=True)
    assert len(lines) >= 3
    first = lines[0].rstrip("\r\n").split(";")
    changed_key, removed_key = first[0], lines[-1].split(";", 1)[0]
    first[2] = "1 Corrected Road"
    assert datetime.strptime(first[-1], "%Y-%m-%d %H:%M:%S") < CORRECTED_AT
    first[-1] = CORRECTED_AT.strftime("%Y-%m-%d %H:%M:%S")
    corrected = header + ";".join(first) + "\n" + "".join(lines[1:-1])
    return original, corrected, changed_key, removed_key, lines


def test_a_corrected_extract_replaces_the_changed_row_keeps_the_removed_one_and_recomputes(
    hub: str, small_silos: Path, tmp_path: Path
) -> None:
    engine = create_hub_engine(hub)
    try:
        reconsolidate(engine, CONFIG, "settle")  # the base hub's last two files
        original, corrected, changed_key, removed_key, lines = correction(small_silos)

        records_before = rows(engine, "SELECT count(*) FROM source_records")[0][0]
        versions_before = rows(engine, "SELECT count(*) FROM source_record_versions")[0][0]
        removed_extract = current_extract(engine, "billing", removed_key)
        changed_golden, changed_version, _ = golden_of(engine, "billing", changed_key)
        removed_golden = golden_of(engine, "billing", removed_key)
        unchanged = dict(rows(engine, "SELECT golden_id, version FROM golden_records"))

        # The correction lands under the original's name, in a landing zone of the test's own.
        landing = tmp_path / "landing"
        target = landing / "billing" / original.name
        target.parent.mkdir(parents=True)
        target.write_text(corrected, encoding="utf-8", newline="")
        outcome = ingest_file(engine, CONFIG, target, landing)
        assert outcome.status.value == "loaded"  # same name, new bytes: a new version
        extract_id = current_extract(engine, "billing", changed_key)
        # The ledger holds both versions of the file, each loaded once.
        names = rows(
            engine,
            "SELECT status FROM extracts WHERE source = 'billing' AND file_name LIKE :n",
            n=f"%{original.name}",
        )
        assert names == [("loaded",), ("loaded",)]
        # Upsert: the changed record's current version is the correction's, nothing doubled.
        assert rows(engine, "SELECT count(*) FROM source_records")[0][0] == records_before
        assert (
            rows(engine, "SELECT count(*) FROM source_record_versions")[0][0]
            == versions_before + len(lines) - 1
        )
        assert extract_id != removed_extract
        # Removal from a delta extract: the record left out keeps its last version.
        assert current_extract(engine, "billing", removed_key) == removed_extract

        counts = reconsolidate(engine, CONFIG, "corrected")
        assert counts["golden"]["records_considered"] < 60  # only what the change reaches
        golden, version, attributes = golden_of(engine, "billing", changed_key)
        assert golden == changed_golden and version == changed_version + 1
        assert attributes["street"].startswith("1 Corrected"), attributes
        event = rows(
            engine,
            "SELECT event_type, changed FROM golden_changes WHERE golden_id = :g AND version = :v",
            g=golden,
            v=version,
        )
        assert len(event) == 1 and event[0][0] == "updated"
        changed = event[0][1] if isinstance(event[0][1], list) else json.loads(event[0][1])
        assert "street" in changed
        assert golden_of(engine, "billing", removed_key) == removed_golden  # left as it was
        after = dict(rows(engine, "SELECT golden_id, version FROM golden_records"))
        moved = {g for g, v in after.items() if unchanged.get(g) != v}
        assert golden in moved and len(moved) <= 3
        assert source_record_id("billing", changed_key) in {
            r
            for (r,) in rows(
                engine, "SELECT record_id FROM golden_xref WHERE golden_id = :g", g=golden
            )
        }

        # The same correction again is a duplicate: nothing changes.
        again = landing / "billing" / ("again_" + original.name)
        again.write_text(corrected, encoding="utf-8", newline="")
        assert ingest_file(engine, CONFIG, again, landing).status.value == "duplicate"
        check_invariants(engine)
        check_convergence(engine, CONFIG)
    finally:
        engine.dispose()


def pg_url(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL (for pg_dump, pg_restore)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_dump_text(url: str) -> str:
    """The whole database as pg_dump's plain SQL (every table's rows)."""
    return subprocess.run(
        ["pg_dump", "--no-owner", pg_url(url)], check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize("hub", ["postgres"], indirect=True)
def test_a_pg_dump_restored_after_an_erasure_loses_the_person_again_at_replay(
    hub: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Row 18 on PostgreSQL: ``pg_dump`` before the erasure, ``mdm erase``, the dump restored
    with ``pg_restore`` into a fresh database, ``mdm erasure replay`` (its ledger is outside
    the hub): no canary anywhere in the restored database's dump, the subscriber told."""
    tag = uuid.uuid4().hex[:8]
    name, email = f"Canaryname{tag}", f"zz-canary-{tag}@example.invalid"
    canaries = [name, email, f"{tag} Canarystreet"]
    landing = tmp_path / "landing"
    write_file(
        landing / "billing" / "canary.csv",
        "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"
        f"C{tag};Zed {name};1 {tag} Canarystreet;;Springfield;IL;62701;217-555-0199;{email};"
        "1980-02-03;;2026-01-01 00:00:00\n",
    )
    write_file(
        landing / "loyalty" / "canary.csv",
        "member_no,given_name,surname,birthday,email_address,mobile,street_address,"
        "town,state,postcode,last_update,consent_marketing\n"
        f"LC{tag},Zed,{name},03/02/1980,{email},217-555-0199,1 {tag} Canarystreet,"
        "Springfield,IL,62701,01/01/2026 10:00,Y\n",
    )
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    out = tmp_path / "out"
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {"subscribers": {"files": {"transport": "file", "file": {"folder": str(out)}}}}
        ),
        encoding="utf-8",
    )
    config = load_hub_config(config_dir)
    engine = create_hub_engine(hub)
    restored = f"mdm_restored_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        for source in ("billing", "loyalty"):
            ingest_file(engine, config, landing / source / "canary.csv", landing)
        reconsolidate(engine, config, "canary")
        (golden,) = {
            g
            for (g,) in rows(
                engine,
                "SELECT golden_id FROM golden_xref WHERE source_key IN (:b, :l)",
                b=f"C{tag}",
                l=f"LC{tag}",
            )
        }
        assert syndicate(engine, config, "files", home=tmp_path).snapshot > 0
        before = pg_dump_text(hub)
        assert all(c in before for c in canaries)
        backup = tmp_path / "hub.dump"
        subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(backup), pg_url(hub)],
            check=True,
        )

        assert main(["erase", "--golden", golden, "--hub", hub]) == 0
        assert not [c for c in canaries if c in pg_dump_text(hub)]  # erased in the live hub

        # The backup restored into a fresh database: the person is back.
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{restored}"'))
        restored_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{restored}"
        subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                "--dbname",
                pg_url(restored_url),
                str(backup),
            ],
            check=True,
        )
        assert all(c in pg_dump_text(restored_url) for c in canaries)

        capsys.readouterr()
        assert main(["erasure", "replay", "--hub", restored_url, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["entries"] == 1 and report["redone"] == 1 and report["golden_records"] == 1

        dump = pg_dump_text(restored_url)
        assert not [c for c in canaries if c in dump]  # grep the whole restored database
        again = create_hub_engine(restored_url)
        try:
            assert rows(
                again, "SELECT status FROM golden_records WHERE golden_id = :g", g=golden
            ) == [("erased",)]
            check_invariants(again)
            syndicate(again, config, "files", home=tmp_path)
            told = [
                json.loads(line)
                for path in sorted(out.iterdir())
                for line in path.read_text(encoding="utf-8").splitlines()
            ]
            kinds = [m["event_type"] for m in told if m["golden_id"] == golden]
            assert kinds.count("erased") >= 1 and "snapshot" in kinds
            capsys.readouterr()
            assert main(["erasure", "replay", "--hub", restored_url, "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["redone"] == 0
        finally:
            again.dispose()
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)'))
        admin.dispose()


def test_a_steward_pin_racing_a_batch_consolidation_keeps_both_intents(
    hub: str, small_silos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row 12: a batch consolidation (a corrected extract moved a customer) plans; before it
    writes, a steward in another session pins the same golden record's email. The batch
    commits without the pin (planned before it), the hub sees the pin as not applied yet, and
    the next consolidation applies it on top of the batch's new address: neither intent is
    lost, and the hub converges."""
    from mdm_orchestration.survivorship import needs_consolidation, pin_attribute, writing

    engine = create_hub_engine(hub)
    try:
        reconsolidate(engine, CONFIG, "settle")
        original, corrected, changed_key, _removed, _lines = correction(small_silos)
        golden, version, attributes = golden_of(engine, "billing", changed_key)
        pinned = f"steward.{uuid.uuid4().hex[:6]}@example.com"
        assert attributes.get("email") != pinned
        landing = tmp_path / "landing"
        write_file(landing / "billing" / original.name, corrected)
        ingest_file(engine, CONFIG, landing / "billing" / original.name, landing)

        planned, pins = writing.plan, []

        def plan_then_the_steward_pins(conn, config, **kwargs):  # type: ignore[no-untyped-def]
            out = planned(conn, config, **kwargs)
            if not pins:  # session B commits while session A holds its plan
                pins.append(
                    pin_attribute(
                        engine,
                        CONFIG,
                        golden,
                        "email",
                        by="steward",
                        reason="customer called",
                        values={"email": pinned},
                    )
                )
            return out

        monkeypatch.setattr(writing, "plan", plan_then_the_steward_pins)
        counts = reconsolidate(engine, CONFIG, "batch")
        monkeypatch.setattr(writing, "plan", planned)
        assert pins and counts["golden"]["updated"] >= 1
        raced, raced_version, after_batch = golden_of(engine, "billing", changed_key)
        assert raced == golden and raced_version == version + 1
        assert after_batch["street"].startswith("1 Corrected")  # the batch's intent
        assert after_batch.get("email") != pinned  # planned before the pin existed
        with engine.connect() as conn:
            assert needs_consolidation(conn, CONFIG)  # the pin is seen as not applied yet
        assert rows(
            engine,
            "SELECT status, applied_version FROM attribute_overrides WHERE id = :i",
            i=pins[0],
        ) == [("active", None)]

        reconsolidate(engine, CONFIG, "next")
        final, final_version, both = golden_of(engine, "billing", changed_key)
        assert final == golden and final_version == version + 2
        assert both["email"] == pinned and both["street"].startswith("1 Corrected")
        assert rows(
            engine,
            "SELECT status, applied_version FROM attribute_overrides WHERE id = :i",
            i=pins[0],
        ) == [("active", final_version)]
        with engine.connect() as conn:
            assert not needs_consolidation(conn, CONFIG)
        check_invariants(engine)
        check_convergence(engine, CONFIG)
    finally:
        engine.dispose()


#: The hub tables a reconsolidation writes (cleansing, matching, consolidation).
RUN_TABLES = (
    "cleansed_records",
    "match_clusters",
    "match_pairs",
    "match_runs",
    "blocking_index",
    "review_queue",
    "consolidation_queue",
    "golden_records",
    "golden_history",
    "golden_xref",
    "golden_changes",
    "golden_runs",
)


def install_write_audit(url: str) -> None:
    """A PostgreSQL audit of every statement that writes one of :data:`RUN_TABLES`: the
    writing session's ``application_name`` (each child process names its sessions), its
    transaction, the time, and the ``application_name`` of the session holding the run's
    advisory lock in this database then, if any (``pg_locks``, where a bigint key shows as
    classid = its high and objid = its low 32 bits; advisory locks are per database). The lock is held on a session of its own, so the two names
    are compared, not the backends."""
    from mdm_orchestration.hub.store import RECONSOLIDATION_LOCK_KEY

    high, low = RECONSOLIDATION_LOCK_KEY >> 32, RECONSOLIDATION_LOCK_KEY & 0xFFFFFFFF
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE write_audit (app text, txid bigint, at timestamptz, "
                    "tbl text, op text, holder text)"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE FUNCTION audit_write() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN INSERT INTO write_audit VALUES (current_setting('application_name'), "
                    "txid_current(), clock_timestamp(), TG_TABLE_NAME, TG_OP, (SELECT "
                    "a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid "
                    "FROM pg_database WHERE datname = current_database()) "
                    f"AND l.classid = {high} AND l.objid = {low} AND l.objsubid = 1)); "
                    "RETURN NULL; END $$"
                )
            )
            for table in RUN_TABLES:
                conn.execute(
                    sa.text(
                        f"CREATE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE ON "
                        f"{table} FOR EACH STATEMENT EXECUTE FUNCTION audit_write()"
                    )
                )
    finally:
        engine.dispose()


def _reconsolidate_behind(barrier, url: str, n: int, audit: str) -> None:  # type: ignore[no-untyped-def]
    """The body of a forked child: one whole reconsolidation (cleanse, match, consolidate, as
    reconsolidate_job runs them, with no Dagster pool around it), started with the other
    child's at the barrier. Each write transaction's window (from its BEGIN, which on SQLite
    takes the write lock, to just before its COMMIT) is appended to ``audit``."""
    import time

    if url.startswith("postgresql"):
        url += f"?application_name=overlap-{n}"  # the audit tells the two processes apart
    engine = create_hub_engine(url)
    windows: list[tuple[float, float]] = []
    began: dict[int, float] = {}

    @sa.event.listens_for(engine, "begin")  # after the hub's own BEGIN (IMMEDIATE on SQLite)
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get("mdm_write"):
            began[id(conn)] = time.monotonic()

    @sa.event.listens_for(engine, "commit")
    def _commit(conn) -> None:  # type: ignore[no-untyped-def]
        if id(conn) in began:
            windows.append((began.pop(id(conn)), time.monotonic()))

    barrier.wait(timeout=60)
    reconsolidate(engine, CONFIG, f"overlap-{n}")
    with open(audit, "a", encoding="utf-8") as out:
        out.writelines(json.dumps([n, a, b]) + "\n" for a, b in windows)
    engine.dispose()


def test_two_reconsolidations_in_processes_never_write_at_the_same_time(
    hub: str, tmp_path: Path
) -> None:
    """Row 11: two whole reconsolidations in two processes, released together by a
    ``multiprocessing.Barrier``, no Dagster pool: the database alone serialises them (the
    advisory lock on PostgreSQL, the single writer of SQLite, with no ``database is locked``).
    Both succeed, one does the work and the other finds none, their write transactions never
    overlap; on PostgreSQL an audit trigger shows every matching and consolidation write
    made while its own process held the advisory lock and no two transactions' writes
    interleaved. (Before the fix, the second run failed: on PostgreSQL cleansing the same
    extract, a unique violation; on SQLite matching, ConcurrentMatch at its commit.)"""

    postgres = hub.startswith("postgresql")
    if postgres:
        install_write_audit(hub)
    audit = tmp_path / "windows.jsonl"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    children = [
        ctx.Process(target=_reconsolidate_behind, args=(barrier, hub, n, str(audit)))
        for n in (1, 2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
        if child.exitcode is None:
            child.kill()
    assert [c.exitcode for c in children] == [0, 0]
    windows = sorted(tuple(json.loads(line)) for line in audit.read_text().splitlines())
    assert {n for n, _a, _b in windows} == {1, 2}
    by_start = sorted(windows, key=lambda w: w[1])
    overlaps = [(a, b) for a, b in zip(by_start, by_start[1:], strict=False) if b[1] < a[2]]
    assert overlaps == []

    engine = create_hub_engine(hub)
    try:
        runs = rows(engine, "SELECT run_id FROM golden_runs WHERE run_id LIKE 'overlap-%'")
        assert len(runs) == 2
        assert rows(engine, "SELECT count(*) FROM consolidation_queue") == [(0,)]
        if postgres:
            audited = rows(engine, "SELECT app, txid, at, tbl, holder FROM write_audit")
            assert {app for app, *_ in audited} == {"overlap-1", "overlap-2"}
            unlocked = sorted(
                {(app, tbl, holder) for app, _t, _at, tbl, holder in audited if holder != app}
            )
            assert unlocked == []  # every write made while its own process held the lock
            spans: dict[int, list] = {}
            for app, txid, at, _tbl, _holder in audited:
                span = spans.setdefault(txid, [app, at, at])
                span[1], span[2] = min(span[1], at), max(span[2], at)
            ordered = sorted(spans.values(), key=lambda s: s[1])
            interleaved = [
                (a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b[1] < a[2]
            ]
            assert interleaved == []
        check_invariants(engine)
        check_convergence(engine, CONFIG)
    finally:
        engine.dispose()
