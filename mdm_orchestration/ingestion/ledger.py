"""The extracts ledger: one row per landed file, loaded, duplicate or rejected.

The same bytes are ingested once per source: the ledger's unique index on (source, content hash)
for loaded extracts decides, also against a concurrent run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)

from mdm_orchestration.config import HubConfig
from mdm_orchestration.config.sources import CompleteWhen
from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import EXTRACTS, QUARANTINE, VERSIONS, utcnow
from mdm_orchestration.ingestion.landing import (
    MANIFEST_CODES,
    ManifestMismatch,
    manifest_path,
    verify_manifest,
)

#: The ``stage`` of the quarantine rows ingestion writes.
STAGE = "ingest"


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


class RowsAccounted(NamedTuple):
    """An extract's data rows as the ledger counted them, and as the hub stores them."""

    rows_landed: int
    rows_loaded: int  # source-record versions stored
    rows_quarantined: int  # ingest quarantine rows stored

    @property
    def balanced(self) -> bool:
        return self.rows_loaded + self.rows_quarantined == self.rows_landed


def _manifest_rejection() -> ColumnElement[bool]:
    """Ledger rows that rejected a file for its manifest (the pair, not the bytes)."""
    return or_(*(EXTRACTS.c.reason.like(f"{code}:%") for code in MANIFEST_CODES))


def _bytes_rejection() -> ColumnElement[bool]:
    """Ledger rows that rejected the bytes themselves (every other rejection)."""
    return or_(EXTRACTS.c.reason.is_(None), not_(_manifest_rejection()))


def is_manifest_rejection(reason: str | None) -> bool:
    return bool(reason) and any(str(reason).startswith(f"{c}:") for c in MANIFEST_CODES)


def _earlier_rejection(conn: Connection, outcome: IngestOutcome) -> int | None:
    """The ledger row that already rejected this content (or, before the content could be
    hashed, this file name for the same reason). A manifest rejection and a rejection of the
    bytes themselves are told apart: each is recorded once per content."""
    query = select(EXTRACTS.c.id).where(
        EXTRACTS.c.source == outcome.source[:40],
        EXTRACTS.c.status == ExtractStatus.rejected.value,
        _manifest_rejection() if is_manifest_rejection(outcome.reason) else _bytes_rejection(),
    )
    if outcome.content_hash:
        query = query.where(EXTRACTS.c.content_hash == outcome.content_hash)
    else:
        query = query.where(
            EXTRACTS.c.content_hash == "",
            EXTRACTS.c.file_name == outcome.file_name[:512],
            EXTRACTS.c.reason == outcome.reason,
        )
    return conn.execute(query.order_by(EXTRACTS.c.id).limit(1)).scalar_one_or_none()


def record_attempt(engine: Engine, outcome: IngestOutcome, size: int, run_id: str | None) -> int:
    """Write a ledger row for a rejected or duplicate drop, in its own transaction.

    A rejection is recorded once per content: the same bytes rejected again (a rerun, a manual
    launch, a copy under another name) return the earlier row's id and write nothing.
    """
    now = utcnow()
    with write_transaction(engine) as conn:
        if outcome.status is ExtractStatus.rejected:
            earlier = _earlier_rejection(conn, outcome)
            if earlier is not None:
                return int(earlier)
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


def start_extract(conn: Connection, outcome: IngestOutcome, size: int, run_id: str | None) -> int:
    """The ledger row of a file being loaded, inside the loading transaction: its id."""
    result = conn.execute(
        insert(EXTRACTS).values(
            source=outcome.source,
            file_name=outcome.file_name[:512],
            content_hash=outcome.content_hash,
            size_bytes=size,
            status=ExtractStatus.loaded.value,
            rows_landed=0,
            rows_loaded=0,
            rows_quarantined=0,
            unmapped_columns=[],
            run_id=run_id,
            started_at=utcnow(),
        )
    )
    return int(result.inserted_primary_key[0])


def finish_extract(conn: Connection, extract_id: int, outcome: IngestOutcome) -> None:
    """Stamp the loaded file's counts and its end time on its ledger row."""
    conn.execute(
        update(EXTRACTS)
        .where(EXTRACTS.c.id == extract_id)
        .values(
            rows_landed=outcome.rows_landed,
            rows_loaded=outcome.rows_loaded,
            rows_quarantined=outcome.rows_quarantined,
            unmapped_columns=outcome.unmapped_columns,
            finished_at=utcnow(),
        )
    )


