"""Golden records in the hub: read what consolidation needs, write its plan atomically.

One consolidation is one write transaction covering the golden records, their history, the
cross-reference and the outbox (``golden_changes``): a crash anywhere leaves either all of it or
none of it (RELIABILITY.md rule 4). Named crash points mark the boundaries for the tests.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, select, text, update

from mdm_orchestration.config import GOLDEN_GROUPS, HubConfig
from mdm_orchestration.hub.bulk import bulk_insert, bulk_upsert
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.models import (
    CleansedRecord,
    ConsolidationQueue,
    GoldenChange,
    GoldenHistory,
    GoldenRecord,
    GoldenRun,
    GoldenXref,
    HouseholdMember,
    HouseholdRow,
    HubCursor,
    MatchCluster,
    MatchRun,
    SourceRecord,
)
from mdm_orchestration.hub.store import (
    chunks,
    in_chunks,
    reconsolidation_lock,
    write_transaction,
)
from mdm_orchestration.survivorship.consolidate import (
    MERGED,
    RETIRED,
    GoldenState,
    Plan,
    Previous,
    plan_consolidation,
)
from mdm_orchestration.survivorship.households import build_households
from mdm_orchestration.survivorship.ids import golden_id_for, seq_of
from mdm_orchestration.survivorship.rules import ATTRIBUTES, Survivor

GOLDEN = GoldenRecord.__table__
HISTORY = GoldenHistory.__table__
XREF = GoldenXref.__table__
CHANGES = GoldenChange.__table__
RUNS = GoldenRun.__table__
HOUSEHOLDS = HouseholdRow.__table__
HOUSEHOLD_MEMBERS = HouseholdMember.__table__
CURSORS = HubCursor.__table__
CLEANSED = CleansedRecord.__table__
SOURCES = SourceRecord.__table__
CLUSTERS = MatchCluster.__table__
MATCH_RUNS = MatchRun.__table__
QUEUE = ConsolidationQueue.__table__
CURRENT = CLEANSED.join(
    SOURCES,
    and_(
        SOURCES.c.current_extract_id == CLEANSED.c.extract_id,
        SOURCES.c.current_row_number == CLEANSED.c.row_number,
        # Redundant for a current version, but it lets the database find a record by its id.
        SOURCES.c.id == CLEANSED.c.source_record_id,
    ),
)
#: Cleansed columns survivorship reads.
SURVIVOR_COLUMNS = tuple(
    dict.fromkeys(
        (
            "source_record_id",
            "source",
            "source_key",
            "source_updated_at",
            "lifecycle",
            "consents",
            "quality_flags",
            *itertools.chain.from_iterable(GOLDEN_GROUPS.values()),
        )
    )
)
ACTIVE = "active"
#: ``pg_advisory_xact_lock`` key of the consolidation writer (RELIABILITY.md rule 3).
CONSOLIDATE_LOCK_KEY = 0x6D646D02
#: Fixed namespace of the hub's event ids: the same (golden id, version) is always the same id.
EVENT_NAMESPACE = uuid.UUID("6f1c5e0a-3b1d-4c4e-9d6a-6d646d2d6875")
GOLDEN_COLUMNS = (
    "golden_id",
    "seq",
    "party_type",
    "status",
    "merged_into",
    "version",
    "attributes",
    "keys",
    "lineage",
    "consents",
    "lifecycle",
    "organisation_golden_id",
    "sources",
    "member_count",
    "content_hash",
    "created_at",
    "updated_at",
    "created_run_id",
    "updated_run_id",
)
HISTORY_COLUMNS = (
    "golden_id",
    "version",
    "status",
    "change",
    "changed",
    "party_type",
    "attributes",
    "lineage",
    "consents",
    "lifecycle",
    "organisation_golden_id",
    "sources",
    "members",
    "merged_into",
    "run_id",
    "recorded_at",
)
CHANGE_COLUMNS = (
    "event_id",
    "golden_id",
    "version",
    "event_type",
    "changed",
    "related",
    "run_id",
    "created_at",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def event_id(golden_id: str, version: int) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{golden_id}:{version}"))


def config_digest(config: HubConfig) -> str:
    """Changes when anything that decides golden values changes (survivorship, trust ranks)."""
    trust = {name: s.trust_rank for name, s in sorted(config.sources.items())}
    text = _json({"survivorship": config.survivorship.model_dump(), "trust": trust})
    return hashlib.sha256(text.encode()).hexdigest()


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


# --- reading ----------------------------------------------------------------------------------


def _membership(
    conn: Connection, records: set[str] | None
) -> dict[str, tuple[str, str, str | None]]:
    query = select(
        CLUSTERS.c.record_id,
        CLUSTERS.c.cluster_id,
        CLUSTERS.c.party_type,
        CLUSTERS.c.organisation_cluster_id,
    ).select_from(CLUSTERS.join(CURRENT, CLEANSED.c.source_record_id == CLUSTERS.c.record_id))
    if records is None:
        return {r: (c, p, o) for r, c, p, o in conn.execute(query)}
    out = {}
    for cond in in_chunks(CLUSTERS.c.record_id, records):
        out.update({r: (c, p, o) for r, c, p, o in conn.execute(query.where(cond))})
    return out


def _previous(conn: Connection, golden_ids: set[str] | None) -> dict[str, Previous]:
    query = select(
        GOLDEN.c.golden_id,
        GOLDEN.c.version,
        GOLDEN.c.content_hash,
        GOLDEN.c.party_type,
        GOLDEN.c.attributes,
        GOLDEN.c.lineage,
        GOLDEN.c.consents,
        GOLDEN.c.lifecycle,
        GOLDEN.c.organisation_golden_id,
        GOLDEN.c.sources,
        GOLDEN.c.status,
    )
    if golden_ids is None:
        rows = conn.execute(query.where(GOLDEN.c.status == ACTIVE))
        return {r[0]: Previous(*r[1:-1]) for r in rows}
    out = {}
    # By id only: with the status in the filter the database would scan every active record.
    for cond in in_chunks(GOLDEN.c.golden_id, golden_ids):
        out.update(
            {r[0]: Previous(*r[1:-1]) for r in conn.execute(query.where(cond)) if r[-1] == ACTIVE}
        )
    return out


def _xref(conn: Connection, records: set[str] | None) -> dict[str, str]:
    query = select(XREF.c.record_id, XREF.c.golden_id)
    if records is None:
        return dict(conn.execute(query).all())
    out: dict[str, str] = {}
    for cond in in_chunks(XREF.c.record_id, records):
        out.update(dict(conn.execute(query.where(cond)).all()))
    return out


def _cluster_records(
    conn: Connection, clusters: set[str] | None
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Each cluster's records (all clusters, or those named), in cluster order."""
    query = (
        select(CLUSTERS.c.cluster_id, *[CLEANSED.c[c] for c in SURVIVOR_COLUMNS])
        .select_from(CLUSTERS.join(CURRENT, CLEANSED.c.source_record_id == CLUSTERS.c.record_id))
        .order_by(CLUSTERS.c.cluster_id, CLEANSED.c.source_record_id)
    )
    if clusters is None:
        rows = conn.execution_options(yield_per=10_000).execute(query).mappings()
        for cluster, group in itertools.groupby(rows, key=lambda r: r["cluster_id"]):
            yield cluster, [dict(r) for r in group]
        return
    for cond in in_chunks(CLUSTERS.c.cluster_id, clusters):
        rows = conn.execute(query.where(cond)).mappings()
        for cluster, group in itertools.groupby(rows, key=lambda r: r["cluster_id"]):
            yield cluster, [dict(r) for r in group]


