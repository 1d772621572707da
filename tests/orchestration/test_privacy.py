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
