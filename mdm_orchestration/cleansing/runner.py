"""Cleansing against the hub: every loaded extract not yet cleansed, one transaction each.

The watermark is ``extracts.cleansed_at``: an extract's versions are cleansed, written (records
and quarantine rows) and the extract stamped in one transaction, so a crash leaves each extract
either wholly cleansed or untouched, and a re-run with nothing new reads one small query.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from sqlalchemy import Connection, Engine, Text, and_, case, cast, func, select, type_coerce, update

from mdm_orchestration.cleansing.parallel import cleanse_batches, resolve_workers
from mdm_orchestration.cleansing.pipeline import DELETED, CleanseResult
from mdm_orchestration.cleansing.quality import FILLED_BY, VALID_BY
from mdm_orchestration.cleansing.stored import (
    CLEANSED_TABLE_COLUMNS,
    STAGE,
    StoredForm,
    StoredResult,
    VersionColumns,
)
from mdm_orchestration.config import HubConfig
from mdm_orchestration.hub.bulk import bulk_insert, stored_datetime
from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.hub.store import reconsolidation_lock, write_transaction
from mdm_orchestration.hub.tables import (
    CLEANSED,
    EXTRACTS,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    VERSIONS,
    utcnow,
)


@dataclass
class CleanseSummary:
    """What one cleansing run did: counts only, never values."""

    extracts: int = 0
    versions: int = 0
    cleansed: int = 0
    quarantined: int = 0
    skipped_extracts: int = 0  # their source is no longer configured; left for a later run
    per_source: dict[str, dict[str, int]] = field(default_factory=dict)
    rule_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> rule -> n

    def add(self, source: str, result: CleanseResult) -> None:
        self.add_counts(source, len(result.records), len(result.quarantine), result.rule_counts)

    def add_counts(
        self, source: str, cleansed: int, quarantined: int, rule_counts: dict[str, int]
    ) -> None:
        """What :meth:`add` adds, from the counts of a result."""
        self.versions += cleansed + quarantined
        self.cleansed += cleansed
        self.quarantined += quarantined
        counts = self.per_source.setdefault(source, {"cleansed": 0, "quarantined": 0})
        counts["cleansed"] += cleansed
        counts["quarantined"] += quarantined
        rules = Counter(self.rule_counts.get(source, {}))
        rules.update(rule_counts)
        self.rule_counts[source] = dict(sorted(rules.items()))

    @property
    def rule_totals(self) -> dict[str, int]:
        """How many records failed each rule, over every source."""
        totals: dict[str, int] = {}
        for counts in self.rule_counts.values():
            for rule, n in counts.items():
                totals[rule] = totals.get(rule, 0) + n
        return totals


class PendingExtract(NamedTuple):
    extract_id: int
    source: str


def pending_extracts(conn: Connection) -> list[PendingExtract]:
    """Loaded extracts whose rows are not cleansed yet, oldest first."""
    rows = conn.execute(
        select(EXTRACTS.c.id, EXTRACTS.c.source)
        .where(EXTRACTS.c.status == ExtractStatus.loaded.value, EXTRACTS.c.cleansed_at.is_(None))
        .order_by(EXTRACTS.c.id)
    )
    return [PendingExtract(int(r.id), str(r.source)) for r in rows]


def _read_versions(conn: Connection, extract_id: int, after: int, limit: int) -> VersionColumns:
    """The next ``limit`` versions of the extract after row ``after``, as one tuple per column
    of ``stored.VERSION_COLUMNS`` (``()`` when there are none), ``raw`` as its stored JSON
    text: decoding it and building the batch's frame is the workers' part, and text crosses to
    a worker process several times faster than the dicts it decodes into."""
    raw = VERSIONS.c.raw
    # On SQLite the column is text already; psycopg2 decodes a json column itself, a cast
    # (which gives the text as stored) keeps it from doing so.
    raw_text = cast(raw, Text) if conn.dialect.name == "postgresql" else type_coerce(raw, Text)
    rows = conn.execute(
        select(
            VERSIONS.c.extract_id,
            VERSIONS.c.row_number,
            VERSIONS.c.source_record_id,
            VERSIONS.c.source_key,
            raw_text,
            VERSIONS.c.source_updated_at,
        )
        .where(VERSIONS.c.extract_id == extract_id, VERSIONS.c.row_number > after)
        .order_by(VERSIONS.c.row_number)
        .limit(limit)
    ).all()
    return tuple(zip(*rows, strict=True))


def _write(conn: Connection, result: StoredResult) -> None:
    bulk_insert(conn, "cleansed_records", CLEANSED_TABLE_COLUMNS, result.records, stored=True)
    bulk_insert(conn, "quarantine", QUARANTINE_COLUMNS, result.quarantine, stored=True)


def cleanse_extract(
    engine: Engine,
    config: HubConfig,
    extract_id: int,
    source_name: str,
    *,
    today: date,
    chunk_rows: int = 50_000,
    summary: CleanseSummary,
) -> None:
    """Cleanse one extract's versions in one transaction (earlier results for it are replaced)."""
    source = config.sources[source_name]
    now = utcnow()
    workers = resolve_workers(config.quality.workers)
    with write_transaction(engine) as conn:
        conn.execute(CLEANSED.delete().where(CLEANSED.c.extract_id == extract_id))
        conn.execute(
            QUARANTINE.delete().where(
                QUARANTINE.c.extract_id == extract_id, QUARANTINE.c.stage == STAGE
            )
        )

        def batches() -> Iterator[VersionColumns]:
            after = 0
            while True:
                batch = _read_versions(conn, extract_id, after, chunk_rows)
                if not batch:
                    return
                yield batch
                after = int(batch[1][-1])

        to_text = stored_datetime(conn)
        form = StoredForm(to_text, to_text(now))
        for result in cleanse_batches(
            batches(), source, config.quality, today, workers, stored=form
        ):
            _write(conn, result)
            summary.add_counts(
                source_name, len(result.records), len(result.quarantine), result.rule_counts
            )
        conn.execute(update(EXTRACTS).where(EXTRACTS.c.id == extract_id).values(cleansed_at=now))
    summary.extracts += 1