def _closure(conn: Connection, dirty: set[str]) -> set[str]:
    """``dirty`` records plus every record sharing a cluster or a golden record with one of
    them, repeated until nothing is added: the part of the hub a change can reach."""
    reach, frontier = set(dirty), set(dirty)
    while frontier:
        clusters: set[str] = set()
        goldens: set[str] = set()
        for cond in in_chunks(CLUSTERS.c.record_id, frontier):
            clusters.update(conn.execute(select(CLUSTERS.c.cluster_id).where(cond)).scalars())
        for cond in in_chunks(XREF.c.record_id, frontier):
            goldens.update(conn.execute(select(XREF.c.golden_id).where(cond)).scalars())
        members: set[str] = set()
        for cond in in_chunks(CLUSTERS.c.cluster_id, clusters):
            members.update(conn.execute(select(CLUSTERS.c.record_id).where(cond)).scalars())
        for cond in in_chunks(XREF.c.golden_id, goldens):
            members.update(conn.execute(select(XREF.c.record_id).where(cond)).scalars())
        frontier = members - reach
        reach |= members
    return reach


def _outside_golden_of(conn: Connection, clusters: set[str]) -> dict[str, str]:
    """The golden id of clusters outside the part being consolidated (organisations that
    contacts inside it link to), from the cross-reference of their members."""
    out: dict[str, str] = {}
    for cond in in_chunks(CLUSTERS.c.cluster_id, clusters):
        rows = conn.execute(
            select(CLUSTERS.c.cluster_id, XREF.c.golden_id)
            .select_from(CLUSTERS.join(XREF, XREF.c.record_id == CLUSTERS.c.record_id))
            .where(cond)
        )
        for cluster, golden in rows:
            out.setdefault(cluster, golden)
    return out


