"""Reconsolidation follows ingestion; a retrained model rebuilds.

A run-status sensor rather than declarative automation: the ingest runs are partitioned per
landed file while everything downstream is not, and one reconsolidation absorbs every extract
ingested so far, so "an ingest run succeeded" is exactly the trigger. Runs queue behind the
``hub_writer`` pool (one writer at a time); a reconsolidation that finds nothing new is a no-op.
"""

import dagster as dg

from mdm_orchestration.jobs import (
    MATCH_JOB,
    REBUILD_JOB,
    RECONSOLIDATE_JOB,
    ingest_job,
    rebuild_job,
    reconsolidate_job,
)
from mdm_orchestration.sensors.timing import FAST_SENSOR_INTERVAL

#: Jobs that match after training: the first match after a retrain is always a full one
#: (``needs_full_rematch``), so a retrain inside them needs no rebuild of its own.
MATCHING_JOBS = frozenset({MATCH_JOB, RECONSOLIDATE_JOB, REBUILD_JOB})


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_job],
    request_job=reconsolidate_job,
    minimum_interval_seconds=FAST_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each successful ingest run, requests a reconsolidate run (cleanse, "
    "match incrementally, re-survive what changed, write change events).",
)
def reconsolidation_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    run = context.dagster_run
    return dg.RunRequest(
        run_key=f"after-ingest:{run.run_id}",
        tags={"mdm/trigger": "ingest", "mdm/ingest_run": run.run_id},
    )


@dg.asset_sensor(
    asset_key=dg.AssetKey("match_model"),
    job=rebuild_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When match_model is materialised with a retrained model outside a matching "
    "run (retrain_job, or by hand), requests a full rebuild (every record re-paired and "
    "reclustered, golden ids kept stable).",
)
def retrain_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):  # type: ignore[no-untyped-def]
    materialization = asset_event.asset_materialization
    metadata = materialization.metadata if materialization else {}
    retrained = [k for k, v in metadata.items() if k.endswith("_retrained") and v.value is True]
    if not retrained:
        return dg.SkipReason("match_model materialised without retraining")
    run = context.instance.get_run_by_id(asset_event.run_id)
    if run is not None and run.job_name in MATCHING_JOBS:
        return dg.SkipReason(f"{run.job_name} retrained and re-matches in full in the same run")
    return dg.RunRequest(run_key=f"retrain:{asset_event.run_id}", tags={"mdm/trigger": "retrain"})
