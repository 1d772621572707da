"""Sensor evaluation over a real folder, then the ingest job for what it requested."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.assets.ingestion import source_extracts
from mdm_orchestration.partitions import landed_files
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.sensors import landing_sensor
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file

BILLING = (
    "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"
)


def row(key: str, name: str = "Doe, Jane") -> str:
    return f"{key};{name};1 Main St;;Springfield;IL;62701;217-555-0100;j@example.com;1980-02-03;123-45-6789;2026-01-01 10:00:00\n"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The shipped configuration, with a long settle time so that only stability counts."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    body = yaml.safe_load((folder / "sources.yaml").read_text())
    body["ingest"]["settle_seconds"] = 3600
    (folder / "sources.yaml").write_text(yaml.safe_dump(body))
    return folder


@pytest.fixture
def resources(sqlite_url: str, landing: Path, config_dir: Path) -> dict:
    return {
        "hub": HubDatabase(url=sqlite_url),
        "landing": LandingZone(root=str(landing), config_dir=str(config_dir)),
    }


def tick(instance: dg.DagsterInstance, resources: dict, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = landing_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def run_requests(instance, resources, result: dg.SensorResult) -> list[dg.ExecuteInProcessResult]:
    out = []
    for request in result.run_requests or []:
        out.append(
            dg.materialize(
                [source_extracts],
                partition_key=request.partition_key,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
        )
    return out


def files_of(result: dg.SensorResult, url: str) -> list[str]:
    """The landed files behind the (opaque) partition keys the sensor requested runs for."""
    from mdm_orchestration.ingestion import is_opaque_key, landed_file_for_key

    engine = sa.create_engine(url)
    try:
        keys = [r.partition_key for r in result.run_requests or []]
        assert all(is_opaque_key(k) for k in keys), keys
        return [landed_file_for_key(engine, k) for k in keys]
    finally:
        engine.dispose()


def test_new_file_same_file_growing_file_and_dotfiles(resources, landing, sqlite_url):
    with dg.instance_for_test() as instance:
        write_file(landing / "billing/a.csv", BILLING + row("B1"))
        write_file(landing / "billing/.hidden.csv", BILLING + row("B9"))
        write_file(landing / "billing/b.csv.tmp", BILLING + row("B8"))
        first = tick(instance, resources, None)
        assert not first.run_requests  # seen once: could still be being written
        second = tick(instance, resources, first.cursor)
        assert files_of(second, sqlite_url) == ["billing/a.csv"]
        [key] = [r.partition_key for r in second.run_requests]
        assert key.startswith("billing:") and "a.csv" not in key  # opaque: source + hash
        assert second.run_requests[0].run_key.startswith("billing:")  # source:sha256
        assert instance.get_dynamic_partitions(landed_files.name) == [key]
        [result] = run_requests(instance, resources, second)
        assert result.success

        # The same file, unchanged: nothing more. Touched with the same bytes: nothing more.
        third = tick(instance, resources, second.cursor)
        assert not third.run_requests
        (landing / "billing/a.csv").touch()
        cursor = third.cursor
        for _ in range(2):
            res = tick(instance, resources, cursor)
            cursor = res.cursor
            assert not res.run_requests

        # The same bytes under a new name: the hub already holds them, no run.
        shutil.copy(landing / "billing/a.csv", landing / "billing/a_copy.csv")
        for _ in range(2):
            res = tick(instance, resources, cursor)
            cursor = res.cursor
            assert not res.run_requests

        # A growing file is not requested until it stops changing.
        growing = write_file(landing / "billing/g.csv", BILLING + row("B2"))
        res = tick(instance, resources, cursor)
        assert not res.run_requests
        with growing.open("a") as fh:
            fh.write(row("B3"))
        res = tick(instance, resources, res.cursor)
        assert not res.run_requests
        res = tick(instance, resources, res.cursor)
        assert files_of(res, sqlite_url) == ["billing/g.csv"]
        [result] = run_requests(instance, resources, res)
        assert result.success
        mat = result.asset_materializations_for_node("source_extracts")[0]
        assert mat.metadata["rows_loaded"].value == 2
        # The step's pace (counts and seconds only) is in its metadata and its log line.
        seconds = mat.metadata["seconds"].value
        assert seconds > 0
        assert mat.metadata["rows_per_second"].value == pytest.approx(2 / seconds, rel=0.01)
        logs = [r.user_message or "" for r in instance.all_logs(result.run_id)]
        assert any("rows loaded" in m and " s (" in m and "rows/s)" in m for m in logs)

        # A corrected file under an existing name is a new run key.
        write_file(landing / "billing/a.csv", BILLING + row("B1", "Roe, Jane"))
        res = tick(instance, resources, res.cursor)
        res = tick(instance, resources, res.cursor)
        assert files_of(res, sqlite_url) == ["billing/a.csv"]
        assert res.run_requests[0].run_key != second.run_requests[0].run_key
        assert res.run_requests[0].partition_key != key  # new content, new key

    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM source_records")).scalar_one() == 3
    engine.dispose()


def test_asset_metadata_checks_and_rejected_file_fails_the_run(resources, landing, sqlite_url):
    write_file(landing / "billing/good.csv", BILLING + row("B1") + ";no key;;;;;;;;;;\n")
    write_file(landing / "billing/bad.csv", BILLING.replace("full_name", "name") + row("B2"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landed_files.name, ["billing/good.csv", "billing/bad.csv"])
        ok = dg.materialize(
            [source_extracts],
            partition_key="billing/good.csv",
            instance=instance,
            resources=resources,
        )
        assert ok.success
        meta = ok.asset_materializations_for_node("source_extracts")[0].metadata
        assert meta["rows_landed"].value == 2
        assert meta["rows_loaded"].value == 1
        assert meta["rows_quarantined"].value == 1
        assert meta["quarantine_by_reason"].value == {"missing_key": 1}
        checks = {c.check_name: c for c in ok.get_asset_check_evaluations()}
        assert checks["every_row_accounted_for"].passed
        assert checks["no_unmapped_columns"].passed
        assert not checks["ingest_quarantine_rate_below_threshold"].passed  # 50% quarantined
        assert (
            checks["ingest_quarantine_rate_below_threshold"].severity == dg.AssetCheckSeverity.WARN
        )

        bad = dg.materialize(
            [source_extracts],
            partition_key="billing/bad.csv",
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        assert not bad.success
        failure = next(e for e in bad.all_events if e.is_step_failure)
        assert "bad.csv" in failure.step_failure_data.user_failure_data.description
        assert "full_name" in failure.step_failure_data.user_failure_data.description
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT file_name, status FROM extracts ORDER BY id")).all()
    engine.dispose()
    assert statuses == [("billing/good.csv", "loaded"), ("billing/bad.csv", "rejected")]
