"""Matching: labels, the learned model, and the clusters of records that are one customer."""

import dagster as dg
from sqlalchemy import func, select

from mdm_orchestration.matching.labels import load_default_labels
from mdm_orchestration.matching.store import (
    CLUSTERS,
    PARTY_TYPES,
    REVIEW,
    cluster_state,
    labels_digest,
    match_incremental,
    needs_full_rematch,
    rebuild_clusters,
    steward_labels,
    train_models,
)
from mdm_orchestration.resources import HubDatabase, LandingZone

ONE_CLUSTER = "every_record_in_one_cluster"
NO_GIANTS = "no_cluster_above_max_size"


@dg.asset(
    group_name="matching",
    kinds={"python", "sql"},
    owners=["team:mdm"],
    tags={"stage": "matching"},
)
def training_labels(context: dg.AssetExecutionContext, hub: HubDatabase) -> dg.MaterializeResult:
    """Labelled record pairs: the shipped defaults (from generated silos with ground truth) and
    every steward verdict (`mdm review`). The data version changes when the labels do, which is
    what tells match_model to retrain."""
    with hub.engine.connect() as conn:
        labels = steward_labels(conn)
        digests = {p: labels_digest(conn, p) for p in PARTY_TYPES}
    defaults = load_default_labels()
    by_label: dict[str, int] = {}
    for _party, _l, _r, label in labels:
        by_label[label] = by_label.get(label, 0) + 1
    combined = "".join(digests[p] for p in PARTY_TYPES)
    return dg.MaterializeResult(
        metadata={
            "steward_labels": len(labels),
            "steward_labels_by_verdict": dg.MetadataValue.json(by_label),
            "default_labels": dg.MetadataValue.json(
                {p: {k: len(v) for k, v in s.items()} for p, s in defaults.items()}
            ),
            "labels_digest": combined[:16],
        },
        data_version=dg.DataVersion(combined[:32]),
    )


class MatchModelConfig(dg.Config):
    #: Retrain even if the labels did not change.
    force: bool = False


@dg.asset(
    deps=[training_labels],
    group_name="matching",
    kinds={"python", "sql"},
    owners=["team:mdm"],
    tags={"stage": "matching"},
    pool="hub_writer",
)
def match_model(
    context: dg.AssetExecutionContext,
    config: MatchModelConfig,
    hub: HubDatabase,
    landing: LandingZone,
) -> dg.MaterializeResult:
    """dedupe's comparators and classifier per party type (persons, organisations), trained
    on the labels and stored in the hub with the digest of those labels. Retrained only when the
    labels changed; the clustering threshold is the one with the best cross-validated F1. The
    shipped default labels take part until the hub holds ``own_labels_suffice`` labels of its
    own for the party type."""
    summary = train_models(hub.engine, landing.hub_config(), force=config.force)
    metadata: dict[str, object] = {}
    for party in PARTY_TYPES:
        m = summary.metrics[party]
        metadata[f"{party}_retrained"] = summary.retrained[party]
        metadata[f"{party}_threshold"] = summary.thresholds[party]
        metadata[f"{party}_cv_f1"] = m.get("f1")
        metadata[f"{party}_cv_precision"] = m.get("precision")
        metadata[f"{party}_cv_recall"] = m.get("recall")
        metadata[f"{party}_labels"] = int(m.get("labels_match", 0) + m.get("labels_distinct", 0))
    context.log.info(f"retrained: {summary.retrained}")
    return dg.MaterializeResult(metadata=metadata)


def _sizes_table(stats: dict) -> str:
    lines = [
        "| party | records | clusters | largest | sizes (size: clusters) |",
        "|---|---:|---:|---:|---|",
    ]
    for party in PARTY_TYPES:
        s = stats.get(party)
        if s:
            sizes = ", ".join(f"{k}: {v}" for k, v in s["cluster_sizes"].items())
            lines.append(
                f"| {party} | {s['records']} | {s['clusters']} | {s['largest_cluster']} | {sizes} |"
            )
    return "\n".join(lines)


