"""Reading landed extracts and loading them into the hub (no Dagster inside)."""

from mdm_orchestration.ingestion.landing import (
    LandedFile,
    LandingCursor,
    complete_files,
    scan_landing,
)
from mdm_orchestration.ingestion.loader import (
    IngestOutcome,
    LandingPathError,
    file_sha256,
    ingest_file,
    loaded_extract_id,
)
from mdm_orchestration.ingestion.readers import ExtractRejected

__all__ = [
    "ExtractRejected",
    "IngestOutcome",
    "LandedFile",
    "LandingCursor",
    "LandingPathError",
    "complete_files",
    "file_sha256",
    "ingest_file",
    "loaded_extract_id",
    "scan_landing",
]
