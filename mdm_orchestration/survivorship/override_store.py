"""Attribute overrides in the hub: what a consolidation reads (the active overrides of the golden
records it plans, the golden records with an override not yet applied) and writes (what it did
with each, in its own transaction), and the history rows every change of an override leaves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from mdm_orchestration.hub.tables import (
    ATTRIBUTE_OVERRIDES,
    OVERRIDE_HISTORY,
    QUEUE,
    XREF,
    in_chunks,
)
from mdm_orchestration.survivorship.overrides import APPLIED, Override, OverrideOutcome

ACTIVE, RETIRED, REMOVED = "active", "retired", "removed"
PENDING_REVIEW, REVIEWED = "pending", "done"
#: Who a consolidation's changes of an override are recorded as.
CONSOLIDATION = "consolidation"

_O = ATTRIBUTE_OVERRIDES.c


def active_overrides(conn: Connection, golden_ids: set[str] | None) -> dict[str, list[Override]]:
    """The active overrides of the golden records named (all, with ``None``), by golden id."""
    query = select(
        _O.id,
        _O.golden_id,
        _O.attribute_group,
        _O.kind,
        _O.record_id,
        _O.pinned,
        _O.baseline,
        _O.applied_at,
    ).where(_O.status == ACTIVE)
    conditions = [None] if golden_ids is None else list(in_chunks(_O.golden_id, golden_ids))
    out: dict[str, list[Override]] = {}
    for cond in conditions:
        for r in conn.execute(query if cond is None else query.where(cond)).mappings():
            out.setdefault(r["golden_id"], []).append(
                Override(
                    override_id=r["id"],
                    golden_id=r["golden_id"],
                    group=r["attribute_group"],
                    kind=r["kind"],
                    record_id=r["record_id"],
                    pinned=dict(r["pinned"] or {}),
                    baseline=dict(r["baseline"] or {}),
                    applied=r["applied_at"] is not None,
                )
            )
    return out


def unapplied_goldens(conn: Connection) -> set[str]:
    """Golden records with an active override that no consolidation has applied yet."""
    return set(
        conn.execute(
            select(_O.golden_id).where(_O.status == ACTIVE, _O.applied_at.is_(None)).distinct()
        ).scalars()
    )


def members_of(conn: Connection, golden_ids: Iterable[str]) -> set[str]:
    """The source records of the golden records named (the cross-reference)."""
    out: set[str] = set()
    for cond in in_chunks(XREF.c.golden_id, set(golden_ids)):
        out.update(conn.execute(select(XREF.c.record_id).where(cond)).scalars())
    return out


def queue_golden(conn: Connection, golden_id: str) -> int:
    """Queue a golden record's source records for the next consolidation; how many."""
    members = members_of(conn, [golden_id])
    queued: set[str] = set()
    for cond in in_chunks(QUEUE.c.record_id, members):
        queued.update(conn.execute(select(QUEUE.c.record_id).where(cond)).scalars())
    fresh = sorted(members - queued)
    if fresh:
        conn.execute(insert(QUEUE), [{"record_id": r} for r in fresh])
    return len(members)


def write_history(
    conn: Connection,
    override_id: int,
    golden_id: str,
    action: str,
    actor: str,
    at: datetime,
    reason: str | None = None,
    version: int | None = None,
    run_id: str | None = None,
) -> None:
    conn.execute(
        insert(OVERRIDE_HISTORY).values(
            override_id=override_id,
            golden_id=golden_id,
            action=action,
            at=at,
            actor=actor[:64],
            reason=reason,
            version=version,
            run_id=None if run_id is None else run_id[:64],
        )
    )


def write_outcomes(
    conn: Connection,
    outcomes: Iterable[OverrideOutcome],
    versions: Mapping[str, int],
    run_id: str | None,
    now: datetime,
) -> None:
    """A consolidation's outcomes, in its transaction: an override applied for the first time
    records the golden record's version; a retired one ends and waits for a steward's review.
    Only overrides still active are touched (one removed or replaced while the consolidation
    planned stays as the steward left it)."""
    for out in outcomes:
        version = versions.get(out.golden_id)
        if out.outcome == APPLIED:
            values: dict[str, object] = {"applied_at": now, "applied_version": version}
            action, reason = "applied", None
        else:
            values = {
                "status": RETIRED,
                "ended_at": now,
                "ended_by": CONSOLIDATION,
                "end_reason": out.reason,
                "review_status": PENDING_REVIEW,
            }
            action, reason = "retired", out.reason
        done = conn.execute(
            update(ATTRIBUTE_OVERRIDES)
            .where(_O.id == out.override_id, _O.status == ACTIVE)
            .values(**values)
        )
        if done.rowcount:
            write_history(
                conn,
                out.override_id,
                out.golden_id,
                action,
                CONSOLIDATION,
                now,
                reason=reason,
                version=version,
                run_id=run_id,
            )


def forget_overrides(
    conn: Connection, golden_ids: Iterable[str], record_ids: Iterable[str] = ()
) -> int:
    """An erasure's part, in its transaction: the overrides of the erased person's golden
    records, and any pin of one of their ``record_ids`` (on another golden record, its baseline
    holds that record's values), go with their history (pinned values and reasons may hold
    their data). Returns how many overrides went."""
    ids = set(golden_ids)
    records = set(record_ids)
    doomed: set[int] = set()
    for cond in in_chunks(_O.golden_id, ids):
        doomed.update(conn.execute(select(_O.id).where(cond)).scalars())
    for cond in in_chunks(_O.record_id, records):
        doomed.update(conn.execute(select(_O.id).where(cond)).scalars())
    for cond in in_chunks(OVERRIDE_HISTORY.c.golden_id, ids):
        conn.execute(delete(OVERRIDE_HISTORY).where(cond))
    gone = 0
    for cond in in_chunks(OVERRIDE_HISTORY.c.override_id, doomed):
        conn.execute(delete(OVERRIDE_HISTORY).where(cond))
    for cond in in_chunks(_O.id, doomed):
        gone += conn.execute(delete(ATTRIBUTE_OVERRIDES).where(cond)).rowcount or 0
    return gone
