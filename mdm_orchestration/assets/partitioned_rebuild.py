"""The partitioned full rebuild (issue 21): an op job, since its steps are partitions of one
asset's computation. One step per partition (each its own process under the multiprocess
executor, or its own pod or Celery task beyond one machine) scores the pairs of the blocks
whose key hashes to it into the hub; one step in the ``hub_writer`` pool clusters them all.
The steps exchange only through the hub database: what passes between them is the run token
and a partition number."""

from collections.abc import Iterator

import dagster as dg

from mdm_orchestration.assets.errors import customer_safe_errors
from mdm_orchestration.assets.pace import stopwatch
from mdm_orchestration.matching import (
    RebuildPartition,
    finish_partitioned_rebuild,
    stage_partition,
    start_partitioned_rebuild,
)
from mdm_orchestration.resources import HubConfigResource, HubDatabase

PARTITIONED_REBUILD_JOB = "partitioned_rebuild_job"


class PartitionedRebuildConfig(dg.Config):
    #: How many partitions (steps) candidate generation and scoring are split into, by
    #: blocking-key hash.
    partitions: int = 4


@dg.op(
    out=dg.DynamicOut(RebuildPartition),
    tags={"stage": "matching"},
    description="A new run token and one output per partition (stale staging rows go).",
)
@customer_safe_errors
def plan_rebuild_partitions(
    context: dg.OpExecutionContext, config: PartitionedRebuildConfig, hub: HubDatabase
) -> Iterator[dg.DynamicOutput[RebuildPartition]]:
    if config.partitions < 1:
        raise dg.Failure(description=f"partitions must be at least 1, not {config.partitions}")
    for part in start_partitioned_rebuild(hub.engine, config.partitions):
        yield dg.DynamicOutput(part, mapping_key=str(part.index))


@dg.op(
    tags={"stage": "matching"},
    description="Candidate pairs of the blocks whose key hashes to this partition, scored as "
    "the full rebuild scores them, staged in the hub under the run token. Only its own staging "
    "rows: partitions run side by side, outside the hub_writer pool.",
)
@customer_safe_errors
def score_rebuild_partition(
    context: dg.OpExecutionContext,
    part: RebuildPartition,
    hub: HubDatabase,
    config: HubConfigResource,
) -> dg.Output[RebuildPartition]:
    with stopwatch() as watch:
        counts = stage_partition(hub.engine, config.hub, part)
    context.log.info(
        f"partition {part.index + 1} of {part.count}: {counts['pairs_staged']} pairs staged "
        + watch.said(counts["records"], "records")
    )
    return dg.Output(
        part,
        metadata={
            "partition": part.index,
            "partitions": part.count,
            **counts,
            **watch.metadata(counts["records"], "records"),
        },
    )


@dg.op(
    pool="hub_writer",
    tags={"stage": "matching"},
    description="Joins every partition's staged pairs and clusters them exactly as the full "
    "rebuild does: clusters, blocking index, kept pairs, review items and the consolidation "
    "queue replaced in one transaction, which also clears the run's staging rows.",
)
@customer_safe_errors
def cluster_rebuild_partitions(
    context: dg.OpExecutionContext,
    parts: list[RebuildPartition],
    hub: HubDatabase,
    config: HubConfigResource,
) -> dg.Output[dict[str, int]]:
    token, count = parts[0].token, parts[0].count
    with stopwatch() as watch:
        result = finish_partitioned_rebuild(hub.engine, config.hub, token, count)
    counts = {k: int(v) for k, v in result.counts.items()}
    context.log.info(
        f"{result.count('records')} records, {result.count('clusters_touched')} clusters, "
        f"from {count} partitions; {result.review_pairs} review items "
        + watch.said(result.count("records"), "records")
    )
    return dg.Output(
        counts,
        metadata={
            "partitions": count,
            **counts,
            "new_review_pairs": result.review_pairs,
            **watch.metadata(result.count("records"), "records"),
        },
    )


@dg.job(
    name=PARTITIONED_REBUILD_JOB,
    description="Full rebuild of the match clusters split by blocking-key hash: one step per "
    "partition (each its own process) scores its blocks' pairs into the hub, then one step "
    "clusters them all; the steps exchange only through the hub database. The partition "
    "count is run config (ops.plan_rebuild_partitions.config.partitions, default 4). Run "
    "master_job afterwards to survive every cluster again.",
    executor_def=dg.multiprocess_executor,
    tags={"stage": "matching"},
)
def partitioned_rebuild_job() -> None:
    cluster_rebuild_partitions(plan_rebuild_partitions().map(score_rebuild_partition).collect())


#: Op jobs (the asset jobs are in ``jobs.py``).
OP_JOBS = [partitioned_rebuild_job]
