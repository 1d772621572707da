"""RELIABILITY row 19 on Dagster's PostgreSQL storage (the shipped deploy/dagster.yaml): a
canary person through ingest and reconsolidation, then the failure paths the SQLite test does
not take: a forced exception in survivorship whose message carries the canary (it reaches
Dagster as its class and an error id, the message kept under MDM_HOME/errors), and a
subscriber that is down. Afterwards ``event_logs``, ``runs`` (with each run's config and
snapshot), ``run_tags``, every file under DAGSTER_HOME and the process's captured stdout and
stderr are searched for the canaries."""

from __future__ import annotations

import shutil
import socket
import stat
import uuid
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml

from mdm_orchestration.definitions import defs
from mdm_orchestration.partitions import landed_files, subscribers
from mdm_orchestration.resources import HubDatabase, LandingZone
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import write_file

HEADER = "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_canaries_stay_out_of_dagster_postgres_storage_on_failure_paths(
    postgres_url, tmp_path, monkeypatch, capfd
):
    tag = uuid.uuid4().hex[:10]
    email, name = f"zz-canary-{tag}@example.invalid", f"Canaryname-{tag}"
    canaries = [email, name, f"Canarystreet-{tag}"]
    landing = tmp_path / "landing"
    for source in ("billing", "crm", "erp", "ecommerce", "loyalty"):
        (landing / source).mkdir(parents=True)
    write_file(
        landing / "billing" / "canary.csv",
        HEADER
        + f"C{tag};{name};1 Canarystreet-{tag};;Town;IL;62701;217-555-0142;{email};1980-01-01;"
        "123-45-6789;2026-01-01 00:00:00\n"
        + "B2;Doe, Jane;2 Main St;;Town;IL;62701;217-555-0143;jane@example.com;1981-01-01;;"
        "2026-01-01 00:00:00\n",
    )
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {
                "subscribers": {
                    "down": {
                        "transport": "webhook",
                        "webhook": {"url": f"http://127.0.0.1:{closed_port()}/e"},
                        "max_attempts": 2,
                        "backoff_seconds": 0,
                    }
                }
            }
        )
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    resources = {
        "hub": HubDatabase(url=hub_url),
        "landing": LandingZone(root=str(landing), config_dir=str(config_dir)),
    }
    from mdm_orchestration.survivorship import writing

    planned = writing.plan

    def survivorship_fails(conn, config, **kwargs):  # type: ignore[no-untyped-def]
        planned(conn, config, **kwargs)
        raise ValueError(f"cannot survive {name} <{email}>")  # a value in an exception's text

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(landed_files.name, ["billing/canary.csv"])
        instance.add_dynamic_partitions(subscribers.name, ["down"])
        assert (
            defs.resolve_job_def("ingest_job")
            .execute_in_process(
                partition_key="billing/canary.csv", instance=instance, resources=resources
            )
            .success
        )
        reconsolidate = defs.resolve_job_def("reconsolidate_job")
        monkeypatch.setattr(writing, "plan", survivorship_fails)
        failed = reconsolidate.execute_in_process(
            instance=instance, resources=resources, raise_on_error=False
        )
        assert not failed.success
        monkeypatch.setattr(writing, "plan", planned)
        assert reconsolidate.execute_in_process(instance=instance, resources=resources).success
        down = defs.resolve_job_def("syndicate_job").execute_in_process(
            partition_key="down", instance=instance, resources=resources, raise_on_error=False
        )
        assert not down.success
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            stored = {
                # Each value whole (a Row's repr shortens long strings).
                table: "\n".join(
                    str(v) for r in conn.execute(sa.text(f"SELECT * FROM {table}")).all() for v in r
                )
                for table in ("event_logs", "runs", "run_tags", "snapshots")
            }
    finally:
        engine.dispose()
    # The failure is recorded, by class and error id ...
    assert "consolidate_golden_records failed with ValueError (error " in stored["event_logs"]
    leaked = sorted({(t, c) for t, text in stored.items() for c in canaries if c in text})
    assert leaked == []  # ... without the values in it
    files = [
        (p.name, c)
        for p in Path(home).rglob("*")
        if p.is_file()
        for c in canaries
        if c.encode() in p.read_bytes()
    ]
    assert files == []
    out, err = capfd.readouterr()  # Dagster's console log of the runs, this process's stdio
    assert [c for c in canaries if c in out + err] == []
    # ... and its message is kept beside the hub, for the operator, private.
    (error,) = (tmp_path / "mdm_home" / "errors").iterdir()
    assert error.stem in stored["event_logs"] and email in error.read_text(encoding="utf-8")
    assert stat.S_IMODE(error.stat().st_mode) == 0o600
    assert stat.S_IMODE(error.parent.stat().st_mode) == 0o700
    hub = sa.create_engine(hub_url)
    try:
        with hub.connect() as conn:
            golden = conn.execute(sa.text("SELECT attributes FROM golden_records")).scalars().all()
    finally:
        hub.dispose()
    assert any(name in str(a) for a in golden)  # the hub itself holds the canary person