def loaded_extract_id(engine: Engine, source: str, content_hash: str) -> int | None:
    """The extract that already loaded these bytes for this source, if any."""
    with engine.connect() as conn:
        return conn.execute(
            select(EXTRACTS.c.id).where(
                EXTRACTS.c.source == source,
                EXTRACTS.c.content_hash == content_hash,
                EXTRACTS.c.status == ExtractStatus.loaded.value,
            )
        ).scalar_one_or_none()


def record_rejection(
    engine: Engine,
    *,
    source: str,
    file_name: str,
    content_hash: str,
    size: int,
    code: str,
    message: str,
    run_id: str | None,
) -> int:
    """A rejection decided outside the loader (a manifest that does not vouch for the file):
    its ledger row, recorded once per content like every rejection. Nothing else is written."""
    outcome = IngestOutcome(
        source=source,
        file_name=file_name,
        status=ExtractStatus.rejected,
        content_hash=content_hash,
        reason=f"{code}: {message}",
    )
    return record_attempt(engine, outcome, size, run_id)


def check_manifest(
    engine: Engine,
    config: HubConfig,
    path: Path,
    landing_root: Path,
    *,
    run_id: str | None = None,
) -> str | None:
    """Before a landed file is ingested: the sha256 its manifest vouches for (``None`` when it
    has none and its source does not require one).

    Raises :class:`~mdm_orchestration.ingestion.landing.AwaitingManifest` (nothing recorded:
    the file is not complete yet) or, after recording the rejection in the ledger (once per
    content; the same bytes under a corrected manifest are tried again),
    :class:`~mdm_orchestration.ingestion.landing.ManifestMismatch`. Paths the loader itself
    rejects (outside the landing root, no source) are left to it.
    """
    root = landing_root.resolve()
    real = path.resolve()
    if not real.is_relative_to(root) or not real.is_file():
        return None
    relative = real.relative_to(root).as_posix()
    source = config.source_for_folder(relative.split("/", 1)[0]) if "/" in relative else None
    if source is None:
        return None
    required = source.complete_when is CompleteWhen.manifest
    mpath = manifest_path(path)
    if not required and not (mpath.exists() or mpath.is_symlink()):
        return None
    digest = hashlib.sha256()
    with real.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    try:
        return verify_manifest(path, relative, sha, required=required, landing_root=root)
    except ManifestMismatch as exc:
        record_rejection(
            engine,
            source=source.name,
            file_name=relative,
            content_hash=sha,
            size=real.stat().st_size,
            code=exc.code,
            message=exc.message,
            run_id=run_id,
        )
        raise


def rejected_extract_id(engine: Engine, source: str, content_hash: str) -> int | None:
    """The ledger row that rejected these bytes for this source, unless they were loaded since
    (a configuration fix can make rejected bytes loadable). A rejection for a manifest does
    not count: it rejected the file with that manifest, and a corrected manifest is tried."""
    with engine.connect() as conn:
        rejected = conn.execute(
            select(func.min(EXTRACTS.c.id)).where(
                and_(
                    EXTRACTS.c.source == source,
                    EXTRACTS.c.content_hash == content_hash,
                    EXTRACTS.c.status == ExtractStatus.rejected.value,
                    _bytes_rejection(),
                )
            )
        ).scalar_one_or_none()
    if rejected is None or loaded_extract_id(engine, source, content_hash) is not None:
        return None
    return int(rejected)


def rows_accounted(engine: Engine, extract_id: int) -> RowsAccounted:
    """Recount a loaded extract's stored rows against the rows its ledger row says landed."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(VERSIONS).where(VERSIONS.c.extract_id == extract_id)
        ).scalar_one()
        quarantined = conn.execute(
            select(func.count())
            .select_from(QUARANTINE)
            .where(QUARANTINE.c.extract_id == extract_id, QUARANTINE.c.stage == STAGE)
        ).scalar_one()
        landed = conn.execute(
            select(EXTRACTS.c.rows_landed).where(EXTRACTS.c.id == extract_id)
        ).scalar_one()
    return RowsAccounted(int(landed), int(stored), int(quarantined))
