"""Is the clustering sound and current: what the asset checks verify, what the UI plots, and
whether matching is due (a full rebuild or an incremental run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, func, select

from mdm_orchestration.config import HubConfig, MatchingConfig
from mdm_orchestration.hub.tables import (
    CLEANSED,
    CLUSTERS,
    CURRENT_CLEANSED,
    LABELS,
    MATCH_RUNS,
    OVERRIDE_REMOVALS,
    OVERRIDES,
    SOURCES,
    as_utc,
    chunks,
)
from mdm_orchestration.matching.runs import FULL, PAIRS_VERSION, matching_digest
from mdm_orchestration.matching.training import model_ids
from mdm_orchestration.matching.writes import cleansed_upto


def needs_full_rematch(conn: Connection, matching: MatchingConfig | None = None) -> bool:
    """A full rebuild is due: never matched, a model newer than the last full run, steward
    labels, overrides or removed overrides newer than the last run, kept pair scores from an
    older version, or (given ``matching``) matching.yaml's settings other than the last full
    run's."""
    last_full = conn.execute(
        select(MATCH_RUNS)
        .where(MATCH_RUNS.c.mode == FULL)
        .order_by(MATCH_RUNS.c.id.desc())
        .limit(1)
    ).first()
    if last_full is None or last_full.counts.get("pairs_version") != PAIRS_VERSION:
        return True
    if matching is not None and last_full.counts.get("matching_config") != matching_digest(
        matching
    ):
        return True
    models = model_ids(conn)
    if any(last_full.counts.get(f"{p}_model") != i for p, i in models.items()):
        return True
    last_run = conn.execute(select(func.max(MATCH_RUNS.c.finished_at))).scalar_one()
    newest = [
        conn.execute(select(func.max(LABELS.c.labelled_at))).scalar_one(),
        conn.execute(select(func.max(OVERRIDES.c.created_at))).scalar_one(),
        conn.execute(select(func.max(OVERRIDE_REMOVALS.c.removed_at))).scalar_one(),
    ]
    stamp = as_utc(last_run)
    return any(t is not None and as_utc(t) > stamp for t in newest)


def needs_rematch(conn: Connection, matching: MatchingConfig | None = None) -> bool:
    """Whether the clustering is stale: a full rebuild is due (see :func:`needs_full_rematch`)
    or extracts were cleansed after the last matching run."""
    if needs_full_rematch(conn, matching):
        return conn.execute(
            select(func.count()).select_from(CURRENT_CLEANSED)
        ).scalar_one() > 0 or (
            conn.execute(select(func.count()).select_from(CLUSTERS)).scalar_one() > 0
        )
    last = conn.execute(
        select(MATCH_RUNS.c.cleansed_upto).order_by(MATCH_RUNS.c.id.desc()).limit(1)
    ).scalar()
    newest = cleansed_upto(conn)
    if newest is None:
        return False
    return last is None or as_utc(newest) > as_utc(last)


@dataclass
class ClusterState:
    records: int
    clustered: int
    distinct_records: int
    oversized: dict[str, int]  # cluster id -> size, above max_cluster_size


def cluster_state(engine: Engine, config: HubConfig, scope: set[str] | None = None) -> ClusterState:
    """What the asset checks verify: every current record in exactly one cluster, no giant;
    over the whole hub, or over ``scope`` (the records an incremental run re-clustered or took
    out, and their clusters)."""
    with engine.connect() as conn:
        # Records to cluster: source records whose current version was cleansed (one whose
        # current version is quarantined has nothing to match on).
        count_current = select(func.count()).select_from(CURRENT_CLEANSED)
        count_clustered = select(
            func.count(), func.count(CLUSTERS.c.record_id.distinct())
        ).select_from(CLUSTERS.join(SOURCES, SOURCES.c.id == CLUSTERS.c.record_id))
        sizes = select(CLUSTERS.c.cluster_id, func.count()).group_by(CLUSTERS.c.cluster_id)
        if scope is None:
            records = conn.execute(count_current).scalar_one()
            clustered, distinct = conn.execute(count_clustered).one()
            big = conn.execute(sizes.having(func.count() > config.matching.max_cluster_size)).all()
        else:
            records = clustered = distinct = 0
            clusters: set[str] = set()
            for chunk in chunks(sorted(scope)):
                records += conn.execute(
                    count_current.where(CLEANSED.c.source_record_id.in_(chunk))
                ).scalar_one()
                n, d = conn.execute(count_clustered.where(CLUSTERS.c.record_id.in_(chunk))).one()
                clustered, distinct = clustered + n, distinct + d
                clusters.update(
                    conn.execute(
                        select(CLUSTERS.c.cluster_id).where(CLUSTERS.c.record_id.in_(chunk))
                    ).scalars()
                )
            big = []
            for chunk in chunks(sorted(clusters)):
                big += conn.execute(
                    sizes.where(CLUSTERS.c.cluster_id.in_(chunk)).having(
                        func.count() > config.matching.max_cluster_size
                    )
                ).all()
    return ClusterState(int(records), int(clustered), int(distinct), {k: int(n) for k, n in big})


@dataclass
class PartyClusters:
    """One party type's clustering, as the UI shows it."""

    records: int = 0
    clusters: int = 0
    #: cluster size -> how many clusters have it, smallest first
    cluster_sizes: dict[int, int] = field(default_factory=dict)
    largest_cluster: int = 0
    records_in_multi_record_clusters: int = 0
    contacts_linked: int = 0


def cluster_stats(engine: Engine) -> dict[str, PartyClusters]:
    """Per party type: records, clusters, size distribution, contacts linked (from the hub)."""
    sizes = (
        select(CLUSTERS.c.party_type, CLUSTERS.c.cluster_id, func.count().label("n"))
        .group_by(CLUSTERS.c.party_type, CLUSTERS.c.cluster_id)
        .subquery()
    )
    out: dict[str, PartyClusters] = {}
    with engine.connect() as conn:
        for party, n, clusters in conn.execute(
            select(sizes.c.party_type, sizes.c.n, func.count()).group_by(
                sizes.c.party_type, sizes.c.n
            )
        ):
            s = out.setdefault(party, PartyClusters())
            s.records += n * clusters
            s.clusters += clusters
            s.cluster_sizes[int(n)] = clusters
            s.largest_cluster = max(s.largest_cluster, n)
            if n > 1:
                s.records_in_multi_record_clusters += n * clusters
        for party, linked in conn.execute(
            select(CLUSTERS.c.party_type, func.count())
            .where(CLUSTERS.c.organisation_cluster_id.is_not(None))
            .group_by(CLUSTERS.c.party_type)
        ):
            out.setdefault(party, PartyClusters()).contacts_linked = linked
    for s in out.values():
        s.cluster_sizes = dict(sorted(s.cluster_sizes.items()))
    return out
