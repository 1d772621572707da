"""Matching: labels, the learned model, and the clusters of records that are one customer."""

import dagster as dg
from sqlalchemy import func, select

from mdm_orchestration.matching.labels import load_default_labels
from mdm_orchestration.matching.store import (
    PARTY_TYPES,
    REVIEW,
    cluster_state,
    labels_digest,
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
    context: dg.AssetExecutionContext, config: MatchModelConfig, hub: HubDatabase
) -> dg.MaterializeResult:
    """dedupe's comparators and classifier per party type (persons, organisations), trained
    on the labels and stored in the hub with the digest of those labels. Retrained only when the
    labels changed; the clustering threshold is the one with the best cross-validated F1."""
    summary = train_models(hub.engine, force=config.force)
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


@dg.asset(
    deps=["cleansed_records", match_model],
    group_name="matching",
    kinds={"python", "sql"},
    owners=["team:mdm"],
    tags={"stage": "matching"},
    pool="hub_writer",
    check_specs=[
        dg.AssetCheckSpec(ONE_CLUSTER, asset="match_clusters",
                          description="Every current, cleansed source record is in exactly one cluster."),
        dg.AssetCheckSpec(NO_GIANTS, asset="match_clusters",
                          description="No cluster is larger than matching.yaml's max_cluster_size "
                          "(over-merging)."),
    ],
)  # fmt: skip
def match_clusters(
    context: dg.AssetExecutionContext, hub: HubDatabase, landing: LandingZone
) -> dg.MaterializeResult:
    """Which source records are the same real person or organisation: our blocking keys find
    candidate pairs, deterministic rules decide the sure ones, dedupe's model scores the rest,
    and dedupe's clustering groups them, honouring stewards' merges and splits. Contacts are
    linked to their organisation's cluster; uncertain pairs go to the review queue."""
    config = landing.hub_config()
    result = rebuild_clusters(hub.engine, config)
    state = cluster_state(hub.engine, config)
    stats = result.stats
    records = sum(stats[p]["records"] for p in PARTY_TYPES if p in stats)
    clusters = sum(stats[p]["clusters"] for p in PARTY_TYPES if p in stats)
    in_multi = int((result.clusters.groupby("cluster_id")["record_id"].transform("size") > 1).sum())
    with hub.engine.connect() as conn:
        queue = conn.execute(
            select(func.count()).select_from(REVIEW).where(REVIEW.c.status == "pending")
        ).scalar_one()
    context.log.info(f"{records} records in {clusters} clusters; review queue {queue}")
    return dg.MaterializeResult(
        metadata={
            "records": records,
            "clusters": clusters,
            "match_rate": round(in_multi / records, 4) if records else 0.0,
            "review_queue": int(queue),
            "contacts_linked_to_organisations": stats["contacts_linked_to_organisations"],
            "cluster_sizes": dg.MetadataValue.md(_sizes_table(stats)),
            "by_party": dg.MetadataValue.json(
                {
                    p: {k: v for k, v in s.items() if k != "cluster_sizes"}
                    for p, s in stats.items()
                    if p in PARTY_TYPES
                }
            ),
        },  # fmt: skip
        check_results=[
            dg.AssetCheckResult(
                check_name=ONE_CLUSTER,
                passed=state.clustered == state.records == state.distinct_records,
                metadata={"records": state.records, "clustered": state.clustered},
            ),
            dg.AssetCheckResult(
                check_name=NO_GIANTS,
                passed=not state.oversized,
                metadata={
                    "max_cluster_size": config.matching.max_cluster_size,
                    "oversized_clusters": len(state.oversized),
                    "largest": max(state.oversized.values(), default=0),
                },
            ),
        ],
    )
