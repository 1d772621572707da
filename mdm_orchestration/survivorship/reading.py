"""Reading what a consolidation plans from: cluster membership, the golden records and
cross-reference the hub holds, each cluster's records, and the part of the hub a change can
reach (an incremental consolidation plans only that part)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Text, func, select, type_coerce

from mdm_orchestration.config import GOLDEN_GROUPS, HubConfig
from mdm_orchestration.hub.tables import (
    CLEANSED,
    CLUSTERS,
    CURRENT_CLEANSED,
    GOLDEN,
    GOLDEN_RUNS,
    QUEUE,
    XREF,
    in_chunks,
)
from mdm_orchestration.survivorship.consolidate import Plan, Previous, plan_consolidation
from mdm_orchestration.survivorship.override_store import (
    active_overrides,
    members_of,
    unapplied_goldens,
)
from mdm_orchestration.survivorship.rows import ACTIVE, config_digest
from mdm_orchestration.survivorship.rules import Survivor

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
#: The golden-record columns a plan compares with, in :class:`Previous`'s order.
PREVIOUS_FIELDS = Previous.FIELDS
#: Those read as stored, decoded by :class:`Previous` when a plan looks at them.
PREVIOUS_ENCODED = ("attributes", "lineage", "consents", "sources")
#: Clusters joined to their records' current cleansed versions.
CLUSTERED = CLUSTERS.join(CURRENT_CLEANSED, CLEANSED.c.source_record_id == CLUSTERS.c.record_id)


class Membership(NamedTuple):
    """The cluster a record belongs to (what :func:`plan_consolidation` reads per record)."""

    cluster_id: str
    party_type: str
    organisation_cluster_id: str | None


@dataclass
class Planned:
    plan: Plan
    previous: dict[str, Previous]
    previous_xref: dict[str, str]
    queued: list[str]  # consolidation-queue entries this plan settles
    full: bool
    considered: int
    reach: set[str] | None = None  # the records an incremental plan considered


def membership(conn: Connection, records: set[str] | None) -> dict[str, Membership]:
    query = select(
        CLUSTERS.c.record_id,
        CLUSTERS.c.cluster_id,
        CLUSTERS.c.party_type,
        CLUSTERS.c.organisation_cluster_id,
    ).select_from(CLUSTERED)
    conditions = [None] if records is None else in_chunks(CLUSTERS.c.record_id, records)
    out = {}
    for cond in conditions:
        rows = conn.execute(query if cond is None else query.where(cond)).all()
        out.update({r: Membership(c, p, o) for r, c, p, o in rows})
    return out


def previous_goldens(conn: Connection, golden_ids: set[str] | None) -> dict[str, Previous]:
    """The active golden records (all, or those named) as a plan compares with them; their
    JSON columns as stored, decoded on first use the way their column type decodes them."""
    # What SQLAlchemy does to a stored JSON value on this database (None where the driver
    # decodes it itself, as psycopg2 does: then it is read decoded, as before).
    impl = GOLDEN.c.attributes.type.dialect_impl(conn.dialect)
    decode = impl.result_processor(conn.dialect, None)
    columns = [
        type_coerce(GOLDEN.c[n], Text) if n in PREVIOUS_ENCODED and decode else GOLDEN.c[n]
        for n in PREVIOUS_FIELDS
    ]
    query = select(GOLDEN.c.golden_id, GOLDEN.c.status, *columns)
    if golden_ids is None:
        rows = conn.execute(query.where(GOLDEN.c.status == ACTIVE))
        return {g: Previous(*values, decode=decode) for g, _status, *values in rows}
    out = {}
    # By id only: with the status in the filter the database would scan every active record.
    for cond in in_chunks(GOLDEN.c.golden_id, golden_ids):
        for golden_id, status, *values in conn.execute(query.where(cond)):
            if status == ACTIVE:
                out[golden_id] = Previous(*values, decode=decode)
    return out


def previous_xref(conn: Connection, records: set[str] | None) -> dict[str, str]:
    query = select(XREF.c.record_id, XREF.c.golden_id)
    if records is None:
        return dict(conn.execute(query).all())
    out: dict[str, str] = {}
    for cond in in_chunks(XREF.c.record_id, records):
        out.update(dict(conn.execute(query.where(cond)).all()))
    return out


def _grouped(rows: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:  # noqa: ANN401
    """(cluster id, its records as dicts) from plain rows of the cluster id and
    :data:`SURVIVOR_COLUMNS` (a dict from a tuple: cheaper than from a row mapping)."""
    names = ("cluster_id", *SURVIVOR_COLUMNS)
    for cluster, group in itertools.groupby(rows, key=operator.itemgetter(0)):
        yield cluster, [dict(zip(names, row, strict=True)) for row in group]


def cluster_records(
    conn: Connection, clusters: set[str] | None
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Each cluster's records (all clusters, or those named), in cluster order."""
    query = (
        select(CLUSTERS.c.cluster_id, *[CLEANSED.c[c] for c in SURVIVOR_COLUMNS])
        .select_from(CLUSTERED)
        .order_by(CLUSTERS.c.cluster_id, CLEANSED.c.source_record_id)
    )
    if clusters is None:
        yield from _grouped(conn.execution_options(yield_per=10_000).execute(query))
        return
    for cond in in_chunks(CLUSTERS.c.cluster_id, clusters):
        yield from _grouped(conn.execute(query.where(cond)))


