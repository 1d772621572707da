"""The API-writes sensor: records written through the service become a reconsolidation.

``mdm serve`` never talks to Dagster: it stores each write in the hub as a one-row extract.
This sensor sees the writes not cleansed yet that arrived after its cursor (the newest write's
extract id it requested a run for) and requests one ``reconsolidate_job`` run for all of them,
the job the landing path reaches through ``reconsolidation_sensor``. No file is involved. Runs
queue behind the ``hub_writer`` pool; a run that finds them already cleansed is a no-op.
"""

import dagster as dg

from mdm_orchestration.ingestion import pending_api_writes
from mdm_orchestration.jobs import RECONSOLIDATE_JOB
from mdm_orchestration.resources import HubDatabase
from mdm_orchestration.sensors.timing import FAST_SENSOR_INTERVAL


@dg.sensor(
    job_name=RECONSOLIDATE_JOB,
    minimum_interval_seconds=FAST_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the records written through the service (POST "
    "/v1/sources/{source}/records): new writes not cleansed yet get one reconsolidate run "
    "(cleanse, match incrementally, re-survive, change events).",
)
def api_writes_sensor(context: dg.SensorEvaluationContext, hub: HubDatabase) -> dg.SensorResult:
    after = int(context.cursor) if context.cursor and context.cursor.isdigit() else 0
    pending, newest = pending_api_writes(hub.engine, after)
    if not pending:
        return dg.SensorResult(skip_reason="no new API writes", cursor=str(after))
    context.log.info(f"{pending} new API write(s)")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"api-writes:{newest}",
                tags={"mdm/trigger": "api_writes"},
            )
        ],
        cursor=str(newest),
    )
