"""Writing a consolidation: its plan becomes one write transaction covering the golden records,
their history, the cross-reference and the outbox (``golden_changes``). A crash anywhere leaves
either all of it or none of it; named crash points mark the boundaries
for the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from mdm_orchestration.config import EventsConfig, HubConfig
from mdm_orchestration.hub.bulk import bulk_insert, bulk_upsert, stored_datetime_of
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.store import reconsolidation_lock, write_transaction
from mdm_orchestration.hub.tables import (
    CONSOLIDATE_LOCK_KEY,
    GOLDEN,
    GOLDEN_RUNS,
    MATCH_RUNS,
    QUEUE,
    SOURCES,
    XREF,
    advisory_xact_lock,
    chunks,
    in_chunks,
    utcnow,
)
from mdm_orchestration.survivorship.business_events import HouseholdMove, business_events
from mdm_orchestration.survivorship.consolidate import (
    MERGED,
    RETIRED,
    UPDATED,
    Event,
    Plan,
    Previous,
)
from mdm_orchestration.survivorship.householding import household_moves
from mdm_orchestration.survivorship.ids import seq_of
from mdm_orchestration.survivorship.override_store import write_outcomes
from mdm_orchestration.survivorship.reading import Planned, last_run, plan
from mdm_orchestration.survivorship.rows import (
    ACTIVE,
    CHANGE_COLUMNS,
    GOLDEN_COLUMNS,
    HISTORY_COLUMNS,
    ChangeRow,
    GoldenRow,
    HistoryRow,
    config_digest,
    event_id,
    to_json,
)

XREF_COLUMNS = ("record_id", "source", "source_key", "golden_id", "assigned_at")
#: Golden-record columns an upsert leaves as they were first written.
_KEPT_ON_UPDATE = ("golden_id", "seq", "created_at", "created_run_id")


class ConcurrentConsolidation(RuntimeError):
    """Another consolidation committed while this one was planning: nothing was written."""


@dataclass
class ConsolidationResult:
    counts: dict[str, int]
    golden_records: int
    records: int
    events: int
    run_id: str | None
    by_party: dict[str, int] = field(default_factory=dict)
    #: the source records an incremental consolidation considered (None: every record)
    scope: set[str] | None = None


@dataclass
class _Snapshot:
    """A plan and what it was planned on."""

    planned: Planned
    clusters_at: datetime | None  # the clustering it is based on
    after_run: int  # the newest consolidation run when it was planned


@dataclass
class _Rows:
    """What a plan writes, row by row."""

    golden: list[GoldenRow] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)  # each golden id's new version


def consolidate(
    engine: Engine, config: HubConfig, run_id: str | None = None, *, full: bool = False
) -> ConsolidationResult:
    """Survive the clusters that changed (every cluster when ``full``, on the first run or
    after a change of the survivorship rules) and write what changed, with its history,
    cross-reference and change events, in one transaction. Nothing changed: nothing is written
    but the run's row."""
    with reconsolidation_lock(engine):
        return _consolidate(engine, config, run_id, full)


def _consolidate(
    engine: Engine, config: HubConfig, run_id: str | None, full: bool
) -> ConsolidationResult:
    snapshot = _plan_snapshot(engine, config, full)
    planned = snapshot.planned
    now = utcnow()
    moves = household_moves(engine, planned.plan)
    # The rows hold ``now`` as the database stores it: formatted once, not once per row.
    stamp = stored_datetime_of(engine.dialect.name)(now)
    rows = _rows(planned.plan, planned.previous, run_id, stamp, config.events, moves)
    counts = planned.plan.counts() | {
        "full": int(planned.full),
        "records_considered": planned.considered,
        "clusters_considered": len(set(planned.plan.xref.values())),
    }
    with write_transaction(engine) as conn:
        _claim(conn, snapshot.after_run)
        _write_golden(conn, planned.plan, rows, run_id, now)
        crash_point("golden:after_golden_write")
        bulk_insert(conn, "golden_history", HISTORY_COLUMNS, rows.history, stored=True)
        _write_xref(conn, planned, stamp)
        crash_point("golden:before_outbox")
        bulk_insert(conn, "golden_changes", CHANGE_COLUMNS, rows.changes, stored=True)
        write_outcomes(conn, planned.plan.override_outcomes, _versions(planned, rows), run_id, now)
        for cond in in_chunks(QUEUE.c.record_id, planned.queued):
            conn.execute(delete(QUEUE).where(cond))
        _record_run(conn, config, run_id, snapshot.clusters_at, counts)
        crash_point("golden:before_commit")
        active, by_party = _active_counts(conn)
    return ConsolidationResult(
        counts=counts,
        golden_records=active,
        records=len(planned.plan.xref),
        events=len(rows.changes),
        run_id=run_id,
        by_party=by_party,
        scope=planned.reach,
    )


