"""Matching: which cleansed records are the same person or organisation (no Dagster in here).

This module is the face: callers (assets, the CLI, tests, benchmarks) import from here. Behind it,
the pure modules decide: ``blocking`` (our candidate pairs), ``rules`` (deterministic matches),
``model`` (dedupe's comparators and classifier), ``clustering`` (dedupe's hierarchical
clustering with steward constraints), ``engine`` (``match_records``), ``labels`` (the shipped
default labels) and ``evaluation`` (metrics against ground truth). The hub side: ``steward``
(labels, overrides, the review queue), ``training`` (the model registry), ``rebuild`` (the
full run), ``partitioned`` (the full run split by blocking-key hash into steps that exchange
only through the hub), ``incremental`` (the incremental run, reading through
``neighbourhood``), ``writes`` (the rows both runs write), ``runs`` (their one result type)
and ``health`` (checks, statistics, staleness). dedupe itself is imported only where a model is trained or scores pairs.
"""

from __future__ import annotations

from sqlalchemy import Engine

from mdm_orchestration.config import HubConfig
from mdm_orchestration.hub.tables import ORGANISATION, PARTY_TYPES, PERSON
from mdm_orchestration.matching.explain import Explanation, explain_pair
from mdm_orchestration.matching.frequency_store import all_counts as term_frequencies
from mdm_orchestration.matching.frequency_store import forget_records
from mdm_orchestration.matching.health import (
    ClusterState,
    PartyClusters,
    cluster_state,
    cluster_stats,
    needs_full_rematch,
    needs_rematch,
)
from mdm_orchestration.matching.incremental import match_incremental
from mdm_orchestration.matching.labels import load_default_labels
from mdm_orchestration.matching.online import (
    AUTO,
    NONE,
    REVIEW,
    OnlineMatch,
    band_of,
    match_many,
    match_many_of,
    match_one,
    match_threshold,
)
from mdm_orchestration.matching.online import Candidate as MatchCandidate
from mdm_orchestration.matching.partitioned import (
    IncompleteRebuild,
    RebuildPartition,
    finish_partitioned_rebuild,
    stage_partition,
    start_partitioned_rebuild,
)
from mdm_orchestration.matching.rebuild import rebuild_clusters
from mdm_orchestration.matching.review_queue import MAX_PENDING_SHARE, max_pending, review_items
from mdm_orchestration.matching.runs import (
    FULL,
    INCREMENTAL,
    ConcurrentMatch,
    MatchRunResult,
)
from mdm_orchestration.matching.steward import (
    LABEL_VALUES,
    OVERRIDE_KINDS,
    StewardLabel,
    UnknownRecord,
    current_cleansed,
    explain_item,
    pending_review,
    record_label,
    record_override,
    remove_override,
    remove_overrides,
    resolve_record,
    review_queue_size,
    steward_labels,
)
from mdm_orchestration.matching.training import (
    NoModel,
    TrainSummary,
    labels_digest,
    load_models,
    model_ids,
    train_models,
)


def rematch(engine: Engine, config: HubConfig, *, full: bool = False) -> MatchRunResult:
    """Bring the clustering up to date: a full rebuild when asked for or due (see
    :func:`needs_full_rematch`), else an incremental run over what changed."""
    with engine.connect() as conn:
        full = full or needs_full_rematch(conn, config.matching)
    return rebuild_clusters(engine, config) if full else match_incremental(engine, config)


__all__ = [
    "AUTO",
    "NONE",
    "REVIEW",
    "MatchCandidate",
    "OnlineMatch",
    "band_of",
    "match_many",
    "match_many_of",
    "match_one",
    "match_threshold",
    "FULL",
    "INCREMENTAL",
    "LABEL_VALUES",
    "MAX_PENDING_SHARE",
    "ORGANISATION",
    "OVERRIDE_KINDS",
    "PARTY_TYPES",
    "PERSON",
    "ClusterState",
    "ConcurrentMatch",
    "Explanation",
    "IncompleteRebuild",
    "MatchRunResult",
    "NoModel",
    "PartyClusters",
    "RebuildPartition",
    "StewardLabel",
    "TrainSummary",
    "UnknownRecord",
    "cluster_state",
    "cluster_stats",
    "current_cleansed",
    "explain_item",
    "explain_pair",
    "finish_partitioned_rebuild",
    "forget_records",
    "labels_digest",
    "load_default_labels",
    "load_models",
    "model_ids",
    "match_incremental",
    "max_pending",
    "needs_full_rematch",
    "needs_rematch",
    "pending_review",
    "rebuild_clusters",
    "record_label",
    "record_override",
    "remove_override",
    "remove_overrides",
    "rematch",
    "resolve_record",
    "review_items",
    "review_queue_size",
    "stage_partition",
    "start_partitioned_rebuild",
    "steward_labels",
    "term_frequencies",
    "train_models",
]
