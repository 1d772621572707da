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
from collections.abc import Sequence
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


def _copy_value(value: Any) -> Any:
    if value is None:
        return r"\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _copy(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([_copy_value(v) for v in row])
    buffer.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
        )
    finally:
        cursor.close()


def bulk_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows (tuples in ``columns`` order). Table and column names are ours, never data."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy(conn, table, columns, rows)
        return
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        _sqlite_rows(rows),
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
) -> None:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE SET update... WHERE only_if``.

    ``only_if`` is SQL over ``{table}`` (the stored row) and ``excluded`` (the new one). Rows
    must have distinct conflict keys.
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
        _copy(conn, stage, columns, rows)
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {sets} WHERE {only_if}"
        )
        return
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {sets} WHERE {only_if}",
        _sqlite_rows(rows),
    )