def _versions(planned: Planned, rows: _Rows) -> dict[str, int]:
    """The version each golden record holds after this plan (for the overrides it applies:
    the new one where it wrote one, else the one it left as it was)."""
    out = {g: p.version for g, p in planned.previous.items()}
    # Only a golden record with an event got a new version; ``rows.versions`` holds the next
    # version of every earlier one, written or not.
    out.update({e.golden_id: rows.versions.get(e.golden_id, 1) for e in planned.plan.events})
    return out


def _plan_snapshot(engine: Engine, config: HubConfig, full: bool) -> _Snapshot:
    """Plan on one snapshot of the hub."""
    with engine.connect() as conn, conn.begin():
        # The clustering this is based on: the last matching run's (reading the newest
        # clustered_at would scan every cluster row).
        clusters_at = conn.execute(select(func.max(MATCH_RUNS.c.finished_at))).scalar_one()
        after_run = last_run(conn)
        return _Snapshot(plan(conn, config, full=full), clusters_at, after_run)


def _rows(
    the_plan: Plan,
    previous: dict[str, Previous],
    run_id: str | None,
    now: str,
    events: EventsConfig,
    moves: dict[str, HouseholdMove] | None = None,
) -> _Rows:
    """The golden, history and outbox rows of the plan's events, each outbox row with the
    business events its change carries; ``now`` as the database stores it."""
    rows = _Rows(versions={g: p.version + 1 for g, p in previous.items()})
    for event in the_plan.events:
        gid = event.golden_id
        version = rows.versions.get(gid, 1)
        changed = to_json(event.changed)
        if event.event_type in (MERGED, RETIRED):
            rows.history.append(_ended_history(event, changed, previous[gid], version, run_id, now))
        else:
            golden, history = _active_rows(the_plan, event, changed, version, run_id, now)
            rows.golden.append(golden)
            rows.history.append(history)
        rows.changes.append(
            ChangeRow(
                event_id=event_id(gid, version),
                golden_id=gid,
                version=version,
                event_type=event.event_type,
                changed=changed,
                related=to_json(event.related),
                run_id=run_id,
                created_at=now,
                business_events=to_json(
                    _business(event, previous, the_plan, events, (moves or {}).get(gid))
                ),
            )
        )
    return rows


def _business(
    event: Event,
    previous: dict[str, Previous],
    the_plan: Plan,
    events: EventsConfig,
    move: HouseholdMove | None = None,
) -> list[str]:
    if event.event_type != UPDATED:
        return []
    old, new = previous[event.golden_id], the_plan.states[event.golden_id]
    return business_events(
        events, event.changed, old.lifecycle, new.lifecycle, old.consents, new.consents, move
    )


def _ended_history(
    event: Event, changed: str, old: Previous, version: int, run_id: str | None, now: str
) -> HistoryRow:
    """The last version of a golden record merged into another or retired: its old content."""
    return HistoryRow(
        golden_id=event.golden_id,
        version=version,
        status=event.event_type,
        change=event.event_type,
        changed=changed,
        party_type=old.party_type,
        attributes=to_json(old.attributes),
        lineage=to_json(old.lineage),
        consents=to_json(old.consents),
        lifecycle=old.lifecycle,
        organisation_golden_id=old.organisation_golden_id,
        sources=to_json(old.sources),
        members="[]",
        merged_into=event.related[0] if event.event_type == MERGED else None,
        run_id=run_id,
        recorded_at=now,
    )


def _active_rows(
    the_plan: Plan, event: Event, changed: str, version: int, run_id: str | None, now: str
) -> tuple[GoldenRow, HistoryRow]:
    """A created, updated or split golden record's row and its new version's history."""
    gid = event.golden_id
    s = the_plan.states[gid]
    texts = s.texts
    golden = GoldenRow(
        golden_id=gid,
        seq=seq_of(gid),
        party_type=s.party_type,
        status=ACTIVE,
        merged_into=None,
        version=version,
        attributes=texts.attributes,
        keys=texts.keys,
        lineage=texts.lineage,
        consents=texts.consents,
        lifecycle=s.lifecycle,
        organisation_golden_id=s.organisation_golden_id,
        sources=texts.sources,
        member_count=s.member_count,
        content_hash=s.digest(),
        created_at=now,
        updated_at=now,
        created_run_id=run_id,
        updated_run_id=run_id,
    )
    history = HistoryRow(
        golden_id=gid,
        version=version,
        status=ACTIVE,
        change=event.event_type,
        changed=changed,
        party_type=s.party_type,
        attributes=golden.attributes,
        lineage=golden.lineage,
        consents=golden.consents,
        lifecycle=s.lifecycle,
        organisation_golden_id=s.organisation_golden_id,
        sources=golden.sources,
        members=texts.members,
        merged_into=None,
        run_id=run_id,
        recorded_at=now,
    )
    return golden, history