def _scalars(conn: Connection, column: Any, by: Any, values: set[str]) -> set[str]:  # noqa: ANN401
    out: set[str] = set()
    for cond in in_chunks(by, values):
        out.update(conn.execute(select(column).where(cond)).scalars())
    return out


def every_record(conn: Connection) -> set[str]:
    """Every record a consolidation can reach: those in a cluster or in the cross-reference."""
    out = set(conn.execute(select(CLUSTERS.c.record_id)).scalars())
    out.update(conn.execute(select(XREF.c.record_id)).scalars())
    return out


def closure(conn: Connection, dirty: set[str], everything: set[str] | None = None) -> set[str]:
    """``dirty`` records plus every record sharing a cluster or a golden record with one of
    them, repeated until nothing is added: the part of the hub a change can reach. When
    ``dirty`` holds ``everything`` (:func:`every_record`; after a full rebuild of the clusters
    every record is queued) nothing can be added."""
    if everything is not None and everything <= dirty:
        return set(dirty)
    reach, frontier = set(dirty), set(dirty)
    while frontier:
        clusters = _scalars(conn, CLUSTERS.c.cluster_id, CLUSTERS.c.record_id, frontier)
        goldens = _scalars(conn, XREF.c.golden_id, XREF.c.record_id, frontier)
        members = _scalars(conn, CLUSTERS.c.record_id, CLUSTERS.c.cluster_id, clusters)
        members |= _scalars(conn, XREF.c.record_id, XREF.c.golden_id, goldens)
        frontier = members - reach
        reach |= members
    return reach


def outside_golden_of(conn: Connection, clusters: set[str]) -> dict[str, str]:
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


def last_run(conn: Connection) -> int:
    """The id of the newest consolidation run (0 before the first)."""
    return int(conn.execute(select(func.coalesce(func.max(GOLDEN_RUNS.c.id), 0))).scalar_one())


def plan(conn: Connection, config: HubConfig, *, full: bool = False) -> Planned:
    """Plan a consolidation: of every cluster (``full``: the first run, a change of the
    survivorship rules, or asked for), else of the part of the hub the queued records reach."""
    last = conn.execute(select(GOLDEN_RUNS).order_by(GOLDEN_RUNS.c.id.desc()).limit(1)).first()
    full = full or last is None or last.config_digest != config_digest(config)
    queued = list(conn.execute(select(QUEUE.c.record_id)).scalars())
    survivor = Survivor(config.survivorship, config.sources)
    next_seq = (conn.execute(select(func.max(GOLDEN.c.seq))).scalar_one() or 0) + 1
    if full:
        previous, xref = previous_goldens(conn, None), previous_xref(conn, None)
        members = membership(conn, None)
        the_plan = plan_consolidation(
            members,
            cluster_records(conn, None),
            xref,
            previous,
            next_seq,
            survivor,
            overrides=active_overrides(conn, None),
        )
        return Planned(the_plan, previous, xref, queued, True, len(members))
    # A golden record with an override not applied yet is consolidated even when nothing
    # queued it (the queue entry its pin wrote may have been taken by a run planned before).
    unapplied = unapplied_goldens(conn)
    dirty = set(queued) | members_of(conn, unapplied)
    # Only a queue as long as the clusters can hold every record (a count, not a read of all).
    clustered = conn.execute(select(func.count()).select_from(CLUSTERS)).scalar_one()
    everything = every_record(conn) if len(dirty) >= clustered else None
    reach = closure(conn, dirty, everything)
    if everything is not None and everything <= reach:
        # The whole hub (after a full rebuild of the clusters): one scan of each table, not
        # thousands of IN lists, the same rows.
        members = membership(conn, None)
        xref = previous_xref(conn, None)
        linked = set(xref.values())
        previous = {g: p for g, p in previous_goldens(conn, None).items() if g in linked}
        all_clusters = True
    else:
        members = membership(conn, reach)
        xref = previous_xref(conn, reach)
        previous = previous_goldens(conn, set(xref.values()))
        all_clusters = False
    clusters = {m.cluster_id for m in members.values()}
    outside = {
        m.organisation_cluster_id
        for m in members.values()
        if m.organisation_cluster_id is not None and m.organisation_cluster_id not in clusters
    }
    the_plan = plan_consolidation(
        members,
        cluster_records(conn, None if all_clusters else clusters),
        xref,
        previous,
        next_seq,
        survivor,
        outside_golden_of=outside_golden_of(conn, outside),
        overrides=active_overrides(conn, set(xref.values()) | unapplied),
    )
    return Planned(the_plan, previous, xref, queued, False, len(reach), reach)


def needs_consolidation(conn: Connection, config: HubConfig) -> bool:
    """Whether golden records are stale: records queued by matching (or by a steward's
    override), clusters but no golden records yet, a change of the survivorship configuration,
    or an active attribute override no consolidation has applied yet."""
    last = conn.execute(select(GOLDEN_RUNS).order_by(GOLDEN_RUNS.c.id.desc()).limit(1)).first()
    if last is None:
        return conn.execute(select(func.count()).select_from(CLUSTERS)).scalar_one() > 0
    if last.config_digest != config_digest(config):
        return True
    if conn.execute(select(QUEUE.c.record_id).limit(1)).first() is not None:
        return True
    return bool(unapplied_goldens(conn))
