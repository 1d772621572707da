"""Thin Dagster assets over the domain packages. Only ``definitions.py`` imports this."""

from mdm_orchestration.assets.cleansing import cleansed_records
from mdm_orchestration.assets.ingestion import source_extracts
from mdm_orchestration.assets.mastering import consolidate_golden_records, households
from mdm_orchestration.assets.matching import match_clusters, match_model, training_labels
from mdm_orchestration.assets.partitioned_rebuild import OP_JOBS, partitioned_rebuild_job
from mdm_orchestration.assets.syndication import subscriber_deliveries

ALL_ASSETS = [
    source_extracts,
    cleansed_records,
    training_labels,
    match_model,
    match_clusters,
    consolidate_golden_records,
    households,
    subscriber_deliveries,
]

__all__ = [
    "ALL_ASSETS",
    "OP_JOBS",
    "cleansed_records",
    "consolidate_golden_records",
    "households",
    "match_clusters",
    "match_model",
    "partitioned_rebuild_job",
    "source_extracts",
    "subscriber_deliveries",
    "training_labels",
]
