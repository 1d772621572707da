"""Readers for landed extracts: CSV, JSON Lines and Parquet, streamed in batches.

A reader yields :class:`RawRow` objects: either the row's values keyed by column name, or the
reason the row cannot be read (wrong field count, malformed JSON, a nested value). A problem
that makes the whole file unreadable (undecodable bytes, a corrupt or truncated file, a bad
header) raises :class:`ExtractRejected`, whose message names the file, the row and the field but
never a customer value.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from mdm_orchestration.config import SAFE_COLUMN, FileFormat, SourceConfig

# Fields can legitimately be long (free-text notes); the per-field limit is applied by the loader.
csv.field_size_limit(16 * 1024 * 1024)


class ExtractRejected(Exception):
    """The whole file cannot be ingested. ``code`` is a stable reason code for the ledger."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(slots=True)
class RawRow:
    row_number: int
    values: dict[str, str | None] | None = None
    #: When the row cannot be read: (field or None, reason code, detail without values).
    error: tuple[str | None, str, str] | None = None


@dataclass
class ExtractHeader:
    columns: list[str]
    unmapped_columns: list[str] = field(default_factory=list)


def _check_header(path: Path, source: SourceConfig, columns: list[str]) -> ExtractHeader:
    for position, name in enumerate(columns, start=1):
        if not SAFE_COLUMN.match(name):
            raise ExtractRejected(
                "unsafe_header",
                f"{path.name}: header column {position} has a name with characters that are "
                "not allowed (only letters, digits, space and _ . - / # ( ) are)",
            )
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise ExtractRejected("duplicate_column", f"{path.name}: column '{name}' appears twice")
        seen.add(name)
    if source.key_column not in seen:
        raise ExtractRejected(
            "missing_key_column",
            f"{path.name}: key column '{source.key_column}' of source '{source.name}' is missing",
        )
    missing = [c for c in source.required_columns if c not in seen]
    if missing:
        raise ExtractRejected(
            "schema_drift",
            f"{path.name}: columns expected by the mapping of source '{source.name}' are "
            f"missing: {', '.join(missing)} (renamed or removed?); nothing was loaded",
        )
    return ExtractHeader(
        columns=columns, unmapped_columns=[c for c in columns if not source.is_known_column(c)]
    )


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def _decode_error(path: Path, where: str, encoding: str) -> ExtractRejected:
    return ExtractRejected(
        "undecodable",
        f"{path.name}: {where}: bytes that are not valid {encoding} "
        f"(declare the file's encoding in sources.yaml if it is not {encoding})",
    )


def _check_decodable(path: Path, encoding: str, declared: str | None = None) -> None:
    """Find the first line that does not decode or holds NUL bytes (a corrupt file). A text
    reader decodes ahead in chunks, so its own error cannot say where the bad bytes are.
    ``declared``: the encoding as sources.yaml names it, for the message."""
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        _check_utf8(path, declared or encoding)
        return
    with path.open("rb") as fh:
        for line_number, line in enumerate(fh, start=1):
            if b"\x00" in line and "16" not in encoding and "32" not in encoding:
                raise ExtractRejected(
                    "corrupt", f"{path.name}: line {line_number}: NUL bytes in the file"
                )
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                raise _decode_error(path, f"line {line_number}", declared or encoding) from None


#: How much of a UTF-8 file :func:`_check_utf8` looks at at once.
_CHECK_BLOCK = 1 << 24


def _check_utf8(path: Path, declared: str) -> None:
    """:func:`_check_decodable` for UTF-8, a block of whole lines at a time: the same first bad
    line as decoding line by line (a line ends at the byte 0x0A, which never occurs inside a
    UTF-8 sequence, so a block decodes exactly when each of its lines does, and a line holding
    NUL bytes is corrupt before it is undecodable)."""
    first_line = 1  # the number of the block's first line
    carry = b""
    with path.open("rb") as fh:
        while True:
            data = fh.read(_CHECK_BLOCK)
            last = not data
            block = carry + data
            if not last:
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    carry = block
                    continue
                block, carry = block[:cut], block[cut:]
            nul = block.find(b"\x00")
            try:
                block.decode("utf-8")
                bad = -1
            except UnicodeDecodeError as exc:
                bad = exc.start
            if nul >= 0 or bad >= 0:
                nul_line = first_line + block.count(b"\n", 0, nul) if nul >= 0 else None
                bad_line = first_line + block.count(b"\n", 0, bad) if bad >= 0 else None
                if nul_line is not None and (bad_line is None or nul_line <= bad_line):
                    raise ExtractRejected(
                        "corrupt", f"{path.name}: line {nul_line}: NUL bytes in the file"
                    )
                raise _decode_error(path, f"line {bad_line}", declared)
            if last:
                return
            first_line += block.count(b"\n")