class ConcurrentConsolidation(RuntimeError):
    """Another consolidation committed while this one was planning: nothing was written."""


def _last_run(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(RUNS.c.id), 0))).scalar_one())


@dataclass
class Planned:
    plan: Plan
    previous: dict[str, Previous]
    previous_xref: dict[str, str]
    queued: list[str]  # consolidation-queue entries this plan settles
    full: bool
    considered: int
    reach: set[str] | None = None  # the records an incremental plan considered


def plan(conn: Connection, config: HubConfig, *, full: bool = False) -> Planned:
    """Plan a consolidation: of every cluster (``full``: the first run, a change of the
    survivorship rules, or asked for), else of the part of the hub the queued records reach."""
    last = conn.execute(select(RUNS).order_by(RUNS.c.id.desc()).limit(1)).first()
    full = full or last is None or last.config_digest != config_digest(config)
    queued = list(conn.execute(select(QUEUE.c.record_id)).scalars())
    survivor = Survivor(config.survivorship, config.sources)
    next_seq = (conn.execute(select(func.max(GOLDEN.c.seq))).scalar_one() or 0) + 1
    if full:
        previous, previous_xref = _previous(conn, None), _xref(conn, None)
        membership = _membership(conn, None)
        the_plan = plan_consolidation(
            membership, _cluster_records(conn, None), previous_xref, previous, next_seq, survivor
        )
        return Planned(the_plan, previous, previous_xref, queued, True, len(membership))
    reach = _closure(conn, set(queued))
    membership = _membership(conn, reach)
    previous_xref = _xref(conn, reach)
    previous = _previous(conn, set(previous_xref.values()))
    clusters = {c for c, _p, _o in membership.values()}
    outside = {o for _c, _p, o in membership.values() if o is not None and o not in clusters}
    the_plan = plan_consolidation(
        membership,
        _cluster_records(conn, clusters),
        previous_xref,
        previous,
        next_seq,
        survivor,
        outside_golden_of=_outside_golden_of(conn, outside),
    )
    return Planned(the_plan, previous, previous_xref, queued, False, len(reach), reach)


