"""What stewards do with attribute overrides (the workbench and ``mdm override`` call these):
pin a value or a source record for one attribute group of a golden record, remove a pin, mark
a retired pin as looked at, and read the overrides with their history and whether a
consolidation has applied them yet.

A pin or a removal is one transaction: the override row, its history row, and the golden
record's source records queued for the next consolidation, which applies it (survivorship's
rules, then the overrides, last).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from mdm_orchestration.config import HubConfig
from mdm_orchestration.hub.store import as_utc, write_transaction
from mdm_orchestration.hub.tables import (
    ATTRIBUTE_OVERRIDES,
    CLEANSED,
    CURRENT_CLEANSED,
    GOLDEN,
    OVERRIDE_HISTORY,
    XREF,
    in_chunks,
    utcnow,
)
from mdm_orchestration.survivorship.override_store import (
    ACTIVE,
    PENDING_REVIEW,
    REMOVED,
    RETIRED,
    REVIEWED,
    queue_golden,
    write_history,
)
from mdm_orchestration.survivorship.overrides import (
    RECORD,
    VALUE,
    group_values,
    pinned_values,
)
from mdm_orchestration.survivorship.reading import SURVIVOR_COLUMNS
from mdm_orchestration.survivorship.rows import ACTIVE as GOLDEN_ACTIVE
from mdm_orchestration.survivorship.rules import PUBLIC_FIELDS, Survivor

_O = ATTRIBUTE_OVERRIDES.c


class OverrideError(ValueError):
    """A pin or removal that cannot be done as asked (the message says why)."""


@dataclass(frozen=True)
class AttributeOverrideView:
    """An override as a steward sees it. ``state``: ``pending`` (pinned, not applied yet),
    ``applied``, ``retired`` (the sources changed under it), ``removed``, or
    ``removal pending`` (removed or retired, and the golden record still shows it)."""

    id: int
    golden_id: str
    group: str
    kind: str
    record_id: str | None
    source: str | None
    source_key: str | None
    pinned: dict[str, Any]
    status: str
    state: str
    reason: str
    created_by: str
    created_at: datetime
    applied_at: datetime | None
    applied_version: int | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    review_status: str | None

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        for k in ("created_at", "applied_at", "ended_at"):
            out[k] = None if out[k] is None else out[k].isoformat(timespec="seconds")
        return out


@dataclass(frozen=True)
class OverrideEvent:
    override_id: int
    golden_id: str
    action: str
    at: datetime
    actor: str
    reason: str | None
    version: int | None


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise OverrideError("give a reason: it is kept with the override")
    return text[:1000]


def _active_golden(conn: Connection, golden_id: str) -> str:
    status = conn.execute(
        select(GOLDEN.c.status).where(GOLDEN.c.golden_id == golden_id)
    ).scalar_one_or_none()
    if status is None:
        raise OverrideError(f"no golden record {golden_id!r}")
    if status != GOLDEN_ACTIVE:
        raise OverrideError(f"golden record {golden_id} is {status}: pin on the active one")
    return golden_id


def _member_records(conn: Connection, golden_id: str) -> list[dict[str, Any]]:
    """The golden record's source records as survivorship reads them (current versions)."""
    ids = set(conn.execute(select(XREF.c.record_id).where(XREF.c.golden_id == golden_id)).scalars())
    query = select(*[CLEANSED.c[c] for c in SURVIVOR_COLUMNS]).select_from(CURRENT_CLEANSED)
    out: list[dict[str, Any]] = []
    for cond in in_chunks(CLEANSED.c.source_record_id, ids):
        out += [dict(r) for r in conn.execute(query.where(cond)).mappings()]
    return sorted(out, key=lambda r: r["source_record_id"])


def _pinned_record(records: list[dict[str, Any]], reference: str, golden_id: str) -> dict[str, Any]:
    """A member given as ``SOURCE:KEY`` or by its record id."""
    for r in records:
        if reference in (r["source_record_id"], f"{r['source']}:{r['source_key']}"):
            return r
    raise OverrideError(f"{reference!r} is not a source record of golden record {golden_id}")


