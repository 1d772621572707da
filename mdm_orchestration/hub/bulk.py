"""Bulk writes for the hot path (ingestion), below the ORM's per-value type processing.

At a million rows, SQLAlchemy's per-parameter processing (JSON and timezone-aware datetime types)
costs more than the database itself. These helpers take rows already in their stored form
(JSON text, UTC datetimes) and hand them to the driver directly: ``executemany`` on SQLite, and
``COPY`` on PostgreSQL (one round trip per batch instead of one per row). They run on the
caller's connection, inside its transaction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite


def _sqlite_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Datetimes as SQLAlchemy stores them on SQLite (UTC text); each distinct value formatted once."""
    formatted: dict[datetime, str] = {}

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            text = formatted.get(value)
            if text is None:
                text = formatted[value] = value.astimezone(UTC).strftime(_SQLITE_FORMAT)
            return text
        return value

    return [tuple(convert(v) for v in row) for row in rows]


def stored_datetime(conn: Connection) -> Callable[[datetime], str]:
    """How ``conn``'s database stores a datetime column, as a function from an aware datetime to
    text, for callers that pass ``stored=True`` rows (formatting a datetime per value is a large
    share of a bulk write's Python time)."""
    return stored_datetime_of(conn.dialect.name)


def stored_datetime_of(dialect: str) -> Callable[[datetime], str]:
    """:func:`stored_datetime` by the dialect's name (``"sqlite"``, ``"postgresql"``): a
    module-level function, so it can be handed to a worker process."""
    return datetime.isoformat if dialect == "postgresql" else _sqlite_datetime


def _sqlite_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_SQLITE_FORMAT)


def _copy_value(value: Any) -> Any:
    if value is None:
        return r"\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _chunk(length: int) -> int:
    """How much psycopg2 reads at a time from a COPY body of ``length`` characters: all of it
    (up to 64 M), not its default 8 K. It takes the GIL back for every read, which costs up to a
    switch interval (5 ms) when another thread is busy, as the ingest loader's is."""
    return max(8192, min(length, 1 << 26))


def _copy_text(rows: Sequence[Sequence[Any]], width: int) -> str | None:
    """``rows`` (stored values: text, numbers, ``None``) as the body of a ``COPY ... (FORMAT
    text)``, when no value needs escaping there (holds no tab, line end or backslash); else
    ``None``. Formatting the rows whole and counting the separators afterwards is several times
    faster than a csv writer, and exact: any value with a separator or a backslash in it shows
    in the counts."""
    template = "\t".join(("%s",) * width)
    nulls = 0
    lines = []
    for row in rows:
        if None in row:
            nulls += row.count(None)
            row = tuple(r"\N" if v is None else v for v in row)
        lines.append(template % tuple(row))
    text = "\n".join(lines)
    if (
        text.count("\t") != len(lines) * (width - 1)
        or text.count("\n") != len(lines) - 1
        or text.count("\\") != nulls
        or "\r" in text
    ):
        return None
    return text + "\n"


def _copy(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    stored: bool = False,
) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if stored:
            text = _copy_text(rows, len(columns))
            if text is not None:
                cursor.copy_expert(
                    f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT text)",
                    io.StringIO(text),
                    size=_chunk(len(text)),
                )
                return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if stored:
            # No datetimes to format: only NULLs to mark, and only in the rows that hold one.
            writer.writerows(
                row if None not in row else [r"\N" if v is None else v for v in row] for row in rows
            )
        else:
            for row in rows:
                writer.writerow([_copy_value(v) for v in row])
        size = buffer.tell()
        buffer.seek(0)
        cursor.copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            buffer,
            size=_chunk(size),
        )
    finally:
        cursor.close()


def bulk_insert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    stored: bool = False,
) -> None:
    """Insert rows (tuples in ``columns`` order). Table and column names are ours, never data.

    ``stored``: the rows hold no datetimes (the caller formatted them with
    :func:`stored_datetime`), so they go to the driver without a per-value pass.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy(conn, table, columns, rows, stored)
        return
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        rows if stored else _sqlite_rows(rows),
    )


def bulk_upsert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: str,
    update: Sequence[str],
    only_if: str,
    stored: bool = False,
) -> None:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE SET update... WHERE only_if``.

    ``only_if`` is SQL over ``{table}`` (the stored row) and ``excluded`` (the new one). Rows
    must have distinct conflict keys. ``stored`` as for :func:`bulk_insert`.
    """
    if not rows:
        return
    sets = ", ".join(f"{c} = excluded.{c}" for c in update)
    if conn.dialect.name == "postgresql":
        stage = f"_stage_{table}"
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        conn.exec_driver_sql(f"TRUNCATE {stage}")
        _copy(conn, stage, columns, rows, stored)
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {sets} WHERE {only_if}"
        )
        return
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {sets} WHERE {only_if}",
        rows if stored else _sqlite_rows(rows),
    )


@contextmanager
def indexes_dropped(conn: Connection, table: str) -> Iterator[list[str]]:
    """On SQLite, ``table``'s secondary indexes dropped while the caller replaces its rows, and
    created again from their own stored definitions (``sqlite_master.sql``) on leaving, in the
    caller's transaction; yields their names. Elsewhere nothing happens (yields ``[]``).

    SQLite keeps every index up to date row by row: a million rows in hashed-key order land on
    random pages of the index, one cache miss each once it outgrows the page cache, while
    ``CREATE INDEX`` sorts once and writes its pages in order. The drop and the create are part
    of the caller's transaction (SQLite's DDL is transactional): a crash or an error before the
    commit leaves the table with its old rows and its indexes, and a reader keeps its snapshot.
    An index's ``sqlite_stat1`` row (``ANALYZE``) goes with it on a drop and is put back.

    Not on PostgreSQL: ``DROP INDEX`` takes an exclusive lock on the table until the commit, so
    every reader (online matching) would wait for the whole rebuild; ``COPY`` keeps it fast.
    """
    if conn.dialect.name != "sqlite":
        yield []
        return
    definitions = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
        "AND sql IS NOT NULL ORDER BY name",
        (table,),
    ).all()
    names = [name for name, _sql in definitions]
    stats: list[tuple[str, str, str]] = []
    has_stats = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).first()
    if has_stats and names:
        marks = ", ".join("?" for _ in names)
        stats = [
            tuple(row)
            for row in conn.exec_driver_sql(
                f"SELECT tbl, idx, stat FROM sqlite_stat1 WHERE tbl = ? AND idx IN ({marks})",
                (table, *names),
            )
        ]
    for name in names:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield names
    for _name, sql in definitions:
        conn.exec_driver_sql(sql)
    if stats:
        conn.exec_driver_sql("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", stats)