# --- writing ----------------------------------------------------------------------------------


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
    with engine.connect() as conn, conn.begin():  # one snapshot for the whole plan
        # The clustering this is based on: the last matching run's (reading the newest
        # clustered_at would scan every cluster row).
        clusters_at = conn.execute(select(func.max(MATCH_RUNS.c.finished_at))).scalar_one()
        planned_after = _last_run(conn)
        planned = plan(conn, config, full=full)
    the_plan, previous, previous_xref = planned.plan, planned.previous, planned.previous_xref
    now = _now()
    versions = {g: p.version + 1 for g, p in previous.items()}
    golden_rows, history_rows, change_rows = [], [], []
    for event in the_plan.events:
        gid = event.golden_id
        version = versions.get(gid, 1)
        if event.event_type in (MERGED, RETIRED):
            old = previous[gid]
            merged_into = event.related[0] if event.event_type == MERGED else None
            history_rows.append(
                (
                    gid,
                    version,
                    event.event_type,
                    event.event_type,
                    _json(event.changed),
                    old.party_type,
                    _json(old.attributes),
                    _json(old.lineage),
                    _json(old.consents),
                    old.lifecycle,
                    old.organisation_golden_id,
                    _json(old.sources),
                    "[]",
                    merged_into,
                    run_id,
                    now,
                )
            )
        else:
            s: GoldenState = the_plan.states[gid]
            golden_rows.append(
                (
                    gid,
                    seq_of(gid),
                    s.party_type,
                    ACTIVE,
                    None,
                    version,
                    _json(s.attributes),
                    _json(s.keys),
                    _json(s.lineage),
                    _json(s.consents),
                    s.lifecycle,
                    s.organisation_golden_id,
                    _json(s.sources),
                    len(s.members),
                    the_plan.digests[gid],
                    now,
                    now,
                    run_id,
                    run_id,
                )
            )
            history_rows.append(
                (
                    gid,
                    version,
                    ACTIVE,
                    event.event_type,
                    _json(event.changed),
                    s.party_type,
                    _json(s.attributes),
                    _json(s.lineage),
                    _json(s.consents),
                    s.lifecycle,
                    s.organisation_golden_id,
                    _json(s.sources),
                    _json(s.members),
                    None,
                    run_id,
                    now,
                )
            )
        change_rows.append(
            (
                event_id(gid, version),
                gid,
                version,
                event.event_type,
                _json(event.changed),
                _json(event.related),
                run_id,
                now,
            )
        )
    xref_rows = [
        (rid, gid, now) for rid, gid in the_plan.xref.items() if previous_xref.get(rid) != gid
    ]
    gone = [rid for rid in previous_xref if rid not in the_plan.xref]
    counts = the_plan.counts() | {
        "full": int(planned.full),
        "records_considered": planned.considered,
        "clusters_considered": len({g for g in the_plan.xref.values()}),
    }
    with write_transaction(engine) as conn:
        # One writer at a time (SQLite: BEGIN IMMEDIATE already; PostgreSQL: an advisory lock),
        # and the plan must still be based on the newest golden state.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CONSOLIDATE_LOCK_KEY})
        if _last_run(conn) != planned_after:
            raise ConcurrentConsolidation(
                "another consolidation committed while this one was planning; run it again"
            )
        bulk_upsert(
            conn,
            "golden_records",
            GOLDEN_COLUMNS,
            golden_rows,
            conflict="golden_id",
            update=[
                c
                for c in GOLDEN_COLUMNS
                if c not in ("golden_id", "seq", "created_at", "created_run_id")
            ],
            only_if="1 = 1",
        )
        ended = [e for e in the_plan.events if e.event_type in (MERGED, RETIRED)]
        if ended:
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
                        "v": versions[e.golden_id],
                        "m": e.related[0] if e.event_type == MERGED else None,
                    }
                    for e in ended
                ],
            )
        crash_point("golden:after_golden_write")
        bulk_insert(conn, "golden_history", HISTORY_COLUMNS, history_rows)
        for chunk in chunks(gone, 500):
            conn.execute(delete(XREF).where(XREF.c.record_id.in_(chunk)))
        if xref_rows:
            keys = _source_keys(conn, [r[0] for r in xref_rows])
            bulk_upsert(
                conn,
                "golden_xref",
                ("record_id", "source", "source_key", "golden_id", "assigned_at"),
                [(rid, *keys[rid], gid, at) for rid, gid, at in xref_rows],
                conflict="record_id",
                update=("golden_id", "assigned_at"),
                only_if="1 = 1",
            )
        crash_point("golden:before_outbox")
        bulk_insert(conn, "golden_changes", CHANGE_COLUMNS, change_rows)
        for cond in in_chunks(QUEUE.c.record_id, planned.queued):
            conn.execute(delete(QUEUE).where(cond))
        conn.execute(
            RUNS.insert().values(
                run_id=run_id,
                clusters_at=clusters_at,
                config_digest=config_digest(config),
                counts=counts,
                finished_at=_now(),
            )
        )
        crash_point("golden:before_commit")
        active = conn.execute(
            select(func.count()).select_from(GOLDEN).where(GOLDEN.c.status == ACTIVE)
        ).scalar_one()
        by_party = dict(
            conn.execute(
                select(GOLDEN.c.party_type, func.count())
                .where(GOLDEN.c.status == ACTIVE)
                .group_by(GOLDEN.c.party_type)
            ).all()
        )
    return ConsolidationResult(
        counts=counts,
        golden_records=int(active),
        records=len(the_plan.xref),
        events=len(change_rows),
        run_id=run_id,
        by_party={k: int(v) for k, v in by_party.items()},
        scope=planned.reach,
    )