def _csv_row_error(exc: csv.Error) -> tuple[str | None, str, str]:
    """A malformed CSV record's reason. The csv module's messages name only the delimiter,
    the quote character or a limit, never a value."""
    message = str(exc)
    if "expected after" in message:
        return None, "bad_quoting", message
    if "field larger than field limit" in message:
        return None, "field_too_long", message
    return None, "malformed_csv", message


class CsvReader:
    def __init__(self, path: Path, source: SourceConfig) -> None:
        self.path = path
        self.source = source
        # utf-8-sig strips a byte-order mark and otherwise reads plain UTF-8.
        utf8 = codecs.lookup(source.encoding).name == "utf-8"
        self.encoding = "utf-8-sig" if utf8 else source.encoding
        _check_decodable(path, self.encoding, source.encoding)
        self._fh = path.open("r", encoding=self.encoding, errors="strict", newline="")
        try:
            self._reader = csv.reader(self._fh, delimiter=source.delimiter, strict=True)
            try:
                columns = next(self._reader)
            except StopIteration:
                raise ExtractRejected("empty_file", f"{path.name}: the file is empty") from None
            except csv.Error as exc:
                raise ExtractRejected("malformed_csv", f"{path.name}: header: {exc}") from exc
            self.header = _check_header(path, source, [c.strip() for c in columns])
        except BaseException:
            # A rejected header must not leave the file open (defect 14).
            self._fh.close()
            raise

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    #: Rows read ahead by :meth:`rows`.
    ROWS_AHEAD = 1024

    def rows(self) -> Iterator[RawRow]:
        """The data rows one by one: each with its values, or with the reason it cannot be read."""
        columns = self.header.columns
        for numbers, items in self.batches(self.ROWS_AHEAD):
            for row_number, item in zip(numbers, items, strict=True):
                if item.__class__ is RawRow:
                    yield item  # type: ignore[misc]
                else:
                    yield RawRow(row_number, dict(zip(columns, item, strict=True)))

    def batches(self, size: int) -> Iterator[tuple[list[int], list[list[str] | RawRow]]]:
        """The data rows ``size`` at a time (the last batch may be shorter), as ``(row numbers,
        items)``: an item is the row's fields in header order, or a :class:`RawRow` with the
        reason the row cannot be read. The same rows, numbers and errors as :meth:`rows`.

        A file that fails while it is read raises after the rows before the failing one came
        (as :meth:`rows` would have), so :func:`guarded_batches` names the same row.
        """
        width = len(self.header.columns)
        one_column = width == 1
        complete = _ends_with_newline(self.path)
        reader = self._reader
        numbers: list[int] = []
        items: list[list[str] | RawRow] = []
        row_number = 0
        failure: Exception | None = None
        try:
            while True:
                try:
                    for fields in reader:
                        count = len(fields)
                        if count == width and not (one_column and fields[0] == ""):
                            row_number += 1
                            numbers.append(row_number)
                            items.append(fields)
                        elif count == 0 or (count == 1 and fields[0] == ""):
                            continue  # blank line: not a data row
                        else:
                            row_number += 1
                            numbers.append(row_number)
                            items.append(
                                RawRow(
                                    row_number,
                                    error=(
                                        None,
                                        "wrong_field_count",
                                        f"expected {width} fields, found {count}",
                                    ),
                                )
                            )
                        if len(items) > size:
                            # The last row stays behind: only the end of the file tells
                            # whether it was cut short.
                            yield numbers[:size], items[:size]
                            del numbers[:size], items[:size]
                    break
                except csv.Error as exc:
                    if "unexpected end of data" in str(exc):
                        raise ExtractRejected(
                            "truncated", f"{self.path.name}: row {row_number + 1}: {exc}"
                        ) from exc
                    # One malformed record (a stray quote, a NUL): the csv module drops the rest
                    # of the physical line and starts the next record afresh, so the row is
                    # quarantined and the rows after it keep their numbers.
                    row_number += 1
                    numbers.append(row_number)
                    items.append(RawRow(row_number, error=_csv_row_error(exc)))
                    if len(items) > size:
                        yield numbers[:size], items[:size]
                        del numbers[:size], items[:size]
        except ExtractRejected:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the rows before it
            failure = exc
        finally:
            self._fh.close()
        if failure is not None:
            # The row read last was still held back (see above): it never came.
            if len(items) > 1:
                yield numbers[:-1], items[:-1]
            raise failure
        if items:
            pending = items[-1]
            if (
                not complete
                and pending.__class__ is RawRow
                and pending.error is not None  # type: ignore[union-attr]
                and pending.error[1] == "wrong_field_count"  # type: ignore[union-attr]
            ):
                raise ExtractRejected(
                    "truncated",
                    f"{self.path.name}: row {numbers[-1]}: the file ends mid-row "
                    "(no final newline and too few fields)",
                )
            yield numbers, items


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    raise TypeError(type(value).__name__)


