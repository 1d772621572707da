"""What the hub holds, as counts (the keys of ``mdm status --json``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from mdm_orchestration.hub.models import (
    CleansedRecord,
    ConsolidationQueue,
    Extract,
    ExtractStatus,
    GoldenChange,
    GoldenRecord,
    GoldenXref,
    HouseholdRow,
    MatchCluster,
    MatchRun,
    QuarantineRow,
    ReviewItem,
    SourceRecord,
    SourceRecordVersion,
)
from mdm_orchestration.hub.store import schema_revision


def hub_status(engine: Engine) -> dict[str, Any]:
    extracts = Extract.__table__
    quarantine = QuarantineRow.__table__
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(select(extracts.c.status, func.count()).group_by(extracts.c.status)).all()
        )
        landed, loaded, quarantined = conn.execute(
            select(
                func.coalesce(func.sum(extracts.c.rows_landed), 0),
                func.coalesce(func.sum(extracts.c.rows_loaded), 0),
                func.coalesce(func.sum(extracts.c.rows_quarantined), 0),
            ).where(extracts.c.status == ExtractStatus.loaded.value)
        ).one()
        per_source: dict[str, dict[str, int]] = {}
        rows = conn.execute(
            select(
                extracts.c.source,
                func.count(),
                func.sum(extracts.c.rows_landed),
                func.sum(extracts.c.rows_loaded),
                func.sum(extracts.c.rows_quarantined),
            )
            .where(extracts.c.status == ExtractStatus.loaded.value)
            .group_by(extracts.c.source)
            .order_by(extracts.c.source)
        ).all()
        for source, n, s_landed, s_loaded, s_quarantined in rows:
            per_source[source] = {
                "extracts": int(n),
                "rows_landed": int(s_landed or 0),
                "rows_loaded": int(s_loaded or 0),
                "quarantined_rows": int(s_quarantined or 0),
            }
        records = dict(
            conn.execute(
                select(SourceRecord.__table__.c.source, func.count()).group_by(
                    SourceRecord.__table__.c.source
                )
            ).all()
        )
        for source, n in records.items():
            per_source.setdefault(source, {})["source_records"] = int(n)
        versions = conn.execute(
            select(func.count()).select_from(SourceRecordVersion.__table__)
        ).scalar_one()
        cleansed = dict(
            conn.execute(
                select(CleansedRecord.__table__.c.source, func.count()).group_by(
                    CleansedRecord.__table__.c.source
                )
            ).all()
        )
        for source, n in cleansed.items():
            per_source.setdefault(source, {})["cleansed_records"] = int(n)
        uncleansed = conn.execute(
            select(func.coalesce(func.sum(extracts.c.rows_loaded), 0)).where(
                extracts.c.status == ExtractStatus.loaded.value, extracts.c.cleansed_at.is_(None)
            )
        ).scalar_one()
        by_stage = dict(
            conn.execute(
                select(quarantine.c.stage, func.count()).group_by(quarantine.c.stage)
            ).all()
        )
        clusters = conn.execute(
            select(func.count(), func.count(MatchCluster.__table__.c.cluster_id.distinct()))
        ).one()
        review_queue = conn.execute(
            select(func.count())
            .select_from(ReviewItem.__table__)
            .where(ReviewItem.__table__.c.status == "pending")
        ).scalar_one()
        quarantine_reasons = dict(
            conn.execute(
                select(quarantine.c.reason, func.count())
                .group_by(quarantine.c.reason)
                .order_by(quarantine.c.reason)
            ).all()
        )
    status: dict[str, Any] = {
        "schema_version": schema_revision(engine),
        "extracts": int(by_status.get(ExtractStatus.loaded.value, 0)),
        "rejected_extracts": int(by_status.get(ExtractStatus.rejected.value, 0)),
        "duplicate_extracts": int(by_status.get(ExtractStatus.duplicate.value, 0)),
        "rows_landed": int(landed),
        "rows_loaded": int(loaded),
        "quarantined_rows": int(quarantined),
        "source_record_versions": int(versions),
        "source_records": int(sum(records.values())),
        "quarantine_reasons": {k: int(v) for k, v in quarantine_reasons.items()},
        # Cleansing: every loaded row is a cleansed record, a cleanse-quarantine row, or pending.
        "cleansed_records": int(sum(cleansed.values())),
        "cleanse_quarantined_rows": int(by_stage.get("cleanse", 0)),
        "versions_pending_cleansing": int(uncleansed),
        "clustered_records": int(clusters[0]),
        "clusters": int(clusters[1]),
        "review_queue": int(review_queue),
        "per_source": per_source,
        "pending_events": {},
    }
    status.update(_mastering(engine))
    return status


def _mastering(engine: Engine) -> dict[str, Any]:
    golden = GoldenRecord.__table__
    with engine.connect() as conn:
        by = dict(
            conn.execute(
                select(golden.c.party_type, func.count())
                .where(golden.c.status == "active")
                .group_by(golden.c.party_type)
            ).all()
        )
        by_status = dict(
            conn.execute(select(golden.c.status, func.count()).group_by(golden.c.status)).all()
        )
        xref = conn.execute(select(func.count()).select_from(GoldenXref.__table__)).scalar_one()
        changes = conn.execute(
            select(func.count()).select_from(GoldenChange.__table__)
        ).scalar_one()
        queue = conn.execute(
            select(func.count()).select_from(ConsolidationQueue.__table__)
        ).scalar_one()
        last_match = conn.execute(
            select(MatchRun.__table__.c.mode, MatchRun.__table__.c.counts)
            .order_by(MatchRun.__table__.c.id.desc())
            .limit(1)
        ).first()
        multi = conn.execute(
            select(func.count())
            .select_from(HouseholdRow.__table__)
            .where(HouseholdRow.__table__.c.member_count > 1)
        ).scalar_one()
    return {
        "golden_records": int(sum(by.values())),
        "golden_persons": int(by.get("person", 0)),
        "golden_organisations": int(by.get("organisation", 0)),
        "golden_merged": int(by_status.get("merged", 0)),
        "golden_retired": int(by_status.get("retired", 0)),
        "xref_records": int(xref),
        "golden_changes": int(changes),
        "multi_person_households": int(multi),
        "consolidation_queue": int(queue),
        "last_match_run": {
            "mode": last_match.mode,
            **{k: v for k, v in last_match.counts.items() if not k.endswith("_model")},
        }
        if last_match
        else None,
    }