def _source_keys(conn: Connection, ids: list[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for chunk in chunks(ids, 500):
        rows = conn.execute(
            select(SOURCES.c.id, SOURCES.c.source, SOURCES.c.source_key).where(
                SOURCES.c.id.in_(chunk)
            )
        )
        out.update({rid: (s, k) for rid, s, k in rows})
    return out


# --- households -------------------------------------------------------------------------------


HOUSEHOLDS_CURSOR = "households"


def rebuild_households(engine: Engine) -> dict[str, int]:
    """Households of every active person golden record, replaced in one transaction."""
    return refresh_households(engine, full=True)


def refresh_households(engine: Engine, *, full: bool = False) -> dict[str, int]:
    """Bring households up to date with the golden records. A household depends only on the
    persons at its address, so only the addresses of golden records changed since the last
    refresh (read from the outbox, ``golden_changes``) are redone: the changed records' old
    and new addresses. The first refresh, or ``full``, redoes every household. One
    transaction; the counts returned are the whole hub's."""
    with engine.connect() as conn, conn.begin():
        upto = int(conn.execute(select(func.coalesce(func.max(CHANGES.c.seq), 0))).scalar_one())
        cursor = conn.execute(
            select(CURSORS.c.value).where(CURSORS.c.name == HOUSEHOLDS_CURSOR)
        ).scalar_one_or_none()
        full = full or cursor is None
        if full:
            persons = conn.execute(
                select(GOLDEN.c.golden_id, GOLDEN.c["keys"]).where(
                    GOLDEN.c.status == ACTIVE, GOLDEN.c.party_type == "person"
                )
            ).all()
            addresses: set[str] = set()
            changed: set[str] = set()
        else:
            changed = set(
                conn.execute(
                    select(CHANGES.c.golden_id).distinct().where(CHANGES.c.seq > cursor)
                ).scalars()
            )
            persons, addresses = _household_neighbourhood(conn, changed)
    households = build_households(
        (gid, keys.get("address_key"), keys.get("family_key")) for gid, keys in persons
    )
    now = _now()
    with write_transaction(engine) as conn:
        if full:
            conn.execute(delete(HOUSEHOLD_MEMBERS))
            conn.execute(delete(HOUSEHOLDS))
        elif addresses or changed:
            old = set()
            for cond in in_chunks(HOUSEHOLDS.c.address_key, sorted(addresses)):
                old.update(conn.execute(select(HOUSEHOLDS.c.household_id).where(cond)).scalars())
            for cond in in_chunks(HOUSEHOLD_MEMBERS.c.golden_id, sorted(changed)):
                old.update(
                    conn.execute(select(HOUSEHOLD_MEMBERS.c.household_id).where(cond)).scalars()
                )
            for cond in in_chunks(HOUSEHOLD_MEMBERS.c.household_id, sorted(old)):
                conn.execute(delete(HOUSEHOLD_MEMBERS).where(cond))
            for cond in in_chunks(HOUSEHOLDS.c.household_id, sorted(old)):
                conn.execute(delete(HOUSEHOLDS).where(cond))
        bulk_insert(
            conn,
            "households",
            ("household_id", "address_key", "family_key", "member_count", "updated_at"),
            [
                (h.household_id, h.address_key, h.family_key, len(h.members), now)
                for h in households
            ],
        )
        bulk_insert(
            conn,
            "household_members",
            ("golden_id", "household_id"),
            [(g, h.household_id) for h in households for g in h.members],
        )
        conn.execute(delete(CURSORS).where(CURSORS.c.name == HOUSEHOLDS_CURSOR))
        conn.execute(CURSORS.insert().values(name=HOUSEHOLDS_CURSOR, value=upto))
        totals = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(HOUSEHOLDS.c.member_count), 0),
                func.count().filter(HOUSEHOLDS.c.member_count > 1),
                func.coalesce(
                    func.sum(HOUSEHOLDS.c.member_count).filter(HOUSEHOLDS.c.member_count > 1), 0
                ),
                func.coalesce(func.max(HOUSEHOLDS.c.member_count), 0),
            )
        ).one()
    return {
        "persons_in_households": int(totals[1]),
        "households": int(totals[0]),
        "multi_person_households": int(totals[2]),
        "persons_in_multi_person_households": int(totals[3]),
        "largest_household": int(totals[4]),
        "households_redone": len(households),
        "full": int(full),
    }


