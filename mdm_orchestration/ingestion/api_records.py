"""Records written through the service (``POST /v1/sources/{source}/records``).

Each write is stored exactly as a row of an extract: a ledger row in ``extracts`` (status
``loaded``, a file name of ``api/<write id>``, never a value), the row through the same
:class:`~mdm_orchestration.ingestion.rows.RowLoader` (key checks, field lengths, the source's
updated-at, erasure tombstones), and so the same cleansing, matching and consolidation after
it. A row the loader would quarantine is refused instead (the caller is there to be told):
the transaction rolls back and nothing of it stays.

An ``Idempotency-Key`` makes a retry harmless: the write's answer is kept in ``api_writes``,
unique per (API key, idempotency key), so a retry gets the first answer and writes nothing,
also when the two arrive at once (the unique index decides).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from mdm_orchestration.config import HubConfig, SourceConfig
from mdm_orchestration.hub.models import ExtractStatus, source_record_id
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import API_WRITES, EXTRACTS, QUARANTINE, SOURCES, utcnow
from mdm_orchestration.ingestion.ledger import IngestOutcome, finish_extract, start_extract
from mdm_orchestration.ingestion.readers import RawRow
from mdm_orchestration.ingestion.rows import RowLoader

#: The ``file_name`` prefix of API-written extracts (the rest is the write's random id).
API_FILE_PREFIX = "api/"


class RecordRefused(ValueError):
    """The row would be quarantined: the field and the reason code (never the value)."""

    def __init__(self, field: str | None, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.reason = reason
        self.detail = detail


class IdempotencyConflict(ValueError):
    """The idempotency key was used before for a different request."""


@dataclass(frozen=True)
class ApiWriteResult:
    """The answer to a write, and whether it is a replay of an earlier one."""

    response: dict[str, Any]
    replayed: bool = False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _earlier(engine: Engine, api_key_id: str, idem_hash: str, request_hash: str) -> ApiWriteResult:
    with engine.connect() as conn:
        row = conn.execute(
            select(API_WRITES.c.request_hash, API_WRITES.c.response).where(
                API_WRITES.c.api_key_id == api_key_id,
                API_WRITES.c.idempotency_key_hash == idem_hash,
            )
        ).first()
    if row is None:
        raise LookupError("no earlier write under this idempotency key")
    if row.request_hash != request_hash:
        raise IdempotencyConflict("the Idempotency-Key was used for a different request")
    return ApiWriteResult(dict(row.response), replayed=True)


def write_api_record(
    engine: Engine,
    config: HubConfig,
    source: SourceConfig,
    values: dict[str, str | None],
    *,
    api_key_id: str,
    request_hash: str,
    idempotency_key: str | None = None,
) -> ApiWriteResult:
    """Store one record of an API-written source as a one-row extract (see the module's
    docstring). Raises :class:`RecordRefused` (nothing written) or
    :class:`IdempotencyConflict`."""
    idem_hash = _digest(f"{api_key_id}\x1f{idempotency_key}") if idempotency_key else None
    if idem_hash is not None:
        try:
            return _earlier(engine, api_key_id, idem_hash, request_hash)
        except LookupError:
            pass
    write_id = uuid.uuid4().hex
    outcome = IngestOutcome(
        source=source.name,
        file_name=f"{API_FILE_PREFIX}{write_id}",
        status=ExtractStatus.loaded,
        content_hash=_digest(f"api\x1f{write_id}"),
    )
    key = (values.get(source.key_column) or "").strip()
    rid = source_record_id(source.name, key)
    try:
        with write_transaction(engine) as conn:
            existed = (
                conn.execute(select(SOURCES.c.id).where(SOURCES.c.id == rid)).first() is not None
            )
            extract_id = start_extract(conn, outcome, len(repr(values)), None)
            loader = RowLoader(conn, source, extract_id, config.ingest.max_field_length, outcome)
            loader.load([RawRow(1, values)], 1)
            if outcome.rows_quarantined:
                q = conn.execute(
                    select(QUARANTINE.c.field, QUARANTINE.c.reason, QUARANTINE.c.detail).where(
                        QUARANTINE.c.extract_id == extract_id
                    )
                ).first()
                assert q is not None
                raise RecordRefused(q.field, q.reason, q.detail or q.reason)
            finish_extract(conn, extract_id, outcome)
            current = conn.execute(
                select(SOURCES.c.current_extract_id).where(SOURCES.c.id == rid)
            ).scalar_one()
            response = {
                "source": source.name,
                "source_key": key,
                "source_record_id": rid,
                "write_id": write_id,
                "extract_id": extract_id,
                "status": "updated" if existed else "created",
                # An older version (by the source's updated-at) is kept but is not current.
                "current": current == extract_id,
            }
            conn.execute(
                insert(API_WRITES).values(
                    extract_id=extract_id,
                    source=source.name,
                    source_record_id=rid,
                    api_key_id=api_key_id,
                    idempotency_key_hash=idem_hash,
                    request_hash=request_hash,
                    response=response,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        # The same idempotency key committed first in a concurrent request.
        if idem_hash is None:
            raise
        return _earlier(engine, api_key_id, idem_hash, request_hash)
    return ApiWriteResult(response)


def pending_api_writes(engine: Engine, after_extract_id: int = 0) -> tuple[int, int]:
    """``(writes not cleansed yet, the newest write's extract id)`` among API writes after
    ``after_extract_id``: what the API-writes sensor requests a reconsolidation for."""
    with engine.connect() as conn:
        pending, newest = conn.execute(
            select(func.count(), func.max(EXTRACTS.c.id)).where(
                EXTRACTS.c.id > after_extract_id,
                EXTRACTS.c.status == ExtractStatus.loaded.value,
                EXTRACTS.c.cleansed_at.is_(None),
                EXTRACTS.c.id.in_(select(API_WRITES.c.extract_id)),
            )
        ).one()
    return int(pending), int(newest or 0)