#: Nested objects deeper than this are a row error (no real extract nests this deep; a hostile
#: one would exhaust the stack).
MAX_NESTING = 16


class _TooDeep(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _flatten(obj: dict[str, Any], prefix: str = "", depth: int = 1) -> Iterator[tuple[str, Any]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if depth >= MAX_NESTING:
                raise _TooDeep(name)
            yield from _flatten(value, f"{name}.", depth + 1)
        else:
            yield name, value


def _to_values(items: Iterator[tuple[str, Any]]) -> tuple[dict[str, str | None], str | None]:
    values: dict[str, str | None] = {}
    for name, value in items:
        try:
            values[name] = _scalar(value)
        except TypeError:
            return values, name
    return values, None


def _too_deep(name: str | None) -> tuple[str | None, str, str]:
    return (
        name[:128] if name else None,
        "too_deeply_nested",
        f"objects or lists nested more than {MAX_NESTING} levels deep",
    )


class JsonLinesReader:
    """JSON Lines: one object per line; nested objects are flattened to dotted column names."""

    def __init__(self, path: Path, source: SourceConfig) -> None:
        self.path = path
        self.source = source
        self.header = ExtractHeader(columns=[])
        self._columns: dict[str, None] = {}

    def close(self) -> None:
        """Nothing stays open: :meth:`rows` opens and closes the file itself."""

    def __enter__(self) -> JsonLinesReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self) -> Iterator[RawRow]:
        complete = _ends_with_newline(self.path)
        encoding = self.source.encoding
        row_number = 0
        # A malformed last line of a file without a final newline means a truncated file, so a
        # malformed line is held back until the next line shows it was not the last.
        pending_malformed: RawRow | None = None
        with self.path.open("rb") as fh:
            for raw_line in fh:
                if row_number == 0 and raw_line.startswith(b"\xef\xbb\xbf"):
                    raw_line = raw_line[3:]
                if not raw_line.strip():
                    continue
                row_number += 1
                if pending_malformed is not None:
                    yield pending_malformed
                    pending_malformed = None
                try:
                    line = raw_line.decode(encoding)
                except UnicodeDecodeError:
                    raise _decode_error(self.path, f"row {row_number}", encoding) from None
                if "\x00" in line:
                    raise ExtractRejected(
                        "corrupt", f"{self.path.name}: row {row_number}: NUL bytes in the file"
                    )
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    pending_malformed = RawRow(
                        row_number, error=(None, "malformed_json", "the line is not valid JSON")
                    )
                    continue
                except RecursionError:
                    yield RawRow(row_number, error=_too_deep(None))
                    continue
                if not isinstance(obj, dict):
                    yield RawRow(
                        row_number, error=(None, "not_an_object", "the line is not a JSON object")
                    )
                    continue
                try:
                    values, bad_field = _to_values(_flatten(obj))
                except _TooDeep as deep:
                    yield RawRow(row_number, error=_too_deep(deep.name))
                    continue
                if bad_field is not None:
                    yield RawRow(
                        row_number,
                        error=(bad_field, "wrong_type", "a list where a single value is expected"),
                    )
                    continue
                for name in values:
                    if name not in self._columns:
                        if not SAFE_COLUMN.match(name):
                            raise ExtractRejected(
                                "unsafe_header",
                                f"{self.path.name}: row {row_number}: a key has characters "
                                "that are not allowed",
                            )
                        self._columns[name] = None
                yield RawRow(row_number, values)
        if pending_malformed is not None:
            if not complete:
                raise ExtractRejected(
                    "truncated", f"{self.path.name}: row {row_number}: the file ends mid-row"
                )
            yield pending_malformed
        if row_number == 0:
            raise ExtractRejected("empty_file", f"{self.path.name}: the file has no rows")
        # JSON Lines has no header: the schema is checked against every key the file used.
        self.header = _check_header(self.path, self.source, list(self._columns))


class ParquetReader:
    BATCH = 50_000

    def __init__(self, path: Path, source: SourceConfig) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self.source = source
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise ExtractRejected(
                "corrupt", f"{path.name}: not a readable Parquet file ({type(exc).__name__})"
            ) from exc
        try:
            self.header = _check_header(path, source, list(self._file.schema_arrow.names))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ParquetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self) -> Iterator[RawRow]:
        import pyarrow as pa

        row_number = 0
        try:
            for batch in self._file.iter_batches(batch_size=self.BATCH):
                for record in batch.to_pylist():
                    row_number += 1
                    values, bad_field = _to_values(iter(record.items()))
                    if bad_field is not None:
                        yield RawRow(
                            row_number,
                            error=(
                                bad_field,
                                "wrong_type",
                                "a nested value where a single value is expected",
                            ),
                        )
                    else:
                        yield RawRow(row_number, values)
        except (pa.ArrowException, OSError) as exc:
            raise ExtractRejected(
                "corrupt",
                f"{self.path.name}: row {row_number + 1}: the Parquet data cannot be read "
                f"({type(exc).__name__})",
            ) from exc