def _household_neighbourhood(
    conn: Connection, changed: set[str]
) -> tuple[list[tuple[str, dict]], set[str]]:
    """The active persons whose households a change of ``changed`` golden records can alter
    (everyone at those records' old and new addresses), and those addresses."""
    addresses: set[str] = set()
    for cond in in_chunks(GOLDEN.c.golden_id, sorted(changed)):
        for keys, status, party in conn.execute(
            select(GOLDEN.c["keys"], GOLDEN.c.status, GOLDEN.c.party_type).where(cond)
        ):
            if status == ACTIVE and party == "person" and (keys or {}).get("address_key"):
                addresses.add(keys["address_key"])
    for cond in in_chunks(HOUSEHOLD_MEMBERS.c.golden_id, sorted(changed)):
        addresses.update(
            conn.execute(
                select(HOUSEHOLDS.c.address_key)
                .select_from(
                    HOUSEHOLD_MEMBERS.join(
                        HOUSEHOLDS, HOUSEHOLDS.c.household_id == HOUSEHOLD_MEMBERS.c.household_id
                    )
                )
                .where(cond)
            ).scalars()
        )
    ids = set(changed)
    for cond in in_chunks(HOUSEHOLDS.c.address_key, sorted(addresses)):
        ids.update(
            conn.execute(
                select(HOUSEHOLD_MEMBERS.c.golden_id)
                .select_from(
                    HOUSEHOLD_MEMBERS.join(
                        HOUSEHOLDS, HOUSEHOLDS.c.household_id == HOUSEHOLD_MEMBERS.c.household_id
                    )
                )
                .where(cond)
            ).scalars()
        )
    persons = []
    for cond in in_chunks(GOLDEN.c.golden_id, sorted(ids)):
        persons += [
            (g, k)
            for g, k, st, p in conn.execute(
                select(
                    GOLDEN.c.golden_id, GOLDEN.c["keys"], GOLDEN.c.status, GOLDEN.c.party_type
                ).where(cond)
            )
            if st == ACTIVE and p == "person"
        ]
    return persons, addresses


# --- what the checks verify -------------------------------------------------------------------


@dataclass
class GoldenHealth:
    active_records: int  # current, cleansed source records
    mapped_records: int  # of those, mapped to an active golden record
    xref_rows: int  # cross-reference rows (each a record id, unique by key)
    xref_to_inactive: int  # rows pointing at a merged or retired golden record
    goldens_without_members: int
    golden_rows: int
    distinct_golden_ids: int
    lineage_gaps: int  # attributes of active golden records without a lineage entry
    checked_for_lineage: int


def golden_health(
    engine: Engine, run_id: str | None = None, scope: set[str] | None = None
) -> GoldenHealth:
    """The facts behind golden_records' asset checks, over the whole hub, or over ``scope``:
    the source records an incremental consolidation considered and the golden records they
    map to (a check then costs what the run cost, not what the hub holds; a full run checks
    everything). Lineage is checked on the golden records the run wrote (``run_id``), or on
    all of them."""
    with engine.connect() as conn:
        if scope is None:
            return _health(conn, None, run_id)
        return _health(conn, sorted(scope), run_id)


