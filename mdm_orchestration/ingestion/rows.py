"""One extract's data rows into source-record versions and quarantine rows, batch by batch.

Runs on the caller's connection, inside the transaction that loads the whole file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

import pandas as pd
from sqlalchemy import Connection, select

from mdm_orchestration.config import DateOrder, SourceConfig
from mdm_orchestration.hub.bulk import bulk_insert, bulk_upsert
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.tables import ERASED, QUARANTINE_COLUMNS, utcnow
from mdm_orchestration.ingestion.ledger import STAGE, IngestOutcome
from mdm_orchestration.ingestion.readers import RawRow

MAX_KEY_LENGTH = 256

#: Columns of a ``source_record_versions`` row, in bulk-write order.
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
#: Columns of a ``source_records`` row (a record's current version), in bulk-write order.
SOURCE_RECORD_COLUMNS = (
    "id",
    "source",
    "source_key",
    "current_extract_id",
    "current_row_number",
    "source_updated_at",
    "first_loaded_at",
    "last_loaded_at",
)
#: What a newer version updates in its ``source_records`` row.
CURRENT_VERSION_COLUMNS = (
    "current_extract_id",
    "current_row_number",
    "source_updated_at",
    "last_loaded_at",
)
#: An older version (by the source's own clock) never replaces a newer one.
NEWER_ONLY = (
    "source_records.source_updated_at IS NULL OR excluded.source_updated_at IS NULL "
    "OR excluded.source_updated_at >= source_records.source_updated_at"
)


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


class Accepted(NamedTuple):
    """A data row that passed the row checks, with its key and (later) its update timestamp."""

    row_number: int
    values: dict[str, str | None]
    key: str
    updated_at: datetime | None = None


class Rejected(NamedTuple):
    """A data row bound for quarantine: where and why, never the value."""

    row_number: int
    field: str | None
    reason: str
    detail: str


class Batch:
    def __init__(self) -> None:
        self.rows: list[Accepted] = []
        self.quarantine: list[Rejected] = []

    def __len__(self) -> int:
        return len(self.rows) + len(self.quarantine)


class RowLoader:
    """Checks, stamps and writes one extract's rows; counts them in ``outcome``."""

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
        self.now = utcnow()
        # A subject erased from the hub stays out of it: a later extract carrying its record is
        # quarantined, not loaded.
        self.erased = set(conn.execute(select(ERASED.c.record_id)).scalars())

    def load(self, rows: Iterable[RawRow], batch_rows: int) -> None:
        """Check every row; write them ``batch_rows`` at a time."""
        batch = Batch()
        for row in rows:
            self.check_row(row, batch)
            if len(batch) >= batch_rows:
                self.flush(batch)
                batch = Batch()
        self.flush(batch)

    def check_row(self, row: RawRow, batch: Batch) -> None:
        self.outcome.rows_landed += 1
        key = (row.values or {}).get(self.source.key_column)
        key = key.strip() if isinstance(key, str) else ""
        rejected = self._rejection(row, key)
        if rejected is not None:
            batch.quarantine.append(rejected)
        else:
            batch.rows.append(Accepted(row.row_number, row.values or {}, key))

    def _rejection(self, row: RawRow, key: str) -> Rejected | None:
        """Why the row cannot be loaded (unreadable, no key, key or a field too long), or None."""
        if row.error is not None:
            return Rejected(row.row_number, *row.error)
        key_column = self.source.key_column
        if not key:
            return Rejected(row.row_number, key_column, "missing_key", "the key column is empty")
        if len(key) > MAX_KEY_LENGTH:
            return Rejected(
                row.row_number, key_column, "key_too_long", f"longer than {MAX_KEY_LENGTH}"
            )
        for name, value in (row.values or {}).items():
            if value is not None and len(value) > self.max_field_length:
                return Rejected(
                    row.row_number,
                    name,
                    "field_too_long",
                    f"longer than {self.max_field_length} characters",
                )
        return None

    def flush(self, batch: Batch) -> None:
        rows = self._stamp_updated_at(batch.rows, batch.quarantine)
        rows = self._drop_erased(rows, batch.quarantine)
        if rows:
            self._write_versions(rows)
        if batch.quarantine:
            self._write_quarantine(batch.quarantine)

    def _stamp_updated_at(self, rows: list[Accepted], quarantine: list[Rejected]) -> list[Accepted]:
        """Each row with its parsed update timestamp; a timestamp that does not parse
        quarantines its row."""
        column = self.source.updated_at_column
        if not column or not rows:
            return rows
        raw_stamps = [row.values.get(column) for row in rows]
        parsed = parse_timestamps(raw_stamps, self.source.date_order)
        kept: list[Accepted] = []
        for row, stamp, raw in zip(rows, parsed, raw_stamps, strict=True):
            if stamp is None and raw is not None and raw.strip():
                quarantine.append(
                    Rejected(
                        row.row_number,
                        column,
                        "invalid_updated_at",
                        "the update timestamp cannot be parsed",
                    )
                )
            else:
                kept.append(Accepted(row.row_number, row.values, row.key, stamp))
        return kept

    def _drop_erased(self, rows: list[Accepted], quarantine: list[Rejected]) -> list[Accepted]:
        """The rows whose subject was not erased; the others are quarantined."""
        if not rows or not self.erased:
            return rows
        name = self.source.name
        kept = [row for row in rows if source_record_id(name, row.key) not in self.erased]
        if len(kept) < len(rows):
            kept_numbers = {row.row_number for row in kept}
            quarantine.extend(
                Rejected(
                    row.row_number,
                    self.source.key_column,
                    "erased_subject",
                    "the record's subject was erased from the hub",
                )
                for row in rows
                if row.row_number not in kept_numbers
            )
        return kept

    def _write_versions(self, rows: list[Accepted]) -> None:
        """A version per row, and each record's newest version in ``source_records``."""
        versions: list[tuple[object, ...]] = []
        current: dict[str, tuple[object, ...]] = {}
        current_ts: dict[str, datetime | None] = {}
        name, extract_id, now = self.source.name, self.extract_id, self.now
        for row_number, values, key, ts in rows:
            encoded = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
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
            SOURCE_RECORD_COLUMNS,
            list(current.values()),
            conflict="id",
            update=CURRENT_VERSION_COLUMNS,
            only_if=NEWER_ONLY,
        )
        self.outcome.rows_loaded += len(versions)

    def _write_quarantine(self, quarantine: list[Rejected]) -> None:
        bulk_insert(
            self.conn,
            "quarantine",
            QUARANTINE_COLUMNS,
            [
                (self.extract_id, r.row_number, STAGE, r.field, r.reason, r.detail, self.now)
                for r in quarantine
            ],
        )
        self.outcome.rows_quarantined += len(quarantine)
        self.outcome.quarantine_reasons.update(r.reason for r in quarantine)