def pin_attribute(
    engine: Engine,
    config: HubConfig,
    golden_id: str,
    group: str,
    *,
    by: str,
    reason: str,
    values: Mapping[str, Any] | None = None,
    record: str | None = None,
) -> int:
    """Pin ``group`` of an active golden record: to ``values`` (its fields, e.g.
    ``{"email": ...}``) or to the group as its member ``record`` (``SOURCE:KEY`` or a record
    id) holds it. An active pin of the same group is replaced. The golden record's records are
    queued: the next consolidation applies it. Returns the override's id."""
    reason = _reason(reason)
    if group not in PUBLIC_FIELDS:
        raise OverrideError(f"no attribute group {group!r}: one of {', '.join(PUBLIC_FIELDS)}")
    if (values is None) == (record is None):
        raise OverrideError("pin either values or a source record")
    now = utcnow()
    with write_transaction(engine) as conn:
        _active_golden(conn, golden_id)
        records = _member_records(conn, golden_id)
        if record is not None:
            chosen = _pinned_record(records, record.strip(), golden_id)
            baseline = group_values(chosen, group)
            if not baseline:
                raise OverrideError(f"that source record holds no {group}")
            kind, record_id, pinned = RECORD, chosen["source_record_id"], {}
        else:
            try:
                pinned = pinned_values(group, values or {})
            except ValueError as exc:
                raise OverrideError(str(exc)) from None
            survived = Survivor(config.survivorship, config.sources).survive(records)
            kind, record_id = VALUE, None
            baseline = group_values(survived.attributes, group)
        replaced = list(
            conn.execute(
                select(_O.id).where(
                    _O.golden_id == golden_id, _O.attribute_group == group, _O.status == ACTIVE
                )
            ).scalars()
        )
        new_id = conn.execute(
            insert(ATTRIBUTE_OVERRIDES).values(
                golden_id=golden_id,
                attribute_group=group,
                kind=kind,
                record_id=record_id,
                pinned=pinned,
                baseline=baseline,
                status=ACTIVE,
                reason=reason,
                created_by=by[:64],
                created_at=now,
            )
        ).inserted_primary_key[0]
        for old in replaced:
            conn.execute(
                update(ATTRIBUTE_OVERRIDES)
                .where(_O.id == old)
                .values(
                    status=REMOVED,
                    ended_at=now,
                    ended_by=by[:64],
                    end_reason=f"replaced by override {new_id}",
                )
            )
            write_history(conn, old, golden_id, "replaced", by, now, f"by override {new_id}")
        write_history(conn, new_id, golden_id, "pinned", by, now, reason)
        queue_golden(conn, golden_id)
    return int(new_id)


def remove_attribute_override(engine: Engine, override_id: int, by: str, reason: str) -> str:
    """End an active override; the next consolidation gives the group back to survivorship.
    Returns its golden id."""
    reason = _reason(reason)
    now = utcnow()
    with write_transaction(engine) as conn:
        row = conn.execute(select(_O.golden_id, _O.status).where(_O.id == override_id)).first()
        if row is None:
            raise OverrideError(f"no override {override_id}")
        if row.status != ACTIVE:
            raise OverrideError(f"override {override_id} is {row.status} already")
        conn.execute(
            update(ATTRIBUTE_OVERRIDES)
            .where(_O.id == override_id)
            .values(status=REMOVED, ended_at=now, ended_by=by[:64], end_reason=reason)
        )
        write_history(conn, override_id, row.golden_id, "removed", by, now, reason)
        queue_golden(conn, row.golden_id)
    return str(row.golden_id)


def review_retired_override(engine: Engine, override_id: int, by: str, note: str) -> str:
    """A steward has looked at a retired override (pinned again, or let the sources speak):
    its review item is done. Returns its golden id."""
    note = _reason(note)
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(_O.golden_id, _O.review_status).where(_O.id == override_id)
        ).first()
        if row is None:
            raise OverrideError(f"no override {override_id}")
        if row.review_status != PENDING_REVIEW:
            raise OverrideError(f"override {override_id} is not waiting for a review")
        conn.execute(
            update(ATTRIBUTE_OVERRIDES).where(_O.id == override_id).values(review_status=REVIEWED)
        )
        write_history(conn, override_id, row.golden_id, "reviewed", by, utcnow(), note)
    return str(row.golden_id)