def _claim(conn: Connection, planned_after: int) -> None:
    """One writer at a time (SQLite: BEGIN IMMEDIATE already; PostgreSQL: an advisory lock),
    and the plan must still be based on the newest golden state."""
    advisory_xact_lock(conn, CONSOLIDATE_LOCK_KEY)
    if last_run(conn) != planned_after:
        raise ConcurrentConsolidation(
            "another consolidation committed while this one was planning; run it again"
        )


def _write_golden(
    conn: Connection, the_plan: Plan, rows: _Rows, run_id: str | None, now: datetime
) -> None:
    """Upsert the active golden records; end those merged or retired."""
    bulk_upsert(
        conn,
        "golden_records",
        GOLDEN_COLUMNS,
        rows.golden,
        conflict="golden_id",
        update=[c for c in GOLDEN_COLUMNS if c not in _KEPT_ON_UPDATE],
        only_if="1 = 1",
        stored=True,
    )
    ended = [e for e in the_plan.events if e.event_type in (MERGED, RETIRED)]
    if not ended:
        return
    conn.execute(
        update(GOLDEN)
        .where(GOLDEN.c.golden_id == bindparam("g"))
        .values(
            status=bindparam("s"),
            merged_into=bindparam("m"),
            version=bindparam("v"),
            member_count=0,
            updated_at=now,
            updated_run_id=run_id,
        ),
        [
            {
                "g": e.golden_id,
                "s": e.event_type,
                "v": rows.versions[e.golden_id],
                "m": e.related[0] if e.event_type == MERGED else None,
            }
            for e in ended
        ],
    )


def _write_xref(conn: Connection, planned: Planned, now: str) -> None:
    """The cross-reference: rows of records that left the hub go, moved records are upserted
    (``now`` as the database stores it)."""
    xref, previous_xref = planned.plan.xref, planned.previous_xref
    gone = [rid for rid in previous_xref if rid not in xref]
    for chunk in chunks(gone, 500):
        conn.execute(delete(XREF).where(XREF.c.record_id.in_(chunk)))
    moved = {rid: gid for rid, gid in xref.items() if previous_xref.get(rid) != gid}
    if not moved:
        return
    keys = _source_keys(conn, list(moved))
    bulk_upsert(
        conn,
        "golden_xref",
        XREF_COLUMNS,
        [(rid, *keys[rid], gid, now) for rid, gid in moved.items()],
        conflict="record_id",
        update=("golden_id", "assigned_at"),
        only_if="1 = 1",
        stored=True,
    )


def _source_keys(conn: Connection, ids: list[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for cond in in_chunks(SOURCES.c.id, ids):
        rows = conn.execute(
            select(SOURCES.c.id, SOURCES.c.source, SOURCES.c.source_key).where(cond)
        ).all()
        out.update({rid: (s, k) for rid, s, k in rows})
    return out


def _record_run(
    conn: Connection,
    config: HubConfig,
    run_id: str | None,
    clusters_at: datetime | None,
    counts: dict[str, int],
) -> None:
    conn.execute(
        GOLDEN_RUNS.insert().values(
            run_id=run_id,
            clusters_at=clusters_at,
            config_digest=config_digest(config),
            counts=counts,
            finished_at=utcnow(),
        )
    )


def _active_counts(conn: Connection) -> tuple[int, dict[str, int]]:
    """Active golden records, in all and by party type."""
    active = conn.execute(
        select(func.count()).select_from(GOLDEN).where(GOLDEN.c.status == ACTIVE)
    ).scalar_one()
    by_party = conn.execute(
        select(GOLDEN.c.party_type, func.count())
        .where(GOLDEN.c.status == ACTIVE)
        .group_by(GOLDEN.c.party_type)
    ).all()
    return int(active), {k: int(v) for k, v in by_party}