def _reader_error(path: Path, last: int, exc: Exception) -> ExtractRejected:
    """The rejection of a reader that failed after row ``last``: the file, the row, the class."""
    return ExtractRejected(
        "reader_error",
        f"{path.name}: row {last + 1}: the file cannot be read ({type(exc).__name__})",
    )


def guarded_rows(path: Path, rows: Iterator[RawRow]) -> Iterator[RawRow]:
    """``rows``, with any failure of the reader that is not already a rejection (a bug, a
    parser's ``RecursionError``, an ``OSError``) turned into :class:`ExtractRejected` naming the
    file and the row, so that it ends as a ledger row and not as a crashed run."""
    last = 0
    try:
        for row in rows:
            last = row.row_number
            yield row
    except ExtractRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure must end as a rejection
        raise _reader_error(path, last, exc) from exc


class RowBatches:
    """A CSV extract's data rows batch by batch (:meth:`CsvReader.batches`), guarded like
    :func:`guarded_rows`; ``columns`` is the header. Iterate once; close when done."""

    def __init__(self, path: Path, reader: CsvReader, size: int) -> None:
        self.columns = reader.header.columns
        self._batches = _guarded_batches(path, reader.batches(size))

    def __iter__(self) -> Iterator[tuple[list[int], list[list[str] | RawRow]]]:
        return self._batches

    def close(self) -> None:
        self._batches.close()


def _guarded_batches(
    path: Path, batches: Iterator[tuple[list[int], list[list[str] | RawRow]]]
) -> Iterator[tuple[list[int], list[list[str] | RawRow]]]:
    last = 0
    try:
        for numbers, items in batches:
            if numbers:
                last = numbers[-1]
            yield numbers, items
    except ExtractRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure must end as a rejection
        raise _reader_error(path, last, exc) from exc


def open_extract(path: Path, source: SourceConfig) -> CsvReader | JsonLinesReader | ParquetReader:
    """A reader for ``path`` in the source's configured format. Any failure to open it ends as
    :class:`ExtractRejected` with a reason naming the file."""
    try:
        if source.format is FileFormat.csv:
            return CsvReader(path, source)
        if source.format is FileFormat.jsonl:
            return JsonLinesReader(path, source)
        return ParquetReader(path, source)
    except ExtractRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure must end as a rejection
        raise ExtractRejected(
            "reader_error", f"{path.name}: the file cannot be opened ({type(exc).__name__})"
        ) from exc


def file_format_mismatch(path: Path, source: SourceConfig) -> str | None:
    """A reason when the file name says a different (or an unknown) format than the source's."""
    known = {
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".parquet": "parquet",
        ".pq": "parquet",
    }
    named = known.get(path.suffix.lower())
    if named is None:
        return (
            f"{path.name}: unknown file format '{path.suffix or '(none)'}' (source "
            f"'{source.name}' expects uncompressed {source.format.value} files)"
        )
    if named != source.format.value:
        return (
            f"{path.name}: a {named} file, but source '{source.name}' expects {source.format.value}"
        )
    return None
