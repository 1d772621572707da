"""Ingestion: one landed file (a partition of ``landed_files``) into the hub."""

from pathlib import Path

import dagster as dg

from mdm_orchestration.assets.errors import customer_safe_errors
from mdm_orchestration.assets.pace import stopwatch
from mdm_orchestration.config import HubConfig
from mdm_orchestration.ingestion import (
    ArchiveError,
    AwaitingManifest,
    ExtractRejected,
    IngestOutcome,
    ManifestMismatch,
    SkippedFile,
    archive_landed,
    check_manifest,
    ingest_file,
    is_opaque_key,
    landed_file_for_key,
    manifest_folders,
    purge_expired,
    record_skipped,
    rows_accounted,
    scan_landing,
    skipped_counts,
)
from mdm_orchestration.partitions import landed_files
from mdm_orchestration.resources import HubDatabase, LandingZone

ROWS_ACCOUNTED = "every_row_accounted_for"
NO_UNMAPPED = "no_unmapped_columns"
QUARANTINE_RATE = "ingest_quarantine_rate_below_threshold"
NO_SKIPPED = "no_skipped_landing_files"

#: Above this share of quarantined rows an extract is flagged (a warning: the rows are kept).
MAX_INGEST_QUARANTINE_RATE = 0.05


def _accounted_for(hub: HubDatabase, outcome: IngestOutcome) -> dg.AssetCheckResult:
    """Recount the stored rows of the extract: versions + quarantine rows == data rows landed."""
    if outcome.extract_id is None or outcome.status.value != "loaded":
        return dg.AssetCheckResult(
            check_name=ROWS_ACCOUNTED, passed=True, metadata={"status": outcome.status.value}
        )
    counted = rows_accounted(hub.engine, outcome.extract_id)
    return dg.AssetCheckResult(
        check_name=ROWS_ACCOUNTED,
        passed=counted.balanced,
        metadata={
            "rows_landed": counted.rows_landed,
            "rows_loaded": counted.rows_loaded,
            "rows_quarantined": counted.rows_quarantined,
        },
    )


def _warnings(outcome: IngestOutcome, rate: float) -> list[dg.AssetCheckResult]:
    """Schema drift and the quarantine rate: warnings, the data is loaded."""
    return [
        dg.AssetCheckResult(
            check_name=NO_UNMAPPED,
            passed=not outcome.unmapped_columns,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unmapped_columns": dg.MetadataValue.json(outcome.unmapped_columns)},
        ),
        dg.AssetCheckResult(
            check_name=QUARANTINE_RATE,
            passed=rate <= MAX_INGEST_QUARANTINE_RATE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"quarantine_rate": round(rate, 4)},
        ),
    ]


def _without_name(message: str, relative: str | None) -> str:
    """``message`` with the file's relative path and its base name replaced by ``<file>``."""
    if not relative:
        return message
    for name in (relative, relative.rsplit("/", 1)[-1]):
        message = message.replace(name, "<file>")
    return message


def _skipped_landing_files(hub: HubDatabase, landing: LandingZone) -> dg.AssetCheckResult:
    """Rescan the landing zone and warn when it holds files the scan skips. Counts and reasons
    only: the names (which may carry customer data) stay in the hub, for `mdm status`."""
    config = landing.hub_config()
    skipped: list[SkippedFile] = []
    scan_landing(
        landing.root_path(),
        [s.landing_folder for s in config.sources.values()],
        skipped,
        manifest_folders=manifest_folders(config.sources.values()),
    )
    record_skipped(hub.engine, skipped)
    by_reason = skipped_counts(hub.engine)
    return dg.AssetCheckResult(
        check_name=NO_SKIPPED,
        passed=not by_reason,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "skipped_files": sum(by_reason.values()),
            "skipped_by_reason": dg.MetadataValue.json(by_reason),
        },
    )


def _archive(
    context: dg.AssetExecutionContext,
    hub: HubDatabase,
    config: HubConfig,
    outcome: IngestOutcome,
    path: Path,
    root: Path,
) -> tuple[bool, int]:
    """The ingested file into the archive (with ``ingest.archive`` on), then the archive's
    expired files deleted: (archived, files purged). A failure here is a warning (the data is
    loaded; the sensor archives the file when it sees it again), never with a file name."""
    archived, purged = False, 0
    home = hub.home_path()
    try:
        if outcome.status.value in ("loaded", "duplicate"):
            archived = archive_landed(
                hub.engine, config, path, root, outcome.content_hash, home=home
            )
        purged = purge_expired(config, home=home)
    except ArchiveError as exc:
        context.log.warning(str(exc))
    except OSError as exc:
        context.log.warning(f"the archive step failed ({type(exc).__name__})")
    return archived, purged


