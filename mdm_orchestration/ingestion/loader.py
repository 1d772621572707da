"""Loading one landed file into the hub, in one transaction.

Every data row ends in exactly one place: a source-record version or a quarantine row with its
reason. The same bytes are ingested once per source (the ledger's unique index decides, also
against a concurrent run). A file that cannot be read is recorded as rejected and nothing of it
stays behind; a fixed re-drop is then ingested normally.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from mdm_orchestration.config import DateOrder, HubConfig, SourceConfig
from mdm_orchestration.hub.bulk import bulk_insert, bulk_upsert
from mdm_orchestration.hub.models import ErasedRecord, Extract, ExtractStatus, source_record_id
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.ingestion.readers import (
    ExtractRejected,
    RawRow,
    file_format_mismatch,
    open_extract,
)

BATCH_ROWS = 20_000
MAX_KEY_LENGTH = 256

EXTRACTS = Extract.__table__
VERSION_COLUMNS = (
    "extract_id",
    "row_number",
    "source_record_id",
    "source",
    "source_key",
    "raw",
    "raw_hash",
    "source_updated_at",
    "loaded_at",
)
RECORD_COLUMNS = (
    "id",
    "source",
    "source_key",
    "current_extract_id",
    "current_row_number",
    "source_updated_at",
    "first_loaded_at",
    "last_loaded_at",
)
QUARANTINE_COLUMNS = (
    "extract_id",
    "row_number",
    "stage",
    "field",
    "reason",
    "detail",
    "quarantined_at",
)


@dataclass
class IngestOutcome:
    """What happened to one file. Counts and codes only: safe for Dagster metadata."""

    source: str
    file_name: str
    status: ExtractStatus
    extract_id: int | None = None
    content_hash: str = ""
    rows_landed: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    unmapped_columns: list[str] = field(default_factory=list)
    reason: str | None = None
    duplicate_of: int | None = None


class LandingPathError(ExtractRejected):
    """The path is outside the landing root (traversal, or a symlink pointing elsewhere)."""


def _now() -> datetime:
    return datetime.now(UTC)


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


def parse_timestamps(values: list[str | None], order: DateOrder) -> list[datetime | None]:
    """Parse a source's update timestamps to UTC (naive values are taken as UTC).

    ISO 8601 (also SAP's ``20260105``) through ``datetime.fromisoformat``, which is fast; the rest
    through pandas with the source's day/month order. ``None`` where nothing parses.
    """
    out: list[datetime | None] = []
    retry: list[int] = []
    for i, value in enumerate(values):
        if value is None or not value.strip():
            out.append(None)
            continue
        try:
            ts = datetime.fromisoformat(value.strip())
        except ValueError:
            out.append(None)
            retry.append(i)
            continue
        out.append(ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC))
    if retry:
        series = pd.Series([values[i] for i in retry], dtype="string")
        parsed = pd.to_datetime(
            series,
            errors="coerce",
            format="mixed",
            dayfirst=order is DateOrder.DMY,
            yearfirst=order is DateOrder.YMD,
            utc=True,
        )
        for i, ts in zip(retry, parsed.astype(object), strict=True):
            if ts is not None and ts is not pd.NaT:
                out[i] = ts.to_pydatetime()
    return out


class _Batch:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, str | None], str]] = []
        self.quarantine: list[tuple[int, str | None, str, str]] = []


class _Loader:
    def __init__(
        self,
        conn: Connection,
        source: SourceConfig,
        extract_id: int,
        max_field_length: int,
        outcome: IngestOutcome,
    ) -> None:
        self.conn = conn
        self.source = source
        self.extract_id = extract_id
        self.max_field_length = max_field_length
        self.outcome = outcome
        self.now = _now()
        # Subjects erased from the hub stay out of it (RELIABILITY.md row 17).
        self.erased = set(conn.execute(select(ErasedRecord.__table__.c.record_id)).scalars())

    def check_row(self, row: RawRow, batch: _Batch) -> None:
        self.outcome.rows_landed += 1
        if row.error is not None:
            batch.quarantine.append((row.row_number, *row.error))
            return
        values = row.values or {}
        key = values.get(self.source.key_column)
        key = key.strip() if isinstance(key, str) else None
        if not key:
            batch.quarantine.append(
                (row.row_number, self.source.key_column, "missing_key", "the key column is empty")
            )
            return
        if len(key) > MAX_KEY_LENGTH:
            batch.quarantine.append(
                (
                    row.row_number,
                    self.source.key_column,
                    "key_too_long",
                    f"longer than {MAX_KEY_LENGTH}",
                )
            )
            return
        for name, value in values.items():
            if value is not None and len(value) > self.max_field_length:
                batch.quarantine.append(
                    (
                        row.row_number,
                        name,
                        "field_too_long",
                        f"longer than {self.max_field_length} characters",
                    )
                )
                return
        batch.rows.append((row.row_number, values, key))

    def flush(self, batch: _Batch) -> None:
        source = self.source
        rows = batch.rows
        updated: list[datetime | None] = [None] * len(rows)
        if source.updated_at_column and rows:
            col = source.updated_at_column
            raw_ts = [values.get(col) for _, values, _ in rows]
            updated = parse_timestamps(raw_ts, source.date_order)
            kept_rows, kept_updated = [], []
            for (row_number, values, key), ts, raw in zip(rows, updated, raw_ts, strict=True):
                if ts is None and raw is not None and raw.strip():
                    batch.quarantine.append(
                        (
                            row_number,
                            col,
                            "invalid_updated_at",
                            "the update timestamp cannot be parsed",
                        )
                    )
                else:
                    kept_rows.append((row_number, values, key))
                    kept_updated.append(ts)
            rows, updated = kept_rows, kept_updated

        if rows and self.erased:
            kept = [
                (r, ts)
                for r, ts in zip(rows, updated, strict=True)
                if source_record_id(source.name, r[2]) not in self.erased
            ]
            if len(kept) < len(rows):
                kept_numbers = {r[0] for r, _ts in kept}
                batch.quarantine.extend(
                    (
                        row_number,
                        source.key_column,
                        "erased_subject",
                        "the record's subject was erased from the hub",
                    )
                    for row_number, _v, _k in rows
                    if row_number not in kept_numbers
                )
                rows = [r for r, _ts in kept]
                updated = [ts for _r, ts in kept]

        if rows:
            versions: list[tuple[object, ...]] = []
            current: dict[str, tuple[object, ...]] = {}
            current_ts: dict[str, datetime | None] = {}
            name, extract_id, now = source.name, self.extract_id, self.now
            for (row_number, values, key), ts in zip(rows, updated, strict=True):
                encoded = json.dumps(
                    values, ensure_ascii=False, sort_keys=True, separators=(",", ":")
                )
                digest = hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()
                rid = source_record_id(name, key)
                versions.append((extract_id, row_number, rid, name, key, encoded, digest, ts, now))
                # Within one batch the newest by updated-at wins; on a tie (or unknown) the later row.
                if rid in current:
                    best = current_ts[rid]
                    if ts is not None and best is not None and ts < best:
                        continue
                current[rid] = (rid, name, key, extract_id, row_number, ts, now, now)
                current_ts[rid] = ts
            bulk_insert(self.conn, "source_record_versions", VERSION_COLUMNS, versions)
            bulk_upsert(
                self.conn,
                "source_records",
                RECORD_COLUMNS,
                list(current.values()),
                conflict="id",
                update=(
                    "current_extract_id",
                    "current_row_number",
                    "source_updated_at",
                    "last_loaded_at",
                ),
                # An older version (by the source's own clock) never replaces a newer one.
                only_if=(
                    "source_records.source_updated_at IS NULL OR excluded.source_updated_at IS NULL "
                    "OR excluded.source_updated_at >= source_records.source_updated_at"
                ),
            )
            self.outcome.rows_loaded += len(versions)

        if batch.quarantine:
            bulk_insert(
                self.conn,
                "quarantine",
                QUARANTINE_COLUMNS,
                [
                    (self.extract_id, row_number, "ingest", field_name, reason, detail, self.now)
                    for row_number, field_name, reason, detail in batch.quarantine
                ],
            )
            self.outcome.rows_quarantined += len(batch.quarantine)
            self.outcome.quarantine_reasons.update(r for _, _, r, _ in batch.quarantine)

    def load(self, rows: Iterable[RawRow]) -> None:
        batch = _Batch()
        for row in rows:
            self.check_row(row, batch)
            if len(batch.rows) + len(batch.quarantine) >= BATCH_ROWS:
                self.flush(batch)
                batch = _Batch()
        self.flush(batch)


def _record_attempt(engine: Engine, outcome: IngestOutcome, size: int, run_id: str | None) -> int:
    """Write a ledger row for a rejected or duplicate drop, in its own transaction."""
    now = _now()
    with write_transaction(engine) as conn:
        result = conn.execute(
            insert(EXTRACTS).values(
                source=outcome.source[:40],
                file_name=outcome.file_name[:512],
                content_hash=outcome.content_hash,
                size_bytes=size,
                status=outcome.status.value,
                reason=outcome.reason,
                rows_landed=0,
                rows_loaded=0,
                rows_quarantined=0,
                unmapped_columns=[],
                duplicate_of=outcome.duplicate_of,
                run_id=run_id,
                started_at=now,
                finished_at=now,
            )
        )
        return int(result.inserted_primary_key[0])


def _loaded_extract(conn: Connection, source: str, content_hash: str) -> int | None:
    return conn.execute(
        select(EXTRACTS.c.id).where(
            EXTRACTS.c.source == source,
            EXTRACTS.c.content_hash == content_hash,
            EXTRACTS.c.status == ExtractStatus.loaded.value,
        )
    ).scalar_one_or_none()


def loaded_extract_id(engine: Engine, source: str, content_hash: str) -> int | None:
    """The extract that already loaded these bytes for this source, if any."""
    with engine.connect() as conn:
        return _loaded_extract(conn, source, content_hash)


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
    file_name = str(path)
    outcome = IngestOutcome(source="?", file_name=file_name, status=ExtractStatus.rejected)
    size = 0
    try:
        real, relative = confine_to_landing(path, landing_root)
        outcome.file_name = file_name = relative.as_posix()
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
        stat = real.stat()
        size = stat.st_size
        outcome.content_hash = file_sha256(real)
        mismatch = file_format_mismatch(real, source)
        if mismatch:
            raise ExtractRejected("unknown_format", mismatch)
    except ExtractRejected as exc:
        outcome.reason = str(exc)
        outcome.extract_id = _record_attempt(engine, outcome, size, run_id)
        raise

    previous = loaded_extract_id(engine, source.name, outcome.content_hash)
    if previous is not None:
        return _duplicate(engine, outcome, previous, size, run_id)

    started = _now()
    try:
        with write_transaction(engine) as conn:
            extract_id = conn.execute(
                insert(EXTRACTS).values(
                    source=source.name,
                    file_name=file_name[:512],
                    content_hash=outcome.content_hash,
                    size_bytes=size,
                    status=ExtractStatus.loaded.value,
                    rows_landed=0,
                    rows_loaded=0,
                    rows_quarantined=0,
                    unmapped_columns=[],
                    run_id=run_id,
                    started_at=started,
                )
            ).inserted_primary_key[0]
            reader = open_extract(real, source)
            loader = _Loader(conn, source, int(extract_id), config.ingest.max_field_length, outcome)
            loader.load(reader.rows())
            after = os.stat(real)
            if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                raise ExtractRejected(
                    "changed_while_reading", f"{file_name}: the file changed while it was read"
                )
            outcome.unmapped_columns = list(reader.header.unmapped_columns)
            conn.execute(
                update(EXTRACTS)
                .where(EXTRACTS.c.id == extract_id)
                .values(
                    rows_landed=outcome.rows_landed,
                    rows_loaded=outcome.rows_loaded,
                    rows_quarantined=outcome.rows_quarantined,
                    unmapped_columns=outcome.unmapped_columns,
                    finished_at=_now(),
                )
            )
    except IntegrityError:
        # A concurrent run loaded the same content first: the unique index decided.
        previous = loaded_extract_id(engine, source.name, outcome.content_hash)
        if previous is None:
            raise
        return _duplicate(engine, outcome, previous, size, run_id)
    except ExtractRejected as exc:
        rejected = IngestOutcome(
            source=source.name,
            file_name=file_name,
            status=ExtractStatus.rejected,
            content_hash=outcome.content_hash,
            reason=str(exc),
        )
        rejected.extract_id = _record_attempt(engine, rejected, size, run_id)
        raise
    outcome.status = ExtractStatus.loaded
    outcome.extract_id = int(extract_id)
    assert outcome.rows_loaded + outcome.rows_quarantined == outcome.rows_landed
    return outcome


def _duplicate(
    engine: Engine, outcome: IngestOutcome, previous: int, size: int, run_id: str | None
) -> IngestOutcome:
    outcome.status = ExtractStatus.duplicate
    outcome.duplicate_of = previous
    outcome.reason = f"same content as extract {previous}; skipped"
    outcome.extract_id = _record_attempt(engine, outcome, size, run_id)
    return outcome
