"""The same code on the local PostgreSQL: migrations, ingestion, and two concurrent loads."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.hub.store import create_hub_engine, schema_head, schema_revision
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from tests.helpers import ingest_all, write_file

pytestmark = pytest.mark.postgres

HEADER = "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"


def rows(n: int, start: int = 0) -> str:
    return "".join(
        f"B{i};Doe, Jane;{i} Main St;;Town;IL;62701;217-555-0100;j{i}@example.com;1980-01-01;;2026-01-01 00:00:00\n"
        for i in range(start, start + n)
    )


def load_at_once(engine, hub_config, landing, paths) -> list:
    """Ingest the files from as many threads, released together; no thread may fail."""
    barrier = threading.Barrier(len(paths))
    outcomes: list = []
    errors: list = []

    def load(path):
        barrier.wait()
        try:
            outcomes.append(ingest_file(engine, hub_config, path, landing))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return outcomes


def test_migrations_and_ingestion_on_postgres(postgres_url, hub_config, landing):
    engine = create_hub_engine(postgres_url)
    assert engine.dialect.name == "postgresql"
    assert schema_revision(engine) == schema_head()
    path = write_file(landing / "billing/a.csv", HEADER + rows(50) + ";no key;;;;;;;;;;\n")
    outcome = ingest_file(engine, hub_config, path, landing)
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (51, 50, 1)
    again = ingest_file(engine, hub_config, path, landing)
    assert again.status is ExtractStatus.duplicate
    bad = write_file(landing / "billing/b.csv", HEADER.replace("ssn", "tax") + rows(5))
    with pytest.raises(ExtractRejected):
        ingest_file(engine, hub_config, bad, landing)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM source_record_versions")).scalar_one() == 50
        )
        statuses = conn.execute(sa.text("SELECT status FROM extracts ORDER BY id")).scalars().all()
    assert statuses == ["loaded", "duplicate", "rejected"]
    engine.dispose()


def test_concurrent_loads_of_the_same_content_ingest_it_once(postgres_url, hub_config, landing):
    engine = create_hub_engine(postgres_url)
    content = HEADER + rows(3000)
    paths = [write_file(landing / f"billing/copy{i}.csv", content) for i in range(2)]
    outcomes = load_at_once(engine, hub_config, landing, paths)
    assert sorted(o.status.value for o in outcomes) == ["duplicate", "loaded"]
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM source_record_versions")).scalar_one()
            == 3000
        )
        assert conn.execute(sa.text("SELECT count(*) FROM source_records")).scalar_one() == 3000
    engine.dispose()


def test_concurrent_loads_on_sqlite_queue_instead_of_failing(sqlite_url, hub_config, landing):
    """SQLite variant of RELIABILITY row 11: a second writer waits (no 'database is locked')."""
    engine = create_hub_engine(sqlite_url)
    paths = [
        write_file(landing / f"billing/part{i}.csv", HEADER + rows(2000, start=i * 2000))
        for i in range(3)
    ]
    load_at_once(engine, hub_config, landing, paths)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM source_records")).scalar_one() == 6000
    engine.dispose()


def test_cleansing_on_postgres(postgres_url, hub_config, landing):
    """COPY of cleansed records (booleans, dates, JSON) and the quality state on PostgreSQL."""
    from mdm_orchestration.cleansing import cleanse_pending, quality_state
    from mdm_orchestration.hub.status import hub_status

    write_file(
        landing / "loyalty/a.csv",
        "member_no,given_name,surname,birthday,email_address,mobile,street_address,town,state,"
        "postcode,last_update,consent_marketing\n"
        'L1,Zoë,O\'Neil,04/03/1985,zoe@example.com,(415) 555-2671,"1 Main St, Apt 4",Boston,MA,'
        "2134,01/01/2026 10:00,Y\n"
        "L2,,,,,,,,,,01/01/2026 10:00,N\n"
        "L3,Bo,Li,31/02/1985,bad@,12,,,,,01/01/2026 10:00,\n",
    )
    engine = create_hub_engine(postgres_url)
    try:
        ingest_file(engine, hub_config, landing / "loyalty/a.csv", landing)
        summary = cleanse_pending(engine, hub_config)
        assert (summary.cleansed, summary.quarantined) == (2, 1)
        assert cleanse_pending(engine, hub_config).versions == 0
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT source_key, given_name, family_name, birth_date, email_valid, "
                    "phone_valid, postcode, consents, quality_flags FROM cleansed_records "
                    "ORDER BY source_key"
                )
            ).all()
        first, third = rows
        assert first.given_name == "Zoë" and first.family_name == "O'Neil"
        assert str(first.birth_date) == "1985-03-04" and first.postcode == "02134"
        assert first.email_valid is True and first.consents == {"marketing_email": True}
        assert third.email_valid is False and third.phone_valid is False
        assert set(third.quality_flags) >= {"email_invalid", "phone_invalid", "birth_date_invalid"}
        status = hub_status(engine)
        assert (
            status["cleansed_records"] + status["cleanse_quarantined_rows"] == status["rows_loaded"]
        )
        assert quality_state(engine, hub_config)["loyalty"].quarantined == 1
    finally:
        engine.dispose()


def test_matching_on_postgres(postgres_url, hub_config, sample_silos, tmp_path):
    """Models (binary settings), clusters and the review queue (COPY) on PostgreSQL."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.matching import (
        cluster_state,
        load_models,
        needs_rematch,
        rebuild_clusters,
        record_label,
        train_models,
    )
    from tests.helpers import copy_landing

    landing = copy_landing(sample_silos, tmp_path / "silos")
    engine = create_hub_engine(postgres_url)
    try:
        ingest_all(engine, hub_config, landing)
        cleanse_pending(engine, hub_config)
        with engine.connect() as conn:
            assert needs_rematch(conn)
        assert train_models(engine).retrained == {"person": True, "organisation": True}
        with engine.connect() as conn:
            assert set(load_models(conn)) == {"person", "organisation"}
        result = rebuild_clusters(engine, hub_config)
        state = cluster_state(engine, hub_config)
        assert state.records == state.clustered == state.distinct_records > 1000
        assert not state.oversized
        with engine.connect() as conn:
            assert not needs_rematch(conn)
        pair = result.review.iloc[0]
        record_label(engine, pair["left_id"], pair["right_id"], "distinct", "test")
        with engine.connect() as conn:
            assert needs_rematch(conn)  # labels changed: retrain and recluster
        assert train_models(engine).retrained["person"] is True
    finally:
        engine.dispose()