def _health(conn: Connection, scope: list[str] | None, run_id: str | None) -> GoldenHealth:
    if scope is None:
        active_records = conn.execute(select(func.count()).select_from(CURRENT)).scalar_one()
        mapped = conn.execute(
            select(func.count())
            .select_from(
                CURRENT.join(XREF, XREF.c.record_id == CLEANSED.c.source_record_id).join(
                    GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id
                )
            )
            .where(GOLDEN.c.status == ACTIVE)
        ).scalar_one()
        xref_rows = conn.execute(select(func.count()).select_from(XREF)).scalar_one()
        to_inactive = conn.execute(
            select(func.count())
            .select_from(XREF.outerjoin(GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id))
            .where((GOLDEN.c.status != ACTIVE) | GOLDEN.c.golden_id.is_(None))
        ).scalar_one()
        empty = conn.execute(
            select(func.count())
            .select_from(GOLDEN)
            .where(
                GOLDEN.c.status == ACTIVE,
                ~select(XREF.c.record_id).where(XREF.c.golden_id == GOLDEN.c.golden_id).exists(),
            )
        ).scalar_one()
    else:
        # By record and golden id only, statuses compared here: with a status in the filter
        # the database would start from the status index and read every active record.
        active_records = mapped = xref_rows = to_inactive = 0
        goldens: set[str] = set()
        for chunk in chunks(scope):
            active_records += conn.execute(
                select(func.count()).select_from(CURRENT).where(SOURCES.c.id.in_(chunk))
            ).scalar_one()
            mapped += sum(
                st == ACTIVE
                for (st,) in conn.execute(
                    select(GOLDEN.c.status)
                    .select_from(
                        CURRENT.join(XREF, XREF.c.record_id == SOURCES.c.id).join(
                            GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id
                        )
                    )
                    .where(SOURCES.c.id.in_(chunk))
                )
            )
            for golden, status in conn.execute(
                select(XREF.c.golden_id, GOLDEN.c.status)
                .select_from(XREF.outerjoin(GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id))
                .where(XREF.c.record_id.in_(chunk))
            ):
                xref_rows += 1
                to_inactive += status != ACTIVE
                goldens.add(golden)
        if run_id is not None:
            goldens.update(
                conn.execute(
                    select(GOLDEN.c.golden_id).where(GOLDEN.c.updated_run_id == run_id)
                ).scalars()
            )
        empty = 0
        for chunk in chunks(sorted(goldens)):
            active = {
                g
                for g, st in conn.execute(
                    select(GOLDEN.c.golden_id, GOLDEN.c.status).where(GOLDEN.c.golden_id.in_(chunk))
                )
                if st == ACTIVE
            }
            members = set(
                conn.execute(
                    select(XREF.c.golden_id).distinct().where(XREF.c.golden_id.in_(chunk))
                ).scalars()
            )
            empty += len(active - members)
    # Golden ids are the primary key: counted over the whole table, from its index.
    golden_rows, distinct = conn.execute(
        select(func.count(), func.count(GOLDEN.c.golden_id.distinct()))
    ).one()
    query = select(GOLDEN.c.attributes, GOLDEN.c.lineage, GOLDEN.c.status)
    if run_id is not None:  # by the run's index; the status is compared here
        query = query.where(GOLDEN.c.updated_run_id == run_id)
    gaps = checked = 0
    for attributes, lineage, status in conn.execute(query):
        if status != ACTIVE:
            continue
        checked += 1
        gaps += sum(1 for name in attributes if name not in lineage)
    return GoldenHealth(
        int(active_records),
        int(mapped),
        int(xref_rows),
        int(to_inactive),
        int(empty),
        int(golden_rows),
        int(distinct),
        gaps,
        checked,
    )


def needs_consolidation(conn: Connection, config: HubConfig) -> bool:
    """Whether golden records are stale: records queued by matching, clusters but no golden
    records yet, or a change of the survivorship configuration."""
    last = conn.execute(select(RUNS).order_by(RUNS.c.id.desc()).limit(1)).first()
    if last is None:
        return conn.execute(select(func.count()).select_from(CLUSTERS)).scalar_one() > 0
    if last.config_digest != config_digest(config):
        return True
    return conn.execute(select(QUEUE.c.record_id).limit(1)).first() is not None


# --- reading golden records -------------------------------------------------------------------


def golden_as_of(conn: Connection, golden_id: str, at: datetime | None = None) -> dict | None:
    """A golden record as it was at ``at`` (now, without it): its latest version recorded at
    or before that time, with its status, values, lineage and members then."""
    query = select(HISTORY).where(HISTORY.c.golden_id == golden_id)
    if at is not None:
        query = query.where(HISTORY.c.recorded_at <= at)
    row = conn.execute(query.order_by(HISTORY.c.version.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out.pop("id", None)
    return out


def pending_events(conn: Connection, after_seq: int = 0) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(CHANGES).where(CHANGES.c.seq > after_seq)
        ).scalar_one()
    )


__all__ = [
    "ATTRIBUTES",
    "consolidate",
    "golden_as_of",
    "golden_health",
    "golden_id_for",
    "needs_consolidation",
    "rebuild_households",
    "refresh_households",
]
