"""Matching: labels, the learned model, and the clusters of records that are one customer."""

import dagster as dg

from mdm_orchestration.assets.errors import customer_safe_errors
from mdm_orchestration.assets.pace import stopwatch
from mdm_orchestration.matching import (
    PARTY_TYPES,
    PartyClusters,
    cluster_state,
    cluster_stats,
    labels_digest,
    load_default_labels,
    rematch,
    review_queue_size,
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
@customer_safe_errors
def training_labels(context: dg.AssetExecutionContext, hub: HubDatabase) -> dg.MaterializeResult:
    """Labelled record pairs: the shipped defaults (from generated silos with ground truth) and
    every steward verdict (`mdm review`). The data version changes when the labels do, which is
    what tells match_model to retrain."""
    with hub.engine.connect() as conn:
        labels = steward_labels(conn)
        digests = {p: labels_digest(conn, p) for p in PARTY_TYPES}
    defaults = load_default_labels()
    by_label: dict[str, int] = {}
    for lb in labels:
        by_label[lb.label] = by_label.get(lb.label, 0) + 1
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
@customer_safe_errors
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
        # Retrained because the stored model was unsigned (an upgraded hub) or failed its check.
        metadata[f"{party}_replaced_unsigned_model"] = summary.unsigned.get(party, False)
        metadata[f"{party}_threshold"] = summary.thresholds[party]
        metadata[f"{party}_cv_f1"] = m.get("f1")
        metadata[f"{party}_cv_precision"] = m.get("precision")
        metadata[f"{party}_cv_recall"] = m.get("recall")
        metadata[f"{party}_labels"] = int(m.get("labels_match", 0) + m.get("labels_distinct", 0))
    context.log.info(f"retrained: {summary.retrained}")
    return dg.MaterializeResult(metadata=metadata)


#: Cluster-size buckets plotted over time: (lowest size, highest size or None, key suffix).
SIZE_BUCKETS = ((1, 1, "1"), (2, 2, "2"), (3, 5, "3_5"), (6, 10, "6_10"), (11, None, "11_plus"))


def _sizes_markdown(stats: dict[str, PartyClusters]) -> str:
    """The size distribution as text (``size: clusters``), for reading at a glance."""
    lines = [
        "| party | records | clusters | largest | sizes (size: clusters) |",
        "|---|---:|---:|---:|---|",
    ]
    for party in PARTY_TYPES:
        s = stats.get(party)
        if s:
            sizes = ", ".join(f"{k}: {v}" for k, v in s.cluster_sizes.items())
            lines.append(
                f"| {party} | {s.records} | {s.clusters} | {s.largest_cluster} | {sizes} |"
            )
    return "\n".join(lines)


def _clusters_table(stats: dict[str, PartyClusters]) -> dg.TableMetadataValue:
    columns = (
        "records",
        "clusters",
        "largest_cluster",
        "records_in_multi_record_clusters",
        "contacts_linked",
    )
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"party": party, **{c: int(getattr(stats[party], c)) for c in columns}})
            for party in PARTY_TYPES
            if party in stats
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("party", "string"),
                *(dg.TableColumn(c, "int") for c in columns),
            ]
        ),
    )


def _size_buckets(stats: dict[str, PartyClusters]) -> dict[str, int]:
    """``{party}_clusters_size_{bucket}``: how many clusters fall in each size bucket (every
    bucket of every party type, zeros included, so each is a continuous series in the UI)."""
    out = {}
    for party in PARTY_TYPES:
        sizes = stats[party].cluster_sizes if party in stats else {}
        for low, high, name in SIZE_BUCKETS:
            out[f"{party}_clusters_size_{name}"] = sum(
                n for size, n in sizes.items() if size >= low and (high is None or size <= high)
            )
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
@customer_safe_errors
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
    with stopwatch() as watch:
        result = rematch(hub.engine, hub_config, full=config.full)
    # The checks look at what this run clustered: the whole hub after a full run.
    state = cluster_state(hub.engine, hub_config, result.scope)
    queue = review_queue_size(hub.engine)
    stats = cluster_stats(hub.engine)
    records = sum(s.records for s in stats.values())
    clusters = sum(s.clusters for s in stats.values())
    in_multi = sum(s.records_in_multi_record_clusters for s in stats.values())
    context.log.info(
        f"{result.mode}: {result.count('arrived')} arrived, "
        f"{result.count('clusters_touched')} clusters touched; {records} records in {clusters} "
        f"clusters; review queue {queue}; " + watch.said(result.count("records"), "records")
    )
    return dg.MaterializeResult(
        metadata={
            "mode": result.mode,
            "records_arrived": result.count("arrived"),
            "records_removed": result.count("removed"),
            "records_rematched": result.count("records"),
            **watch.metadata(result.count("records"), "records"),
            "clusters_touched": result.count("clusters_touched"),
            "pairs_scored": result.count("pairs_scored"),
            # Blocks over max_block_size (shared switchboards, placeholders): skipped, counted.
            "giant_blocks_skipped": result.count("giant_blocks_skipped"),
            "new_review_pairs": result.review_pairs,
            "records": records,
            "clusters": clusters,
            "match_rate": round(in_multi / records, 4) if records else 0.0,
            "review_queue": int(queue),
            "contacts_linked_to_organisations": sum(s.contacts_linked for s in stats.values()),
            "cluster_sizes": dg.MetadataValue.md(_sizes_markdown(stats)),
            "clusters_by_party": _clusters_table(stats),
            **_size_buckets(stats),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ONE_CLUSTER,
                passed=state.clustered == state.records == state.distinct_records,
                metadata={
                    "scope": "hub" if result.scope is None else "run",
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
