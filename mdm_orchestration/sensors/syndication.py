"""The syndication sensor: a subscriber with pending golden-record changes gets a run."""

import time

import dagster as dg

from mdm_orchestration.jobs import SYNDICATE_JOB
from mdm_orchestration.partitions import subscribers
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.sensors.timing import FAST_SENSOR_INTERVAL
from mdm_orchestration.syndication import subscriber_status

#: A failing subscriber is tried again at most this often.
RETRY_SECONDS = 60


@dg.sensor(
    job_name=SYNDICATE_JOB,
    minimum_interval_seconds=FAST_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the outbox (golden_changes): each subscriber of subscriptions.yaml "
    "with undelivered events (or a snapshot still to take) gets a syndicate run for its "
    "partition. A failing subscriber is retried every minute; nothing is skipped.",
)
def syndication_sensor(
    context: dg.SensorEvaluationContext, hub: HubDatabase, landing: LandingZone
) -> dg.SensorResult:
    config = landing.hub_config()
    status = subscriber_status(hub.engine, config)
    known = set(context.instance.get_dynamic_partitions(subscribers.name))
    new = sorted(set(status) - known)
    requests = []
    for name, s in status.items():
        if s["pending"] == 0 and s["snapshot_done"]:
            continue
        key = f"{name}:{s['outbox_seq']}"
        if s["status"] == "failing":
            key += f":retry-{int(time.time() // RETRY_SECONDS)}"
        elif s["requeued"]:
            # Dead letters an operator queued again (`mdm syndicate dlq retry`): the outbox has
            # not moved, so without this the run key would repeat and the daemon launch nothing.
            key += f":requeued-{s['requeued']}-{int(time.time() // RETRY_SECONDS)}"
        requests.append(
            dg.RunRequest(run_key=key, partition_key=name, tags={"mdm/subscriber": name})
        )
    cursor = ",".join(f"{n}={s['cursor_seq']}" for n, s in sorted(status.items()))
    if not requests:
        return dg.SensorResult(
            skip_reason=f"{len(status)} subscriber(s), nothing pending",
            dynamic_partitions_requests=[subscribers.build_add_request(new)] if new else [],
            cursor=cursor,
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[subscribers.build_add_request(new)] if new else [],
        cursor=cursor,
    )