@dg.asset(
    partitions_def=landed_files,
    group_name="ingestion",
    kinds={"python", "sql"},
    owners=["team:mdm"],
    tags={"stage": "ingestion"},
    pool="hub_writer",
    check_specs=[
        dg.AssetCheckSpec(
            ROWS_ACCOUNTED,
            asset="source_extracts",
            description="Every data row is a source-record version or a quarantine row.",
        ),
        dg.AssetCheckSpec(
            NO_UNMAPPED,
            asset="source_extracts",
            description="Schema drift: the extract has no column that the source's mapping "
            "does not know (a warning; the data is loaded and extra columns are kept raw).",
        ),
        dg.AssetCheckSpec(
            QUARANTINE_RATE,
            asset="source_extracts",
            description=f"At most {MAX_INGEST_QUARANTINE_RATE:.0%} of the extract's rows are "
            "quarantined at ingest.",
        ),
        dg.AssetCheckSpec(
            NO_SKIPPED,
            asset="source_extracts",
            description="The landing zone holds no file the scan skips (a link out of the "
            "landing root or to a folder, a name with control characters, a file at the "
            "landing root or in an unknown folder). A warning: `mdm status` names them.",
        ),
    ],
)
@customer_safe_errors
def source_extracts(
    context: dg.AssetExecutionContext, hub: HubDatabase, landing: LandingZone
) -> dg.MaterializeResult:
    """Raw rows of one landed extract, loaded verbatim with row numbers and a content hash.

    The whole file loads in one transaction: every data row becomes a source-record version or a
    quarantine row with its reason. The same bytes landing again are recorded as a duplicate and
    skipped. A file that cannot be read is recorded as rejected and the run fails. A file whose
    ``.manifest`` declares another sha256 is rejected the same way, before anything is read; a
    file of a ``complete_when: manifest`` source without its manifest fails the run unrecorded
    (it is not complete). With ``ingest.archive`` on, a loaded or duplicate file then moves to
    the archive, and archived files past their retention are deleted.
    """
    root = landing.root_path()
    key = context.partition_key
    # The sensor and `mdm run` use opaque keys (<source>:<sha256 prefix>) whose file the hub
    # knows; a key that is a path (<folder>/<file>, a manual launch) is read as that path.
    relative = landed_file_for_key(hub.engine, key)
    if relative is None and is_opaque_key(key):
        raise dg.Failure(
            description=f"Partition {key} is not a landed file the hub registered",
            metadata={"reason_code": "unknown_partition"},
        )
    opaque = relative is not None
    config = landing.hub_config()
    path = root / (relative or key)
    try:
        check_manifest(hub.engine, config, path, root, run_id=context.run.run_id)
    except AwaitingManifest as exc:
        raise dg.Failure(
            description=f"Extract {key} is not complete: "
            + (_without_name(str(exc), relative) if opaque else str(exc)),
            metadata={"reason_code": "awaiting_manifest", "partition": key},
        ) from None
    except ManifestMismatch as exc:
        raise dg.Failure(
            description=f"Extract {key} rejected: "
            + (_without_name(exc.message, relative) if opaque else exc.message),
            metadata={"reason_code": exc.code, "partition": key},
        ) from None
    try:
        with stopwatch() as watch:
            outcome = ingest_file(hub.engine, config, path, root, run_id=context.run.run_id)
    except ExtractRejected as exc:
        # The reason names file, row and field; never a value. Under an opaque key the file's
        # name (in the hub's ledger) is replaced by the key.
        # The exception is not chained then either: Dagster would store its message.
        failure = dg.Failure(
            description=f"Extract {key} rejected: "
            + (_without_name(exc.message, relative) if opaque else exc.message),
            metadata={"reason_code": exc.code, "partition": key},
        )
        if opaque:
            raise failure from None
        raise failure from exc

    archived, purged = _archive(context, hub, config, outcome, path, root)
    rate = outcome.rows_quarantined / outcome.rows_landed if outcome.rows_landed else 0.0
    context.log.info(
        f"{key}: {outcome.status.value}, {outcome.rows_loaded} rows loaded, "
        f"{outcome.rows_quarantined} quarantined " + watch.said(outcome.rows_landed, "rows")
    )
    return dg.MaterializeResult(
        metadata={
            "source": outcome.source,
            "status": outcome.status.value,
            "extract_id": outcome.extract_id,
            "content_sha256": outcome.content_hash,
            "rows_landed": outcome.rows_landed,
            "rows_loaded": outcome.rows_loaded,
            "rows_quarantined": outcome.rows_quarantined,
            "quarantine_rate": round(rate, 4),
            **watch.metadata(outcome.rows_landed, "rows"),
            "quarantine_by_reason": dg.MetadataValue.json(dict(outcome.quarantine_reasons)),
            "unmapped_columns": dg.MetadataValue.json(outcome.unmapped_columns),
            "duplicate_of_extract": outcome.duplicate_of,
            "archived": archived,
            "archived_files_purged": purged,
        },
        check_results=[
            _accounted_for(hub, outcome),
            *_warnings(outcome, rate),
            _skipped_landing_files(hub, landing),
        ],
    )
