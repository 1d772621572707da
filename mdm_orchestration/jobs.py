"""Asset jobs. Sensors target them by name; they never import asset functions."""

import dagster as dg

INGEST_JOB = "ingest_job"

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets("source_extracts"),
    description="Ingest one landed extract (a partition of landed_files) into the hub.",
    # One step: a process per step would only add start-up time.
    executor_def=dg.in_process_executor,
)

CLEANSE_JOB = "cleanse_job"

cleanse_job = dg.define_asset_job(
    CLEANSE_JOB,
    selection=dg.AssetSelection.assets("cleansed_records"),
    description="Cleanse every ingested source-record version not cleansed yet.",
    executor_def=dg.in_process_executor,
)

MATCH_JOB = "match_job"

match_job = dg.define_asset_job(
    MATCH_JOB,
    selection=dg.AssetSelection.assets("training_labels", "match_model", "match_clusters"),
    description="Retrain the match model if the labels changed, then rebuild the clusters.",
    executor_def=dg.in_process_executor,
)

MASTER_JOB = "master_job"

master_job = dg.define_asset_job(
    MASTER_JOB,
    selection=dg.AssetSelection.assets("golden_records", "golden_changes", "households"),
    description="Survive the clusters into golden records, their change events and households.",
    executor_def=dg.in_process_executor,
)

RECONSOLIDATE_JOB = "reconsolidate_job"
#: Everything from cleansing to golden records; matching and survivorship only touch what
#: changed (match_clusters and golden_records decide), so a small extract costs little.
RECONSOLIDATE_ASSETS = (
    "cleansed_records",
    "training_labels",
    "match_model",
    "match_clusters",
    "golden_records",
    "golden_changes",
    "households",
)

reconsolidate_job = dg.define_asset_job(
    RECONSOLIDATE_JOB,
    selection=dg.AssetSelection.assets(*RECONSOLIDATE_ASSETS),
    description="Absorb what has been ingested: cleanse it, match it against the hub (only the "
    "clusters it reaches), re-survive the golden records it changes, write their change events.",
    executor_def=dg.in_process_executor,
)

REBUILD_JOB = "rebuild_job"

rebuild_job = dg.define_asset_job(
    REBUILD_JOB,
    selection=dg.AssetSelection.assets(*RECONSOLIDATE_ASSETS),
    description="Full rebuild: re-pair and recluster the whole hub and survive every cluster "
    "again (after a retrain, or on demand). Golden ids stay stable.",
    config={
        "ops": {
            "match_clusters": {"config": {"full": True}},
            "consolidate_golden_records": {"config": {"full": True}},
        }
    },
    executor_def=dg.in_process_executor,
)

RETRAIN_JOB = "retrain_job"

retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.assets("training_labels", "match_model"),
    description="Retrain the match model on the current labels, even if they did not change; "
    "the retrain sensor then rebuilds the clusters and golden records.",
    config={"ops": {"match_model": {"config": {"force": True}}}},
    executor_def=dg.in_process_executor,
)

SYNDICATE_JOB = "syndicate_job"

syndicate_job = dg.define_asset_job(
    SYNDICATE_JOB,
    selection=dg.AssetSelection.assets("subscriber_deliveries"),
    description="Deliver pending golden-record changes to one subscriber (a partition).",
    executor_def=dg.in_process_executor,
)

ALL_JOBS = [
    ingest_job,
    cleanse_job,
    match_job,
    master_job,
    reconsolidate_job,
    rebuild_job,
    retrain_job,
    syndicate_job,
]
