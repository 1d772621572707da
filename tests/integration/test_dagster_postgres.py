"""Production storage: the shipped deploy/dagster.yaml on the local PostgreSQL holds the runs,
event logs and asset materialisations of the pipeline."""

from __future__ import annotations

import shutil

import dagster as dg
import sqlalchemy as sa

from mdm_orchestration.definitions import defs
from mdm_orchestration.partitions import landed_files
from mdm_orchestration.resources import HubDatabase, LandingZone
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import copy_landing


def test_the_pipeline_runs_with_dagster_storage_on_postgres(
    postgres_url, sample_silos, tmp_path, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url)
    landing = copy_landing(sample_silos, tmp_path / "landing")
    resources = {
        "hub": HubDatabase(url=f"sqlite:///{tmp_path / 'hub.db'}"),
        "landing": LandingZone(root=str(landing), config_dir=str(CONFIG_DIR)),
    }
    keys = [f"{p.parent.name}/{p.name}" for p in sorted(landing.rglob("*")) if p.is_file()][:2]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(landed_files.name, keys)
        ingest = defs.resolve_job_def("ingest_job")
        for key in keys:
            assert ingest.execute_in_process(
                partition_key=key, instance=instance, resources=resources
            ).success
        result = defs.resolve_job_def("reconsolidate_job").execute_in_process(
            instance=instance, resources=resources
        )
        assert result.success
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == ["ingest_job", "ingest_job", "reconsolidate_job"]
        latest = instance.get_latest_materialization_event(dg.AssetKey("golden_records"))
        assert latest is not None and latest.run_id == result.run_id
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
        events = conn.execute(sa.text("SELECT count(*) FROM event_logs")).scalar_one()
    engine.dispose()
    assert stored == 3 and events > 50
