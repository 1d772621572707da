"""One extract's data rows into source-record versions and quarantine rows, batch by batch.

Runs on the caller's connection, inside the transaction that loads the whole file.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple

import orjson
import pandas as pd
from sqlalchemy import Connection, select

from mdm_orchestration.config import DateOrder, SourceConfig
from mdm_orchestration.hub.bulk import bulk_insert, stored_datetime
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.tables import ERASED, QUARANTINE_COLUMNS, utcnow
from mdm_orchestration.ingestion.ledger import STAGE, IngestOutcome
from mdm_orchestration.ingestion.readers import RawRow, RowBatches

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


#: On PostgreSQL a batch's current versions go to ``source_records`` straight from the versions
#: just copied: the same rows, values and order as :func:`bulk_upsert` would write, without a
#: second COPY through a staging table. ``{current}`` picks the batch's current versions, in the
#: order of their records' first rows; the range of the batch's row numbers keeps the scan to
#: the batch (the planner's statistics do not know the rows just copied).
_CURRENT_FROM_VERSIONS = (
    f"INSERT INTO source_records ({', '.join(SOURCE_RECORD_COLUMNS)}) "
    "SELECT v.source_record_id, v.source, v.source_key, v.extract_id, v.row_number, "
    "v.source_updated_at, v.loaded_at, v.loaded_at "
    "FROM source_record_versions v {current} "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in CURRENT_VERSION_COLUMNS)
    + f" WHERE {NEWER_ONLY}"
)
_BATCH_RANGE = "v.extract_id = %(extract_id)s AND v.row_number BETWEEN %(first)s::integer AND %(last)s::integer"
#: Every row of the batch is current (no record twice): all of its versions, by row number.
_ALL_ROWS = f"WHERE {_BATCH_RANGE} ORDER BY v.row_number"
#: Some records came twice: the current rows, by their position in ``numbers``.
_SOME_ROWS = (
    "JOIN unnest(%(numbers)s::integer[]) WITH ORDINALITY AS c(row_number, position) "
    f"ON v.row_number = c.row_number WHERE {_BATCH_RANGE} ORDER BY c.position"
)
#: The same on SQLite (``numbers`` as a JSON array).
_SQLITE_BATCH_RANGE = "v.extract_id = :extract_id AND v.row_number BETWEEN :first AND :last"
_SQLITE_ALL_ROWS = f"WHERE {_SQLITE_BATCH_RANGE} ORDER BY v.row_number"
_SQLITE_SOME_ROWS = (
    "JOIN json_each(:numbers) AS c ON v.row_number = c.value "
    f"WHERE {_SQLITE_BATCH_RANGE} ORDER BY c.key"
)


class _Writes:
    """A batch's writes on a thread of their own, one batch at a time (PostgreSQL): the server
    works on a batch while the next one is read and checked. The writes keep their order, and
    the connection is never used by two threads at once: a batch's writes start only after
    the previous batch's are done, and the loader waits for them before it returns."""

    def __init__(self, background: bool) -> None:
        self.background = background
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, write: Callable[[], None]) -> None:
        self.wait()
        if not self.background:
            write()
            return

        def run() -> None:
            try:
                write()
            except BaseException as exc:  # noqa: BLE001 - raised in the loader's thread
                self._error = exc

        self._thread = threading.Thread(target=run, name="mdm-ingest-writes", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Wait for the writes in flight; raise their error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def raw_json(values: dict[str, Any]) -> str:
    """A row's values as the hub stores them (``raw``): canonical JSON, keys sorted, no spaces,
    non-ASCII as is, exactly ``json.dumps(values, ensure_ascii=False, sort_keys=True,
    separators=(",", ":"))``. orjson writes the same bytes about four times faster for text and
    nulls, which is all a reader produces; anything else (numbers, other types, keys or text
    orjson refuses, such as lone surrogates) goes through ``json.dumps`` itself."""
    for value in values.values():
        if value is not None and value.__class__ is not str:
            break
    else:
        try:
            return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


#: A character JSON escapes in a string (``json.dumps``'s own set, with ``ensure_ascii=False``).
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


class CsvJson:
    """The ``raw`` JSON of CSV rows, from their fields in header order.

    A row none of whose fields needs escaping is its header's JSON object with the fields put
    in as they are (one ``%`` formatting, no dict); any other row goes through
    :func:`raw_json`. Both give the bytes of :func:`raw_json` of the row's values.
    """

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        order = sorted(range(len(self.columns)), key=self.columns.__getitem__)
        pick = itemgetter(*order)
        self._pick: Callable[[list[str]], tuple[str, ...]] = (
            pick if len(order) > 1 else lambda fields: (pick(fields),)
        )
        self._template = (
            "{"
            + ",".join(
                json.dumps(self.columns[i], ensure_ascii=False).replace("%", "%%") + ':"%s"'
                for i in order
            )
            + "}"
        )

    def encode(self, rows: list[list[str]]) -> list[str]:
        template, pick, columns = self._template, self._pick, self.columns
        if not _NEEDS_ESCAPE.search("".join(map("".join, rows))):
            return [template % pick(fields) for fields in rows]
        search = _NEEDS_ESCAPE.search
        return [
            raw_json(dict(zip(columns, fields, strict=True)))
            if search("".join(fields))
            else template % pick(fields)
            for fields in rows
        ]


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


class _Rows:
    """A batch's rows on their way to the hub, as parallel lists: row numbers, values (a dict,
    or a CSV row's fields), keys, and update timestamps (their raw text until parsed)."""

    __slots__ = ("numbers", "values", "keys", "stamps")

    def __init__(
        self, numbers: list[int], values: list[Any], keys: list[str], stamps: list[Any]
    ) -> None:
        self.numbers = numbers
        self.values = values
        self.keys = keys
        self.stamps = stamps

    def take(self, keep: list[int], stamps: list[Any]) -> _Rows:
        """The rows at the positions ``keep``, with ``stamps`` (already picked)."""
        return _Rows(
            [self.numbers[i] for i in keep],
            [self.values[i] for i in keep],
            [self.keys[i] for i in keep],
            stamps,
        )


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
        # Datetimes go to the bulk writes as the database stores them, each value formatted once.
        self._stored = stored_datetime(conn)
        self._stored_now = self._stored(self.now)
        self._stored_cache: dict[datetime, str] = {}
        # A subject erased from the hub stays out of it: a later extract carrying its record is
        # quarantined, not loaded.
        self.erased = set(conn.execute(select(ERASED.c.record_id)).scalars())
        self._postgres = conn.dialect.name == "postgresql"
        self._writes = _Writes(background=self._postgres)

    def load(self, rows: Iterable[RawRow] | RowBatches, batch_rows: int) -> None:
        """Check every row; write them ``batch_rows`` at a time. ``rows`` may also be a CSV
        extract's :class:`RowBatches` (already ``batch_rows`` at a time)."""
        try:
            if isinstance(rows, RowBatches):
                self._load_batches(rows)
            else:
                batch = Batch()
                for row in rows:
                    self.check_row(row, batch)
                    if len(batch) >= batch_rows:
                        self.flush(batch)
                        batch = Batch()
                self.flush(batch)
        except BaseException:
            # The writes of the batch before failed first, if they failed: theirs is the error.
            self._writes.wait()
            raise
        self._writes.wait()

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
                return self._too_long(row.row_number, name)
        return None

    def _too_long(self, row_number: int, name: str) -> Rejected:
        return Rejected(
            row_number,
            name,
            "field_too_long",
            f"longer than {self.max_field_length} characters",
        )

    def flush(self, batch: Batch) -> None:
        column = self.source.updated_at_column
        rows = _Rows(
            [row.row_number for row in batch.rows],
            [row.values for row in batch.rows],
            [row.key for row in batch.rows],
            [row.values.get(column) for row in batch.rows] if column else [],
        )
        self._write(rows, batch.quarantine, lambda values: [raw_json(v) for v in values])

    def _load_batches(self, batches: RowBatches) -> None:
        """:meth:`load` for a CSV extract: the same checks, in the same order, on each batch of
        field lists (no dict per row: the row's JSON comes from its fields, :class:`CsvJson`)."""
        columns = batches.columns
        key_index = columns.index(self.source.key_column)
        key_column = self.source.key_column
        limit = self.max_field_length
        stamp_column = self.source.updated_at_column
        stamp_index = columns.index(stamp_column) if stamp_column in columns else None
        encode = CsvJson(columns).encode
        for numbers, items in batches:
            self.outcome.rows_landed += len(items)
            quarantine: list[Rejected] = []
            rows = _Rows([], [], [], [])
            add_number, add_fields, add_key = (
                rows.numbers.append,
                rows.values.append,
                rows.keys.append,
            )
            for row_number, fields in zip(numbers, items, strict=True):
                if fields.__class__ is RawRow:
                    quarantine.append(Rejected(row_number, *fields.error))  # type: ignore[union-attr,misc]
                    continue
                key = fields[key_index].strip()  # type: ignore[index,union-attr]
                if not key:
                    quarantine.append(
                        Rejected(row_number, key_column, "missing_key", "the key column is empty")
                    )
                elif len(key) > MAX_KEY_LENGTH:
                    quarantine.append(
                        Rejected(
                            row_number, key_column, "key_too_long", f"longer than {MAX_KEY_LENGTH}"
                        )
                    )
                elif max(map(len, fields)) > limit:  # type: ignore[arg-type]
                    first = next(i for i, v in enumerate(fields) if len(v) > limit)  # type: ignore[arg-type]
                    quarantine.append(self._too_long(row_number, columns[first]))
                else:
                    add_number(row_number)
                    add_fields(fields)
                    add_key(key)
            if stamp_column:
                rows.stamps = (
                    [fields[stamp_index] for fields in rows.values]
                    if stamp_index is not None
                    else [None] * len(rows.numbers)
                )
            self._write(rows, quarantine, encode)

    def _write(
        self,
        rows: _Rows,
        quarantine: list[Rejected],
        encode: Callable[[list[Any]], list[str]],
    ) -> None:
        """Stamp the rows, drop the erased ones, write the rest (``encode``: their values as
        JSON) and the batch's quarantine rows."""
        rows = self._stamp(rows, quarantine)
        rows = self._drop_erased(rows, quarantine)
        if rows.numbers:
            self._write_versions(rows, encode(rows.values))
        if quarantine:
            self._write_quarantine(quarantine)

    def _stamp(self, rows: _Rows, quarantine: list[Rejected]) -> _Rows:
        """Each row with its parsed update timestamp (``rows.stamps`` holds their raw text); a
        timestamp that does not parse quarantines its row."""
        column = self.source.updated_at_column
        if not column or not rows.numbers:
            return _Rows(rows.numbers, rows.values, rows.keys, [None] * len(rows.numbers))
        raw_stamps = rows.stamps
        parsed = parse_timestamps(raw_stamps, self.source.date_order)  # type: ignore[arg-type]
        bad = [
            i
            for i, (stamp, raw) in enumerate(zip(parsed, raw_stamps, strict=True))
            if stamp is None and raw is not None and raw.strip()
        ]
        if not bad:
            return _Rows(rows.numbers, rows.values, rows.keys, parsed)
        quarantine.extend(
            Rejected(
                rows.numbers[i],
                column,
                "invalid_updated_at",
                "the update timestamp cannot be parsed",
            )
            for i in bad
        )
        dropped = set(bad)
        keep = [i for i in range(len(rows.numbers)) if i not in dropped]
        return rows.take(keep, [parsed[i] for i in keep])

    def _drop_erased(self, rows: _Rows, quarantine: list[Rejected]) -> _Rows:
        """The rows whose subject was not erased; the others are quarantined."""
        if not rows.numbers or not self.erased:
            return rows
        name, erased = self.source.name, self.erased
        gone = [source_record_id(name, key) in erased for key in rows.keys]
        if not any(gone):
            return rows
        quarantine.extend(
            Rejected(
                row_number,
                self.source.key_column,
                "erased_subject",
                "the record's subject was erased from the hub",
            )
            for row_number, out in zip(rows.numbers, gone, strict=True)
            if out
        )
        keep = [i for i, out in enumerate(gone) if not out]
        return rows.take(keep, [rows.stamps[i] for i in keep])

    def _stored_stamp(self, ts: datetime | None) -> str | None:
        if ts is None:
            return None
        text = self._stored_cache.get(ts)
        if text is None:
            text = self._stored_cache[ts] = self._stored(ts)
        return text

    def _write_versions(self, rows: _Rows, raws: list[str]) -> None:
        """A version per row (``raws``: each row's JSON), and each record's newest version in
        ``source_records``."""
        versions: list[tuple[object, ...]] = []
        current: dict[str, tuple[object, ...]] = {}
        current_ts: dict[str, datetime | None] = {}
        name, extract_id, now = self.source.name, self.extract_id, self._stored_now
        stored_stamp = self._stored_stamp
        blake2b = hashlib.blake2b
        for row_number, key, ts, encoded in zip(
            rows.numbers, rows.keys, rows.stamps, raws, strict=True
        ):
            digest = blake2b(encoded.encode(), digest_size=16).hexdigest()
            rid = source_record_id(name, key)
            stamp = stored_stamp(ts)
            versions.append((extract_id, row_number, rid, name, key, encoded, digest, stamp, now))
            # Within one batch the newest by updated-at wins; on a tie (or unknown) the later row.
            if rid in current:
                best = current_ts[rid]
                if ts is not None and best is not None and ts < best:
                    continue
            current[rid] = (rid, name, key, extract_id, row_number, stamp, now, now)
            current_ts[rid] = ts
        current_rows = list(current.values())
        self._writes.submit(lambda: self._write_batch(versions, current_rows))
        self.outcome.rows_loaded += len(versions)

    def _write_batch(
        self, versions: list[tuple[object, ...]], current: list[tuple[object, ...]]
    ) -> None:
        bulk_insert(self.conn, "source_record_versions", VERSION_COLUMNS, versions, stored=True)
        # The versions of a batch are its loaded rows, numbered up.
        params: dict[str, object] = {
            "extract_id": self.extract_id,
            "first": versions[0][1],
            "last": versions[-1][1],
        }
        every = len(current) == len(versions)
        numbers = None if every else [r[4] for r in current]
        if self._postgres:
            rows = _ALL_ROWS if every else _SOME_ROWS
            if numbers is not None:
                params["numbers"] = numbers
        else:
            rows = _SQLITE_ALL_ROWS if every else _SQLITE_SOME_ROWS
            if numbers is not None:
                params["numbers"] = json.dumps(numbers)
        self.conn.exec_driver_sql(_CURRENT_FROM_VERSIONS.format(current=rows), params)

    def _write_quarantine(self, quarantine: list[Rejected]) -> None:
        rows = [
            (self.extract_id, r.row_number, STAGE, r.field, r.reason, r.detail, self._stored_now)
            for r in quarantine
        ]
        self._writes.submit(
            lambda: bulk_insert(self.conn, "quarantine", QUARANTINE_COLUMNS, rows, stored=True)
        )
        self.outcome.rows_quarantined += len(quarantine)
        self.outcome.quarantine_reasons.update(r.reason for r in quarantine)
