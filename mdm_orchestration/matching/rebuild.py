"""The full rebuild: cluster every current record and replace the clustering, the blocking
index, the kept pairs and the pending review items in one transaction (a crash leaves the
previous clustering in place)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, Engine, delete, select

from mdm_orchestration.config import HubConfig
from mdm_orchestration.hub.bulk import indexes_dropped
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.store import reconsolidation_lock, write_transaction
from mdm_orchestration.hub.tables import (
    CLUSTERS,
    MATCH_LOCK_KEY,
    PAIRS,
    QUEUE,
    REVIEW,
    XREF,
    advisory_xact_lock,
    utcnow,
)
from mdm_orchestration.matching.engine import MatchResult, match_records
from mdm_orchestration.matching.frequency_store import replace_counts
from mdm_orchestration.matching.model import MatchModel
from mdm_orchestration.matching.runs import (
    FULL,
    PAIRS_VERSION,
    ConcurrentMatch,
    MatchRunResult,
    erasure_mark,
    matching_digest,
    record_run,
)
from mdm_orchestration.matching.steward import current_cleansed, judged_pairs, overrides
from mdm_orchestration.matching.training import load_models, model_ids
from mdm_orchestration.matching.writes import (
    cleansed_upto,
    cluster_rows,
    replace_full_index,
    review_rows,
    versions_of,
    write_clusters,
    write_pairs,
    write_review,
)


def rebuild_clusters(engine: Engine, config: HubConfig) -> MatchRunResult:
    """Cluster every current source record; replace the clustering, the blocking index and the
    pending review items in one transaction, and queue every record for consolidation. Pairs a
    steward already judged do not come back for review."""
    with reconsolidation_lock(engine):
        return _rebuild_clusters(engine, config)


@dataclass
class RebuildInputs:
    """What a full rebuild reads from the hub, in one transaction, before it matches."""

    models: dict[str, MatchModel]
    ids: dict[str, int]
    upto: datetime | None
    cleansed: pd.DataFrame
    versions: dict[str, tuple[int, int]]
    must: list[tuple[str, str]]
    cannot: list[tuple[str, str]]
    judged: set[tuple[str, str]]
    erased: tuple[int, int | None]


def read_inputs(engine: Engine) -> RebuildInputs:
    with engine.connect() as conn, conn.begin():
        models = load_models(conn)
        ids = model_ids(conn)
        upto = cleansed_upto(conn)
        cleansed = current_cleansed(conn)
        versions = versions_of(conn, None)
        must, cannot = overrides(conn)
        judged = judged_pairs(conn, must, cannot)
        erased = erasure_mark(conn)
    return RebuildInputs(models, ids, upto, cleansed, versions, must, cannot, judged, erased)


def _rebuild_clusters(engine: Engine, config: HubConfig) -> MatchRunResult:
    inputs = read_inputs(engine)
    result = match_records(
        inputs.cleansed, inputs.models, config.matching, inputs.must, inputs.cannot
    )
    return write_rebuild(engine, config, inputs, result)


def write_rebuild(
    engine: Engine,
    config: HubConfig,
    inputs: RebuildInputs,
    result: MatchResult,
    also: Callable[[Connection], None] | None = None,
) -> MatchRunResult:
    """Replace the clustering, the blocking index, the kept pairs and the pending review items
    with ``result`` (of ``inputs``) in one transaction, queue every record for consolidation
    and record the run; ``also`` runs in the same transaction before it commits."""
    cleansed, versions, judged, ids = inputs.cleansed, inputs.versions, inputs.judged, inputs.ids
    now = utcnow()
    with write_transaction(engine) as conn:
        advisory_xact_lock(conn, MATCH_LOCK_KEY)
        if erasure_mark(conn) != inputs.erased:
            # The result may hold the erased records (clusters, index entries, counts).
            raise ConcurrentMatch("an erasure committed meanwhile; run again")
        # Each table's secondary indexes are built once its rows are in (SQLite; see
        # indexes_dropped), not row by row: at a million records they are the write's cost.
        with indexes_dropped(conn, "match_clusters"):
            conn.execute(delete(CLUSTERS))
            write_clusters(conn, cluster_rows(result, versions, now))
        crash_point("match:after_cluster_write")
        terms = replace_full_index(conn, cleansed)
        replace_counts(conn, terms)
        with indexes_dropped(conn, "match_pairs"):
            conn.execute(delete(PAIRS))
            write_pairs(conn, result.pairs)
        conn.execute(delete(REVIEW).where(REVIEW.c.status == "pending"))
        share = config.matching.review_max_share
        review = review_rows(conn, result, judged, now, share=share)
        write_review(conn, review, share)
        # Every record (and every record that had a golden record) is consolidated again.
        conn.execute(delete(QUEUE))
        conn.execute(
            QUEUE.insert().from_select(
                ["record_id"], select(CLUSTERS.c.record_id).union(select(XREF.c.record_id))
            )
        )
        counts = {
            "records": len(result.clusters),
            "arrived": len(result.clusters),
            "removed": 0,
            "clusters_touched": int(result.clusters["cluster_id"].nunique())
            if len(result.clusters)
            else 0,
            "pairs_version": PAIRS_VERSION,
            # Blocks larger than max_block_size, skipped before scoring (RELIABILITY row 24).
            "giant_blocks_skipped": sum(
                sum(s.get("giant_blocks_skipped", {}).values())
                for s in result.stats.values()
                if isinstance(s, dict)
            ),
            **{f"{p}_model": i for p, i in ids.items()},
        }
        # The settings the kept pairs and clusters were made with (a fingerprint, not a count).
        record_run(
            conn, FULL, inputs.upto, {**counts, "matching_config": matching_digest(config.matching)}
        )
        if also is not None:
            also(conn)
        crash_point("match:before_commit")
    return MatchRunResult(
        mode=FULL,
        counts=counts,
        review_pairs=len(review),
        scope=None,
        review=result.review,
        stats={**result.stats, "review_queue": len(review), "run": counts},
    )
