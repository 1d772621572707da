"""No customer value reaches Dagster's storage: event logs, run records, metadata, compute logs.

Canary values are seeded into good rows, bad rows and a rejected file; afterwards every byte that
Dagster wrote under its home folder is searched for them (RELIABILITY row 19).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg

from mdm_orchestration.assets.cleansing import cleansed_records
from mdm_orchestration.assets.ingestion import source_extracts
from mdm_orchestration.assets.mastering import consolidate_golden_records, households
from mdm_orchestration.assets.matching import match_clusters, match_model, training_labels
from mdm_orchestration.partitions import landed_files
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.sensors import landing_sensor
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file

HEADER = "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"


def test_canary_values_never_reach_dagster_storage(tmp_path, sqlite_url, landing):
    tag = uuid.uuid4().hex[:10]
    email = f"zz-canary-{tag}@example.invalid"
    name = f"Canaryname-{tag}"
    canaries = [email, name, f"Canarystreet-{tag}", f"Canarystamp-{tag}", f"CanaryKey-{tag}"]
    rows = [
        f"CanaryKey-{tag};{name};1 Canarystreet-{tag};;Town;IL;62701;217-555-0100;{email};1980-01-01;123-45-6789;2026-01-01 00:00:00\n",
        f"B2;{name};x;;Town;IL;62701;1;{email};1980-01-01;1;Canarystamp-{tag}\n",  # bad updated-at
        f";{name};x;;Town;IL;62701;1;{email};1980-01-01;1;2026-01-01 00:00:00\n",  # empty key
        f"B3;{name};x;;Town;IL;62701;1;{email};1980-01-01;1;2026-01-01 00:00:00;{email}\n",  # extra field
        f"B4;{name * 400};x;;Town;IL;62701;1;{email};1980-01-01;1;2026-01-01 00:00:00\n",  # oversized
    ]
    write_file(landing / "billing/canary.csv", HEADER + "".join(rows))
    write_file(landing / "billing/drift.csv", HEADER.replace("full_name", f"{name}") + rows[0])
    write_file(
        landing / "billing/latin1.csv",
        (HEADER + rows[0]).encode("utf-8") + f"{name}\xe9".encode("latin-1") + b"\n",
    )

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    resources = {
        "hub": HubDatabase(url=sqlite_url),
        "landing": LandingZone(root=str(landing), config_dir=str(CONFIG_DIR)),
    }
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            result = landing_sensor(context)
        keys = ["billing/canary.csv", "billing/drift.csv", "billing/latin1.csv"]
        instance.add_dynamic_partitions(landed_files.name, keys)
        outcomes = {
            key: dg.materialize(
                [source_extracts],
                partition_key=key,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            ).success
            for key in keys
        }
        assert outcomes == {
            "billing/canary.csv": True,
            "billing/drift.csv": False,
            "billing/latin1.csv": False,
        }
        # The canary goes on through cleansing, matching and into a golden record.
        downstream = dg.materialize(
            [
                cleansed_records,
                training_labels,
                match_model,
                match_clusters,
                consolidate_golden_records,
                households,
            ],
            instance=instance,
            resources=resources,
        )
        assert downstream.success
        failures = [
            entry
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event is not None and entry.dagster_event.is_step_failure
        ]
        assert len(failures) == 2
        logged = "\n".join(
            str(entry.message) + str(entry.dagster_event)
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
        )
        cursor = result.cursor or ""
        for canary in canaries:
            assert canary not in logged, canary
            assert canary not in cursor
            for run in instance.get_runs():
                assert canary not in str(run.tags)
    leaked = []
    for path in Path(dagster_home).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaked += [(path.name, c) for c in canaries if c.encode() in data]
    assert leaked == []
    # ... while the hub itself does hold the canary person's golden record.
    import sqlalchemy as sa

    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        golden = conn.execute(sa.text("SELECT attributes FROM golden_records")).scalars().all()
    engine.dispose()
    assert any(name in str(a) for a in golden)


def test_a_landed_file_name_never_reaches_dagster_storage(tmp_path, sqlite_url, landing):
    """Defect 9: a file named after a customer became a partition key, run tags and metadata.
    The sensor and ``mdm run`` hand Dagster an opaque key; the name stays in the hub."""
    import sqlalchemy as sa

    from mdm_orchestration.inprocess import Target, run_landing

    tag = uuid.uuid4().hex[:8]
    stem = f"john.doe{tag}@example.com_SSN-123-45-6789"
    row = "B1;Doe, John;x;;Town;IL;62701;1;j@example.com;1980-01-01;1;2026-01-01 00:00:00\n"
    write_file(landing / f"billing/{stem}.csv", HEADER + row)
    write_file(landing / f"billing/{stem}_drift.csv", HEADER.replace("full_name", "n") + row)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    resources = {
        "hub": HubDatabase(url=sqlite_url),
        "landing": LandingZone(root=str(landing), config_dir=str(CONFIG_DIR)),
    }
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        cursor = None
        for _ in range(2):  # seen once, then unchanged: complete
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=resources
            ) as context:
                result = landing_sensor(context)
            cursor = result.cursor
        keys = [r.partition_key for r in result.run_requests]
        assert len(keys) == 2 and all(k.startswith("billing:") for k in keys)
        for request in result.run_requests:
            assert stem not in request.run_key and stem not in str(request.tags)
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        outcomes = [
            dg.materialize(
                [source_extracts],
                partition_key=key,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            ).success
            for key in keys
        ]
        assert sorted(outcomes) == [False, True]  # the drifted one is rejected, by key
        # mdm run's path: new content under a customer's name, the same way.
        write_file(landing / f"billing/{stem}_2.csv", HEADER + row.replace("B1", "B2"))
        target = Target(hub=sqlite_url, config=str(CONFIG_DIR), landing=landing, home=tmp_path)
        summary = run_landing(instance, target, quiet=True)
        assert summary["ingested"] == 1
        logged = "\n".join(
            str(entry.message) + str(entry.dagster_event)
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
        )
        assert "billing:" in logged
        at = logged.find(stem)
        assert at < 0, logged[max(0, at - 600) : at + 100]
        assert stem not in (result.cursor or "")
        assert all(stem not in str(run.tags) for run in instance.get_runs())
        assert all(stem not in k for k in instance.get_dynamic_partitions(landed_files.name))
    leaked = [
        p.name for p in dagster_home.rglob("*") if p.is_file() and stem.encode() in p.read_bytes()
    ]
    assert leaked == []
    # The hub keeps the names: in its ledger, and behind each key.
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT file_name FROM extracts")).scalars().all()
        mapped = conn.execute(sa.text("SELECT file_name FROM landed_file_keys")).scalars().all()
    engine.dispose()
    assert sum(stem in n for n in names) == 3 and sum(stem in n for n in mapped) == 3
