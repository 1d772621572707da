"""The landing sensor: new complete files in the landing zone become ingest runs."""

import time
from pathlib import Path

import dagster as dg

from mdm_orchestration.config import HubConfig
from mdm_orchestration.ingestion import (
    ArchiveError,
    LandingCursor,
    SkippedFile,
    archive_landed,
    complete_files,
    file_sha256,
    loaded_extract_id,
    manifest_folders,
    purge_expired,
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
    ".tmp/.part names, files still being written (or, for complete_when: manifest sources, "
    "without their .manifest), and bytes the hub has already loaded (moved to the archive "
    "when ingest.archive is on). Deletes archived files past their retention.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, hub: HubDatabase, landing: LandingZone
) -> dg.SensorResult:
    config = landing.hub_config()
    root = landing.root_path()
    cursor = LandingCursor.from_json(context.cursor)
    folders = [s.landing_folder for s in config.sources.values()]
    skipped: list[SkippedFile] = []
    sources = config.sources.values()
    files = scan_landing(root, folders, skipped, manifest_folders=manifest_folders(sources))
    # Skipped files (links out of the root, bad names, files at the root) go to the hub, by
    # name, for `mdm status` and the ingestion asset's check; the log has their count only.
    if record_skipped(hub.engine, skipped) and skipped:
        context.log.warning(f"{len(skipped)} file(s) in the landing zone skipped; see `mdm status`")
    ready = complete_files(files, cursor, time.time_ns(), config.ingest.settle_seconds)

    requests: list[dg.RunRequest] = []
    already = 0
    rejected = 0
    archived = 0
    home = hub.home_path()
    for f in ready:
        sha = file_sha256(f.path)
        cursor.handled(f, sha)
        folder = f.key.split("/", 1)[0]
        source = config.source_for_folder(folder)
        if source is not None and loaded_extract_id(hub.engine, source.name, sha) is not None:
            already += 1  # the same bytes are already in the hub: no run
            # ... and with the archive on, this copy leaves the landing zone too (scrubbed of
            # any erased person: it may be an old extract dropped again).
            archived += _archive(context, hub, config, f.path, root, sha, home)
            continue
        if source is not None and rejected_extract_id(hub.engine, source.name, sha) is not None:
            rejected += 1  # the same bytes were rejected before: recorded once, not retried
            continue
        source_name = source.name if source is not None else folder
        # The file's name stays in the hub: Dagster gets an opaque key (source and a prefix of
        # the content hash), which the ingestion asset resolves through the hub.
        key = register_landed_file(hub.engine, source_name, f.key, sha)
        # One run per file content (RELIABILITY rule 1: run_key = source:sha256): a re-drop of
        # the same bytes is not run twice, a corrected file (new bytes) is. A manifest that
        # does not match gets a key of its own, so a corrected manifest is run again.
        run_key = f"{source_name}:{sha}"
        if f.manifest is not None and f.manifest != sha:
            run_key += f":manifest:{f.manifest[:16]}"
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=key,
                tags={"mdm/source_folder": folder},
            )
        )
    new_keys = sorted(
        {r.partition_key for r in requests}
        - set(context.instance.get_dynamic_partitions(landed_files.name))
    )
    purged = _purge(context, config, home)
    if not requests:
        reason = f"{len(files)} file(s) in the landing zone, none new and complete"
        if cursor.pending:
            reason += f"; {len(cursor.pending)} still being written"
        if already:
            reason += f"; {already} already ingested (same content)"
        if rejected:
            reason += f"; {rejected} rejected before (same content; drop a corrected file)"
        if archived:
            reason += f"; {archived} moved to the archive"
        if purged:
            reason += f"; {purged} archived file(s) past retention deleted"
        return dg.SensorResult(skip_reason=reason, cursor=cursor.to_json())
    context.log.info(
        f"{len(requests)} new extract(s); {len(cursor.pending)} still being written; "
        f"{already} already ingested ({archived} archived); {rejected} rejected before; "
        f"{purged} archived file(s) past retention deleted"
    )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[landed_files.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor.to_json(),
    )


def _archive(
    context: dg.SensorEvaluationContext,
    hub: HubDatabase,
    config: HubConfig,
    path: Path,
    root: Path,
    sha: str,
    home: Path,
) -> int:
    """1 when an already-ingested landed file was moved to the archive."""
    try:
        return int(archive_landed(hub.engine, config, path, root, sha, home=home))
    except ArchiveError as exc:
        context.log.warning(str(exc))
    except OSError as exc:  # no file name in the log: it may carry customer data
        context.log.warning(f"an ingested file could not be archived ({type(exc).__name__})")
    return 0


def _purge(context: dg.SensorEvaluationContext, config: HubConfig, home: Path) -> int:
    try:
        return purge_expired(config, home=home)
    except OSError as exc:
        context.log.warning(f"archived files past retention not deleted ({type(exc).__name__})")
        return 0
