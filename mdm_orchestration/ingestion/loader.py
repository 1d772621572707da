"""Loading one landed file into the hub, in one transaction.

Every data row ends in exactly one place: a source-record version or a quarantine row with its
reason. The same bytes are ingested once per source (the ledger's unique index decides, also
against a concurrent run). A file that cannot be read is recorded as rejected and nothing of it
stays behind; a fixed re-drop is then ingested normally.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from mdm_orchestration.config import HubConfig, SourceConfig
from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.ingestion.ledger import (
    IngestOutcome,
    finish_extract,
    loaded_extract_id,
    record_attempt,
    start_extract,
)
from mdm_orchestration.ingestion.readers import (
    CsvReader,
    ExtractRejected,
    RowBatches,
    file_format_mismatch,
    guarded_rows,
    open_extract,
)
from mdm_orchestration.ingestion.rows import RowLoader

#: Rows checked before a batch is written (versions, current records, quarantine rows).
BATCH_ROWS = 20_000


class LandingPathError(ExtractRejected):
    """The path is outside the landing root (traversal, or a symlink pointing elsewhere)."""


@dataclass
class _Landed:
    """A landed file that passed the checks before reading: where it is and whose it is."""

    real: Path
    source: SourceConfig
    stat: os.stat_result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def confine_to_landing(path: Path, landing_root: Path) -> tuple[Path, Path]:
    """``(real path, path relative to the real landing root)``, or :class:`LandingPathError`."""
    root = landing_root.resolve()
    candidate = path if path.is_absolute() else root / path
    real = candidate.resolve()
    if not real.is_relative_to(root):
        raise LandingPathError(
            "outside_landing_root",
            f"{path.name}: resolves outside the landing folder (path traversal or symlink)",
        )
    return real, real.relative_to(root)


def ingest_file(
    engine: Engine,
    config: HubConfig,
    path: Path,
    landing_root: Path,
    *,
    run_id: str | None = None,
) -> IngestOutcome:
    """Ingest one landed file. Returns the outcome; raises :class:`ExtractRejected` after
    recording a rejection in the ledger, so that the caller's run fails visibly."""
    outcome = IngestOutcome(source="?", file_name=str(path), status=ExtractStatus.rejected)
    size = 0
    try:
        landed = _check_landed(config, path, landing_root, outcome)
        size = landed.stat.st_size
        outcome.content_hash = file_sha256(landed.real)
        mismatch = file_format_mismatch(landed.real, landed.source)
        if mismatch:
            raise ExtractRejected("unknown_format", mismatch)
    except OSError as exc:
        # Unreadable (permissions, vanished, an I/O error): a rejection, not a crashed run.
        reason = ExtractRejected(
            "unreadable_file",
            f"{outcome.file_name}: the file cannot be read ({type(exc).__name__})",
        )
        outcome.reason = str(reason)
        outcome.extract_id = record_attempt(engine, outcome, size, run_id)
        raise reason from exc
    except ExtractRejected as exc:
        outcome.reason = str(exc)
        outcome.extract_id = record_attempt(engine, outcome, size, run_id)
        raise

    previous = loaded_extract_id(engine, outcome.source, outcome.content_hash)
    if previous is not None:
        return _duplicate(engine, outcome, previous, size, run_id)
    try:
        extract_id = _load(engine, config, landed, outcome, run_id)
    except IntegrityError:
        # A concurrent run loaded the same content first: the unique index decided.
        previous = loaded_extract_id(engine, outcome.source, outcome.content_hash)
        if previous is None:
            raise
        return _duplicate(engine, outcome, previous, size, run_id)
    except ExtractRejected as exc:
        rejected = IngestOutcome(
            source=outcome.source,
            file_name=outcome.file_name,
            status=ExtractStatus.rejected,
            content_hash=outcome.content_hash,
            reason=str(exc),
        )
        rejected.extract_id = record_attempt(engine, rejected, size, run_id)
        raise
    outcome.status = ExtractStatus.loaded
    outcome.extract_id = extract_id
    assert outcome.rows_loaded + outcome.rows_quarantined == outcome.rows_landed
    return outcome


def _check_landed(
    config: HubConfig, path: Path, landing_root: Path, outcome: IngestOutcome
) -> _Landed:
    """The file inside the landing root, in a configured source's folder, a regular file; its
    relative name and its source's name go into ``outcome`` as soon as they are known."""
    real, relative = confine_to_landing(path, landing_root)
    outcome.file_name = relative.as_posix()
    if len(relative.parts) < 2:
        raise ExtractRejected(
            "no_source_folder", f"{relative}: files must land in landing/<source folder>/"
        )
    source = config.source_for_folder(relative.parts[0])
    outcome.source = relative.parts[0]
    if source is None:
        raise ExtractRejected(
            "unknown_source",
            f"{relative}: folder '{relative.parts[0]}' is not the landing folder of any "
            "source in sources.yaml",
        )
    outcome.source = source.name
    if not real.is_file():
        raise ExtractRejected("not_a_file", f"{relative}: not a regular file")
    return _Landed(real, source, real.stat())


def _load(
    engine: Engine,
    config: HubConfig,
    landed: _Landed,
    outcome: IngestOutcome,
    run_id: str | None,
) -> int:
    """Read the file and write its rows and its ledger row, in one transaction: the extract id.
    A file that changed while it was read is rejected and nothing of it stays."""
    with write_transaction(engine) as conn:
        extract_id = start_extract(conn, outcome, landed.stat.st_size, run_id)
        # The reader is closed whatever happens: a rejection mid-file leaves no open handle.
        with open_extract(landed.real, landed.source) as reader:
            loader = RowLoader(
                conn, landed.source, extract_id, config.ingest.max_field_length, outcome
            )
            # A CSV extract is checked batch by batch on its field lists; the others row by row.
            rows = (
                RowBatches(landed.real, reader, BATCH_ROWS)
                if isinstance(reader, CsvReader)
                else guarded_rows(landed.real, reader.rows())
            )
            try:
                loader.load(rows, BATCH_ROWS)
            finally:
                rows.close()
        after = os.stat(landed.real)
        if (after.st_size, after.st_mtime_ns) != (landed.stat.st_size, landed.stat.st_mtime_ns):
            raise ExtractRejected(
                "changed_while_reading", f"{outcome.file_name}: the file changed while it was read"
            )
        outcome.unmapped_columns = list(reader.header.unmapped_columns)
        finish_extract(conn, extract_id, outcome)
    return extract_id


def _duplicate(
    engine: Engine, outcome: IngestOutcome, previous: int, size: int, run_id: str | None
) -> IngestOutcome:
    outcome.status = ExtractStatus.duplicate
    outcome.duplicate_of = previous
    outcome.reason = f"same content as extract {previous}; skipped"
    outcome.extract_id = record_attempt(engine, outcome, size, run_id)
    return outcome