def attribute_overrides(
    conn: Connection,
    *,
    golden_id: str | None = None,
    status: str | None = None,
    to_review: bool = False,
    limit: int = 500,
) -> list[AttributeOverrideView]:
    """Overrides, the newest first: of one golden record, of one status, or the retired ones
    waiting for a steward's review (``to_review``)."""
    query = select(ATTRIBUTE_OVERRIDES)
    if golden_id is not None:
        query = query.where(_O.golden_id == golden_id)
    if status is not None:
        query = query.where(_O.status == status)
    if to_review:
        query = query.where(_O.review_status == PENDING_REVIEW)
    rows = list(conn.execute(query.order_by(_O.id.desc()).limit(limit)).mappings())
    shown = _shown_overrides(conn, {r["golden_id"] for r in rows})
    sources = _sources(conn, {r["record_id"] for r in rows if r["record_id"]})
    out = []
    for r in rows:
        in_golden = str(r["id"]) in shown.get(r["golden_id"], set())
        if r["status"] == ACTIVE:
            state = "applied" if r["applied_at"] is not None else "pending"
        else:
            state = "removal pending" if in_golden else r["status"]
        source, key = sources.get(r["record_id"], (None, None))
        out.append(
            AttributeOverrideView(
                id=r["id"],
                golden_id=r["golden_id"],
                group=r["attribute_group"],
                kind=r["kind"],
                record_id=r["record_id"],
                source=source,
                source_key=key,
                pinned=dict(r["pinned"] or {}),
                status=r["status"],
                state=state,
                reason=r["reason"],
                created_by=r["created_by"],
                created_at=as_utc(r["created_at"]),
                applied_at=as_utc(r["applied_at"]) if r["applied_at"] else None,
                applied_version=r["applied_version"],
                ended_at=as_utc(r["ended_at"]) if r["ended_at"] else None,
                ended_by=r["ended_by"],
                end_reason=r["end_reason"],
                review_status=r["review_status"],
            )
        )
    return out


def override_counts(conn: Connection) -> dict[str, int]:
    """Active overrides, those of them no consolidation applied yet, and retired ones waiting
    for a steward's review."""
    from sqlalchemy import func

    def count(*where: Any) -> int:  # noqa: ANN401
        query = select(func.count()).select_from(ATTRIBUTE_OVERRIDES).where(*where)
        return int(conn.execute(query).scalar_one())

    return {
        "active": count(_O.status == ACTIVE),
        "pending": count(_O.status == ACTIVE, _O.applied_at.is_(None)),
        "to_review": count(_O.review_status == PENDING_REVIEW),
    }


def override_history(
    conn: Connection, *, golden_id: str | None = None, override_id: int | None = None
) -> list[OverrideEvent]:
    """What happened to overrides (of a golden record, or one), in order."""
    h = OVERRIDE_HISTORY.c
    query = select(OVERRIDE_HISTORY)
    if golden_id is not None:
        query = query.where(h.golden_id == golden_id)
    if override_id is not None:
        query = query.where(h.override_id == override_id)
    return [
        OverrideEvent(
            r["override_id"],
            r["golden_id"],
            r["action"],
            as_utc(r["at"]),
            r["actor"],
            r["reason"],
            r["version"],
        )
        for r in conn.execute(query.order_by(h.id)).mappings()
    ]


def _shown_overrides(conn: Connection, golden_ids: set[str]) -> dict[str, set[str]]:
    """Per golden record, the ids of the overrides its current lineage names."""
    out: dict[str, set[str]] = {}
    for cond in in_chunks(GOLDEN.c.golden_id, golden_ids):
        for gid, lineage in conn.execute(select(GOLDEN.c.golden_id, GOLDEN.c.lineage).where(cond)):
            if isinstance(lineage, str):
                lineage = json.loads(lineage)
            out[gid] = {
                str(entry["override_id"])
                for entry in (lineage or {}).values()
                if isinstance(entry, dict) and entry.get("override_id")
            }
    return out


def _sources(conn: Connection, record_ids: set[str]) -> dict[str, tuple[str, str]]:
    from mdm_orchestration.hub.tables import SOURCES

    out: dict[str, tuple[str, str]] = {}
    for cond in in_chunks(SOURCES.c.id, record_ids):
        rows = conn.execute(
            select(SOURCES.c.id, SOURCES.c.source, SOURCES.c.source_key).where(cond)
        )
        out.update({rid: (s, k) for rid, s, k in rows})
    return out


__all__ = [
    "REMOVED",
    "RETIRED",
    "AttributeOverrideView",
    "OverrideError",
    "OverrideEvent",
    "attribute_overrides",
    "override_counts",
    "override_history",
    "pin_attribute",
    "remove_attribute_override",
    "review_retired_override",
]
