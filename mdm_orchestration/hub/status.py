"""What the hub holds, as counts (the keys of ``mdm status --json``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select

from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.hub.store import schema_revision
from mdm_orchestration.hub.tables import (
    CHANGES,
    CLEANSED,
    CLUSTERS,
    EXTRACTS,
    GOLDEN,
    HOUSEHOLDS,
    LANDING_SKIPS,
    MATCH_RUNS,
    ORGANISATION,
    PERSON,
    QUARANTINE,
    QUEUE,
    REVIEW,
    SOURCES,
    VERSIONS,
    XREF,
)

_LOADED = EXTRACTS.c.status == ExtractStatus.loaded.value


def hub_status(engine: Engine) -> dict[str, Any]:
    revision = schema_revision(engine)
    with engine.connect() as conn:
        per_source = _per_source_extracts(conn)
        records = _per_source_count(conn, SOURCES, per_source, "source_records")
        cleansed = _per_source_count(conn, CLEANSED, per_source, "cleansed_records")
        status: dict[str, Any] = {
            "schema_version": revision,
            **_extracts(conn),
            "source_record_versions": _count(conn, VERSIONS),
            "source_records": int(sum(records.values())),
            "quarantine_reasons": _quarantine_reasons(conn),
            # Cleansing: every loaded row is a cleansed record, a cleanse-quarantine row, or
            # pending.
            "cleansed_records": int(sum(cleansed.values())),
            **_cleansing(conn),
            **_matching(conn),
            "per_source": per_source,
            "pending_events": {},
            # Files the landing scan skipped, by name and reason (the hub's side only: Dagster
            # sees their counts).
            "skipped_landing_files": _skipped_landing_files(conn),
            # Syndication's dead-letter queue, per subscriber (counts; ``mdm syndicate dlq``).
            **_dead_letters(conn),
        }
    status.update(_mastering(engine))
    return status


def _count(conn: Connection, table: Table, *where: Any) -> int:  # noqa: ANN401
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _extracts(conn: Connection) -> dict[str, int]:
    """Extracts by status, and the rows the loaded ones landed, loaded and quarantined."""
    by_status = dict(
        conn.execute(select(EXTRACTS.c.status, func.count()).group_by(EXTRACTS.c.status)).all()
    )
    landed, loaded, quarantined = conn.execute(
        select(
            func.coalesce(func.sum(EXTRACTS.c.rows_landed), 0),
            func.coalesce(func.sum(EXTRACTS.c.rows_loaded), 0),
            func.coalesce(func.sum(EXTRACTS.c.rows_quarantined), 0),
        ).where(_LOADED)
    ).one()
    return {
        "extracts": int(by_status.get(ExtractStatus.loaded.value, 0)),
        "rejected_extracts": int(by_status.get(ExtractStatus.rejected.value, 0)),
        "duplicate_extracts": int(by_status.get(ExtractStatus.duplicate.value, 0)),
        "rows_landed": int(landed),
        "rows_loaded": int(loaded),
        "quarantined_rows": int(quarantined),
    }


def _per_source_extracts(conn: Connection) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        select(
            EXTRACTS.c.source,
            func.count(),
            func.sum(EXTRACTS.c.rows_landed),
            func.sum(EXTRACTS.c.rows_loaded),
            func.sum(EXTRACTS.c.rows_quarantined),
        )
        .where(_LOADED)
        .group_by(EXTRACTS.c.source)
        .order_by(EXTRACTS.c.source)
    ).all()
    return {
        source: {
            "extracts": int(n),
            "rows_landed": int(landed or 0),
            "rows_loaded": int(loaded or 0),
            "quarantined_rows": int(quarantined or 0),
        }
        for source, n, landed, loaded, quarantined in rows
    }


def _per_source_count(
    conn: Connection, table: Table, per_source: dict[str, dict[str, int]], key: str
) -> dict[str, int]:
    """Rows of ``table`` per source, also entered in ``per_source`` under ``key``."""
    counts = dict(conn.execute(select(table.c.source, func.count()).group_by(table.c.source)).all())
    for source, n in counts.items():
        per_source.setdefault(source, {})[key] = int(n)
    return counts


def _quarantine_reasons(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        select(QUARANTINE.c.reason, func.count())
        .group_by(QUARANTINE.c.reason)
        .order_by(QUARANTINE.c.reason)
    ).all()
    return {reason: int(n) for reason, n in rows}


def _skipped_landing_files(conn: Connection) -> list[dict[str, str]]:
    """The files the landing scan skipped, by path (``ingestion.record_skipped`` keeps them)."""
    rows = conn.execute(
        select(
            LANDING_SKIPS.c.path, LANDING_SKIPS.c.reason, LANDING_SKIPS.c.first_seen_at
        ).order_by(LANDING_SKIPS.c.path)
    ).all()
    return [
        {"path": r.path, "reason": r.reason, "first_seen_at": r.first_seen_at.isoformat()}
        for r in rows
    ]


def _cleansing(conn: Connection) -> dict[str, int]:
    by_stage = dict(
        conn.execute(select(QUARANTINE.c.stage, func.count()).group_by(QUARANTINE.c.stage)).all()
    )
    uncleansed = conn.execute(
        select(func.coalesce(func.sum(EXTRACTS.c.rows_loaded), 0)).where(
            _LOADED, EXTRACTS.c.cleansed_at.is_(None)
        )
    ).scalar_one()
    return {
        "cleanse_quarantined_rows": int(by_stage.get("cleanse", 0)),
        "versions_pending_cleansing": int(uncleansed),
    }


def _matching(conn: Connection) -> dict[str, int]:
    clustered, clusters = conn.execute(
        select(func.count(), func.count(CLUSTERS.c.cluster_id.distinct()))
    ).one()
    return {
        "clustered_records": int(clustered),
        "clusters": int(clusters),
        "review_queue": _count(conn, REVIEW, REVIEW.c.status == "pending"),
    }


def _mastering(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        by = dict(
            conn.execute(
                select(GOLDEN.c.party_type, func.count())
                .where(GOLDEN.c.status == "active")
                .group_by(GOLDEN.c.party_type)
            ).all()
        )
        by_status = dict(
            conn.execute(select(GOLDEN.c.status, func.count()).group_by(GOLDEN.c.status)).all()
        )
        counts = {
            "xref_records": _count(conn, XREF),
            "golden_changes": _count(conn, CHANGES),
            "multi_person_households": _count(conn, HOUSEHOLDS, HOUSEHOLDS.c.member_count > 1),
            "consolidation_queue": _count(conn, QUEUE),
        }
        last_match = conn.execute(
            select(MATCH_RUNS.c.mode, MATCH_RUNS.c.counts).order_by(MATCH_RUNS.c.id.desc()).limit(1)
        ).first()
    return {
        "golden_records": int(sum(by.values())),
        "golden_persons": int(by.get(PERSON, 0)),
        "golden_organisations": int(by.get(ORGANISATION, 0)),
        "golden_merged": int(by_status.get("merged", 0)),
        "golden_retired": int(by_status.get("retired", 0)),
        **counts,
        "last_match_run": {
            "mode": last_match.mode,
            **{k: v for k, v in last_match.counts.items() if not k.endswith("_model")},
        }
        if last_match
        else None,
    }


def _dead_letters(conn: Connection) -> dict[str, Any]:
    """Unresolved dead letters: per subscriber, events refused for good (``dead``), held
    behind them (``held``) and queued for a retry (``queued``)."""
    from mdm_orchestration.hub.tables import DEAD_LETTERS

    per: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        select(DEAD_LETTERS.c.subscriber, DEAD_LETTERS.c.state, func.count())
        .where(DEAD_LETTERS.c.state.in_(("dead", "held", "queued")))
        .group_by(DEAD_LETTERS.c.subscriber, DEAD_LETTERS.c.state)
        .order_by(DEAD_LETTERS.c.subscriber)
    ).all()
    for name, state, n in rows:
        per.setdefault(name, {"dead": 0, "held": 0, "queued": 0})[state] = int(n)
    return {
        "dead_lettered_events": sum(s["dead"] for s in per.values()),
        "dead_letters": per,
    }
