"""The landing sensor: new complete files in the landing zone become ingest runs."""

import time

import dagster as dg

from mdm_orchestration.ingestion import (
    LandingCursor,
    SkippedFile,
    complete_files,
    cursor_key,
    file_sha256,
    loaded_extract_id,
    record_skipped,
    register_landed_file,
    rejected_extract_id,
    scan_landing,
)
from mdm_orchestration.jobs import INGEST_JOB
from mdm_orchestration.partitions import landed_files
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.sensors.timing import FAST_SENSOR_INTERVAL


@dg.sensor(
    job_name=INGEST_JOB,
    minimum_interval_seconds=FAST_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches <landing root>/<source folder>/ for new complete extracts; adds one "
    "landed_files partition per file and requests an ingest run for it. Skips dotfiles, "
    ".tmp/.part names, files still being written, and bytes the hub has already loaded.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, hub: HubDatabase, landing: LandingZone
) -> dg.SensorResult:
    config = landing.hub_config()
    root = landing.root_path()
    cursor = LandingCursor.from_json(context.cursor)
    folders = [s.landing_folder for s in config.sources.values()]
    skipped: list[SkippedFile] = []
    files = scan_landing(root, folders, skipped)
    # Skipped files (links out of the root, bad names, files at the root) go to the hub, by
    # name, for `mdm status` and the ingestion asset's check; the log has their count only.
    if record_skipped(hub.engine, skipped) and skipped:
        context.log.warning(f"{len(skipped)} file(s) in the landing zone skipped; see `mdm status`")
    ready = complete_files(files, cursor, time.time_ns(), config.ingest.settle_seconds)

    requests: list[dg.RunRequest] = []
    already = 0
    rejected = 0
    for f in ready:
        sha = file_sha256(f.path)
        cursor.done[cursor_key(f.key)] = [f.size, f.mtime_ns, sha]
        folder = f.key.split("/", 1)[0]
        source = config.source_for_folder(folder)
        if source is not None and loaded_extract_id(hub.engine, source.name, sha) is not None:
            already += 1  # the same bytes are already in the hub: no run
            continue
        if source is not None and rejected_extract_id(hub.engine, source.name, sha) is not None:
            rejected += 1  # the same bytes were rejected before: recorded once, not retried
            continue
        source_name = source.name if source is not None else folder
        # The file's name stays in the hub: Dagster gets an opaque key (source and a prefix of
        # the content hash), which the ingestion asset resolves through the hub.
        key = register_landed_file(hub.engine, source_name, f.key, sha)
        requests.append(
            dg.RunRequest(
                # One run per file content (RELIABILITY rule 1: run_key = source:sha256): a
                # re-drop of the same bytes is not run twice, a corrected file (new bytes) is.
                run_key=f"{source_name}:{sha}",
                partition_key=key,
                tags={"mdm/source_folder": folder},
            )
        )
    new_keys = sorted(
        {r.partition_key for r in requests}
        - set(context.instance.get_dynamic_partitions(landed_files.name))
    )
    if not requests:
        reason = f"{len(files)} file(s) in the landing zone, none new and complete"
        if cursor.pending:
            reason += f"; {len(cursor.pending)} still being written"
        if already:
            reason += f"; {already} already ingested (same content)"
        if rejected:
            reason += f"; {rejected} rejected before (same content; drop a corrected file)"
        return dg.SensorResult(skip_reason=reason, cursor=cursor.to_json())
    context.log.info(
        f"{len(requests)} new extract(s); {len(cursor.pending)} still being written; "
        f"{already} already ingested; {rejected} rejected before"
    )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[landed_files.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor.to_json(),
    )