def test_golden_records_on_postgres(postgres_url, hub_config, sample_silos, tmp_path, monkeypatch):
    """Golden records, history, cross-reference and outbox (COPY and upserts) on PostgreSQL: a
    failed consolidation writes nothing, a rerun changes nothing, a merge keeps the older id."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.matching import rebuild_clusters, record_override, train_models
    from mdm_orchestration.survivorship import (
        consolidate,
        golden_health,
        needs_consolidation,
        rebuild_households,
    )
    from tests.helpers import check_invariants, copy_landing

    landing = copy_landing(sample_silos, tmp_path / "silos")
    engine = create_hub_engine(postgres_url)
    try:
        ingest_all(engine, hub_config, landing)
        cleanse_pending(engine, hub_config)
        train_models(engine)
        rebuild_clusters(engine, hub_config)

        def boom(name: str) -> None:
            if name == "golden:before_commit":
                raise RuntimeError("crash before commit")

        monkeypatch.setattr("mdm_orchestration.survivorship.writing.crash_point", boom)
        with pytest.raises(RuntimeError):
            consolidate(engine, hub_config, "crashed")
        with engine.connect() as conn:
            for table in ("golden_records", "golden_history", "golden_xref", "golden_changes"):
                assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
            assert needs_consolidation(conn, hub_config)
        monkeypatch.undo()

        first = consolidate(engine, hub_config, "first")
        assert first.counts["created"] == first.golden_records > 500
        health = golden_health(engine)
        assert health.active_records == health.mapped_records == health.xref_rows
        assert health.lineage_gaps == 0 and health.goldens_without_members == 0
        assert rebuild_households(engine)["multi_person_households"] > 0
        check_invariants(engine)
        with engine.connect() as conn:
            assert not needs_consolidation(conn, hub_config)
        assert consolidate(engine, hub_config, "again").events == 0

        with engine.connect() as conn:
            (a, ga), (b, gb) = conn.execute(
                sa.text(
                    "SELECT record_id, golden_id FROM golden_xref WHERE golden_id IN (SELECT golden_id "
                    "FROM golden_records WHERE member_count = 1 AND party_type = 'person') "
                    "ORDER BY golden_id LIMIT 2"
                )
            ).all()
        record_override(engine, a, b, "must_link", "test")
        rebuild_clusters(engine, hub_config)
        merged = consolidate(engine, hub_config, "merge")
        assert merged.counts["merged"] == 1
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status, merged_into FROM golden_records WHERE golden_id = :g"),
                {"g": gb},
            ).one()
        assert tuple(status) == ("merged", ga)
        check_invariants(engine)
    finally:
        engine.dispose()


def test_syndication_and_erasure_on_postgres(postgres_url, sample_silos, tmp_path):
    """The hub on PostgreSQL delivering to a SQL subscriber on PostgreSQL (another database)
    and to files; then an erasure reaches both."""
    import shutil

    import yaml

    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.matching import rebuild_clusters, train_models
    from mdm_orchestration.survivorship import consolidate
    from mdm_orchestration.syndication import erase, syndicate
    from tests.conftest import CONFIG_DIR
    from tests.helpers import check_invariants, copy_landing

    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {
                "subscribers": {
                    "crm_sync": {
                        "transport": "sql",
                        "sql": {"url": postgres_url, "table": "golden_copy"},
                        "attributes": ["full_name", "email", "postcode"],
                        "batch_size": 250,
                    },
                    "files": {"transport": "file", "file": {"folder": str(tmp_path / "out")}},
                }
            }
        )
    )
    config = load_hub_config(config_dir)
    landing = copy_landing(sample_silos, tmp_path / "silos")
    hub_url = postgres_url  # the hub and the target table share the throwaway database
    engine = create_hub_engine(hub_url)
    try:
        ingest_all(engine, config, landing)
        cleanse_pending(engine, config)
        train_models(engine)
        rebuild_clusters(engine, config)
        consolidate(engine, config, "first")
        for name in ("crm_sync", "files"):
            assert syndicate(engine, config, name).pending == 0
        with engine.connect() as conn:
            active = dict(
                conn.execute(
                    sa.text("SELECT golden_id, version FROM golden_records WHERE status = 'active'")
                ).all()
            )
            copy = dict(conn.execute(sa.text("SELECT golden_id, version FROM golden_copy")).all())
            assert copy == active
            victim = conn.execute(
                sa.text(
                    "SELECT golden_id FROM golden_records WHERE status = 'active' AND member_count > 1 "
                    "AND party_type = 'person' ORDER BY golden_id LIMIT 1"
                )
            ).scalar_one()
        result = erase(engine, golden_id=victim, by="test")
        assert result.records > 1
        assert syndicate(engine, config, "crm_sync").delivered == 1
        assert syndicate(engine, config, "files").delivered == 1
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM golden_copy WHERE golden_id = :g"), {"g": victim}
                ).scalar_one()
                == 0
            )
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM golden_xref WHERE golden_id = :g"), {"g": victim}
                ).scalar_one()
                == 0
            )
        check_invariants(engine)
    finally:
        engine.dispose()


def test_incremental_reconsolidation_on_postgres_serialises_overlapping_runs(
    postgres_url, hub_config, sample_silos, tmp_path
):
    """Two reconsolidations started at once (as two overlapping drops would start them, were
    the Dagster pool not there): the advisory lock makes the second wait; both succeed, and the
    hub holds every record once."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.matching import match_incremental, rebuild_clusters, train_models
    from mdm_orchestration.survivorship import consolidate
    from tests.helpers import check_invariants, copy_landing

    landing = copy_landing(sample_silos, tmp_path / "silos")
    files = sorted(p for p in landing.rglob("*") if p.is_file())
    engine = create_hub_engine(postgres_url)
    try:
        train_models(engine)
        for path in files[:-2]:
            ingest_file(engine, hub_config, path, landing)
        cleanse_pending(engine, hub_config)
        rebuild_clusters(engine, hub_config)
        consolidate(engine, hub_config, "initial")
        for path in files[-2:]:
            ingest_file(engine, hub_config, path, landing)
        cleanse_pending(engine, hub_config)

        barrier = threading.Barrier(2)
        errors: list[BaseException] = []
        results: list[dict] = []

        def run() -> None:
            try:
                barrier.wait()
                match = match_incremental(engine, hub_config).counts
                golden = consolidate(engine, hub_config, "overlap").counts
                results.append({"match": match, "golden": golden})
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert errors == []
        arrived = sorted(r["match"]["arrived"] for r in results)
        assert arrived[0] == 0 and arrived[1] > 0  # one did the work, the other found none
        with engine.connect() as conn:
            records = conn.execute(sa.text("SELECT count(*) FROM source_records")).scalar_one()
            queue = conn.execute(sa.text("SELECT count(*) FROM consolidation_queue")).scalar_one()
        assert queue == 0 and records > 1000
        check_invariants(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_hub_password_given_to_the_cli_stays_out_of_the_dagster_instance(
    postgres_url, tmp_path, capsys, monkeypatch
):
    """The CLI's --hub reaches the runs through settings, never as resource config: Dagster
    stores resource config in each run's job snapshot, which the UI shows."""
    import dagster as dg

    from mdm_orchestration.cli import main
    from mdm_orchestration.sample_data import generate

    secret = "S3cretHubPassw0rd"  # the local server trusts loopback, so any password connects
    hub = postgres_url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in hub
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    generate(tmp_path / "silos", people=30, seed=5)
    assert main(["run", "--landing", str(tmp_path / "silos" / "landing"), "--hub", hub]) == 0
    capsys.readouterr()
    stored = []
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert {r.job_name for r in runs} >= {"ingest_job", "reconsolidate_job"}
        for run in runs:
            stored.append(repr(run))
            if run.job_snapshot_id:
                stored.append(repr(instance.get_job_snapshot(run.job_snapshot_id)))
            stored.extend(repr(e) for e in instance.all_logs(run.run_id))
    assert stored and not any(secret in text for text in stored)