def cleanse_pending(
    engine: Engine,
    config: HubConfig,
    *,
    today: date | None = None,
    rebuild: bool = False,
    chunk_rows: int = 50_000,
) -> CleanseSummary:
    """Cleanse every loaded extract not cleansed yet; with ``rebuild``, all of them again
    (after a change of cleansing rules). Idempotent: with nothing new it writes nothing.

    One run at a time (the hub's run lock, as matching and consolidation take it): a second
    run started meanwhile waits, then finds the extracts cleansed, instead of cleansing them
    again or failing on the first one's rows."""
    today = today or utcnow().date()
    summary = CleanseSummary()
    with reconsolidation_lock(engine):
        if rebuild:
            with write_transaction(engine) as conn:
                conn.execute(update(EXTRACTS).values(cleansed_at=None))
        with engine.connect() as conn:
            pending = pending_extracts(conn)
        for extract_id, source_name in pending:
            if source_name not in config.sources:
                summary.skipped_extracts += 1
                continue
            cleanse_extract(
                engine,
                config,
                extract_id,
                source_name,
                today=today,
                chunk_rows=chunk_rows,
                summary=summary,
            )
    return summary


@dataclass
class SourceQualityState:
    """The hub-wide state of one source after cleansing, for the asset checks."""

    cleansed: int
    quarantined: int
    mean_score: float | None
    completeness: dict[str, float]  # required field -> share filled and valid

    @property
    def quarantine_rate(self) -> float:
        total = self.cleansed + self.quarantined
        return self.quarantined / total if total else 0.0


def quality_state(engine: Engine, config: HubConfig) -> dict[str, SourceQualityState]:
    """Per configured source: cleansed and quarantined counts, mean score, completeness."""
    out: dict[str, SourceQualityState] = {}
    with engine.connect() as conn:
        quarantined = dict(
            conn.execute(
                select(EXTRACTS.c.source, func.count())
                .select_from(QUARANTINE.join(EXTRACTS, EXTRACTS.c.id == QUARANTINE.c.extract_id))
                .where(QUARANTINE.c.stage == STAGE, QUARANTINE.c.reason != DELETED)
                .group_by(EXTRACTS.c.source)
            ).all()
        )
        for name in config.sources:
            required = config.quality.required_for(name)
            filled = []
            for fld in required:
                cond = CLEANSED.c[FILLED_BY[fld]].is_not(None)
                if fld in VALID_BY:
                    cond = and_(cond, CLEANSED.c[VALID_BY[fld]].is_(True))
                filled.append(func.sum(case((cond, 1), else_=0)))
            row = conn.execute(
                select(func.count(), func.avg(CLEANSED.c.quality_score), *filled).where(
                    CLEANSED.c.source == name
                )
            ).one()
            count = int(row[0])
            out[name] = SourceQualityState(
                cleansed=count,
                quarantined=int(quarantined.get(name, 0)),
                mean_score=round(float(row[1]), 4) if row[1] is not None else None,
                completeness={
                    fld: round(float(row[2 + i] or 0) / count, 4) if count else 1.0
                    for i, fld in enumerate(required)
                },
            )
    return out