def cluster_stats(conn) -> dict:  # type: ignore[no-untyped-def]
    """Per party type: records, clusters, size distribution, contacts linked (from the hub)."""
    sizes = (
        select(CLUSTERS.c.party_type, CLUSTERS.c.cluster_id, func.count().label("n"))
        .group_by(CLUSTERS.c.party_type, CLUSTERS.c.cluster_id)
        .subquery()
    )
    out: dict = {}
    for party, n, clusters in conn.execute(
        select(sizes.c.party_type, sizes.c.n, func.count()).group_by(sizes.c.party_type, sizes.c.n)
    ):
        s = out.setdefault(
            party,
            {
                "records": 0,
                "clusters": 0,
                "cluster_sizes": {},
                "largest_cluster": 0,
                "records_in_multi_record_clusters": 0,
                "contacts_linked": 0,
            },
        )
        s["records"] += n * clusters
        s["clusters"] += clusters
        s["cluster_sizes"][str(n)] = clusters
        s["largest_cluster"] = max(s["largest_cluster"], n)
        if n > 1:
            s["records_in_multi_record_clusters"] += n * clusters
    for party, linked in conn.execute(
        select(CLUSTERS.c.party_type, func.count())
        .where(CLUSTERS.c.organisation_cluster_id.is_not(None))
        .group_by(CLUSTERS.c.party_type)
    ):
        out.setdefault(
            party,
            {
                "records": 0,
                "clusters": 0,
                "cluster_sizes": {},
                "largest_cluster": 0,
                "records_in_multi_record_clusters": 0,
                "contacts_linked": 0,
            },
        )["contacts_linked"] = linked
    for s in out.values():
        s["cluster_sizes"] = dict(sorted(s["cluster_sizes"].items(), key=lambda kv: int(kv[0])))
    return out


class MatchClustersConfig(dg.Config):
    #: Re-pair and recluster the whole hub even if only some records changed.
    full: bool = False


@dg.asset(
    deps=["cleansed_records", match_model],
    group_name="matching",
    kinds={"python", "sql"},
    owners=["team:mdm"],
    tags={"stage": "matching"},
    pool="hub_writer",
    check_specs=[
        dg.AssetCheckSpec(
            ONE_CLUSTER,
            asset="match_clusters",
            description="Every current, cleansed source record is in exactly one "
            "cluster (an incremental run checks the records it re-clustered).",
        ),
        dg.AssetCheckSpec(
            NO_GIANTS,
            asset="match_clusters",
            description="No cluster is larger than matching.yaml's max_cluster_size "
            "(over-merging).",
        ),
    ],
)
def match_clusters(
    context: dg.AssetExecutionContext,
    config: MatchClustersConfig,
    hub: HubDatabase,
    landing: LandingZone,
) -> dg.MaterializeResult:
    """Which source records are the same real person or organisation: our blocking keys find
    candidate pairs, deterministic rules decide the sure ones, dedupe's model scores the rest,
    and dedupe's clustering groups them, honouring stewards' merges and splits. Contacts are
    linked to their organisation's cluster; uncertain pairs go to the review queue."""
    hub_config = landing.hub_config()
    with hub.engine.connect() as conn:
        full = config.full or needs_full_rematch(conn)
    if full:
        result = rebuild_clusters(hub.engine, hub_config)
        run, review_pairs = result.stats["run"], result.stats["review_queue"]
        scope = None
    else:
        incremental = match_incremental(hub.engine, hub_config)
        run, review_pairs = incremental.counts, incremental.review_queue
        scope = incremental.scope
    # The checks look at what this run clustered: the whole hub after a full run.
    state = cluster_state(hub.engine, hub_config, scope)
    with hub.engine.connect() as conn:
        queue = conn.execute(
            select(func.count()).select_from(REVIEW).where(REVIEW.c.status == "pending")
        ).scalar_one()
        stats = cluster_stats(conn)
    records = sum(s["records"] for s in stats.values())
    clusters = sum(s["clusters"] for s in stats.values())
    in_multi = sum(s["records_in_multi_record_clusters"] for s in stats.values())
    context.log.info(
        f"{'full' if full else 'incremental'}: {run.get('arrived', 0)} arrived, "
        f"{run.get('clusters_touched', 0)} clusters touched; {records} records in {clusters} "
        f"clusters; review queue {queue}"
    )
    return dg.MaterializeResult(
        metadata={
            "mode": "full" if full else "incremental",
            "records_arrived": int(run.get("arrived", 0)),
            "records_removed": int(run.get("removed", 0)),
            "records_rematched": int(run.get("records", 0)),
            "clusters_touched": int(run.get("clusters_touched", 0)),
            "pairs_scored": int(run.get("pairs_scored", 0)),
            "new_review_pairs": int(review_pairs),
            "records": records,
            "clusters": clusters,
            "match_rate": round(in_multi / records, 4) if records else 0.0,
            "review_queue": int(queue),
            "contacts_linked_to_organisations": sum(s["contacts_linked"] for s in stats.values()),
            "cluster_sizes": dg.MetadataValue.md(_sizes_table(stats)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ONE_CLUSTER,
                passed=state.clustered == state.records == state.distinct_records,
                metadata={
                    "scope": "hub" if scope is None else "run",
                    "records": state.records,
                    "clustered": state.clustered,
                },
            ),
            dg.AssetCheckResult(
                check_name=NO_GIANTS,
                passed=not state.oversized,
                metadata={
                    "max_cluster_size": hub_config.matching.max_cluster_size,
                    "oversized_clusters": len(state.oversized),
                    "largest": max(state.oversized.values(), default=0),
                },
            ),
        ],
    )
