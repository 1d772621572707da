"""Reading landed extracts and loading them into the hub (no Dagster inside).

The face of the stage: callers import from here, never from its modules.
"""

from mdm_orchestration.ingestion.api_records import (
    ApiWriteResult,
    IdempotencyConflict,
    RecordRefused,
    pending_api_writes,
    write_api_record,
)
from mdm_orchestration.ingestion.archive import (
    ArchiveError,
    ScrubbedFile,
    archive_landed,
    archive_root,
    purge_expired,
    scrub_erased,
)
from mdm_orchestration.ingestion.keys import (
    is_opaque_key,
    landed_file_for_key,
    partition_key,
    register_landed_file,
)
from mdm_orchestration.ingestion.landing import (
    AwaitingManifest,
    LandedFile,
    LandingCursor,
    ManifestMismatch,
    SkippedFile,
    complete_files,
    cursor_key,
    manifest_folders,
    scan_landing,
    verify_manifest,
)
from mdm_orchestration.ingestion.ledger import (
    IngestOutcome,
    RowsAccounted,
    check_manifest,
    loaded_extract_id,
    record_rejection,
    rejected_extract_id,
    rows_accounted,
)
from mdm_orchestration.ingestion.loader import LandingPathError, file_sha256, ingest_file
from mdm_orchestration.ingestion.readers import ExtractRejected, open_extract
from mdm_orchestration.ingestion.rows import parse_timestamps
from mdm_orchestration.ingestion.skips import record_skipped, skipped_counts

__all__ = [
    "ApiWriteResult",
    "IdempotencyConflict",
    "RecordRefused",
    "pending_api_writes",
    "write_api_record",
    "ExtractRejected",
    "IngestOutcome",
    "LandedFile",
    "LandingCursor",
    "LandingPathError",
    "ManifestMismatch",
    "ArchiveError",
    "AwaitingManifest",
    "RowsAccounted",
    "ScrubbedFile",
    "SkippedFile",
    "archive_landed",
    "archive_root",
    "check_manifest",
    "complete_files",
    "cursor_key",
    "file_sha256",
    "ingest_file",
    "is_opaque_key",
    "landed_file_for_key",
    "loaded_extract_id",
    "manifest_folders",
    "open_extract",
    "parse_timestamps",
    "partition_key",
    "purge_expired",
    "record_rejection",
    "record_skipped",
    "register_landed_file",
    "rejected_extract_id",
    "rows_accounted",
    "scan_landing",
    "scrub_erased",
    "skipped_counts",
    "verify_manifest",
]
