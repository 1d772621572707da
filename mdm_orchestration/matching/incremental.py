"""Incremental matching: only what changed since the last run.

The new and changed records are scored against the records they share a blocking key with (the
persisted index); the pairs kept from earlier runs stand for everything else. The region
re-clustered is every whole component of the match graph (pairs at or above the threshold,
must-links) that holds a changed or removed record, so it clusters exactly as a full run would.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, delete, func, select

from mdm_orchestration.config import HubConfig, MatchingConfig
from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.store import reconsolidation_lock, write_transaction
from mdm_orchestration.hub.tables import (
    CLUSTERS,
    INDEX,
    MATCH_LOCK_KEY,
    MATCH_RUNS,
    PAIRS,
    PARTY_TYPES,
    QUEUE,
    REVIEW,
    SOURCES,
    advisory_xact_lock,
    chunks,
    utcnow,
)
from mdm_orchestration.matching.blocking import candidate_pairs
from mdm_orchestration.matching.engine import (
    MatchResult,
    PartyMatch,
    ScoredPairs,
    assemble,
    cluster_scored,
    score_pairs,
)
from mdm_orchestration.matching.frequencies import INDEX_PREFIX, Frequencies, Levels, level_changes
from mdm_orchestration.matching.frequency_store import (
    apply_delta,
    hub_frequencies,
    index_delta,
    records_holding,
    stored_counts,
)
from mdm_orchestration.matching.model import MatchModel
from mdm_orchestration.matching.neighbourhood import (
    KeptPair,
    block_sizes,
    changed_since,
    clusters_members,
    known_organisations,
    neighbours,
    stored_clusters,
    stored_index,
    stored_links,
    stored_pairs,
)
from mdm_orchestration.matching.records import match_frame
from mdm_orchestration.matching.review_queue import max_pending, review_items_of
from mdm_orchestration.matching.runs import (
    INCREMENTAL,
    ConcurrentMatch,
    MatchRunResult,
    erasure_mark,
    record_run,
)
from mdm_orchestration.matching.steward import current_cleansed, judged_pairs, overrides
from mdm_orchestration.matching.training import load_models, model_ids, thresholds
from mdm_orchestration.matching.writes import (
    ReviewRow,
    StoredCluster,
    cleansed_upto,
    cluster_rows,
    index_rows,
    review_rows,
    versions_of,
    write_clusters,
    write_index,
    write_pairs,
    write_review,
)


def match_incremental(engine: Engine, config: HubConfig) -> MatchRunResult:
    """Match only what changed since the last run (see the module's docstring). One
    transaction writes the clusters, the index, the kept pairs, the review items and the
    consolidation queue."""
    with reconsolidation_lock(engine):
        return _match_incremental(engine, config)


@dataclass
class _Plan:
    changed: list[str]
    removed: list[str]
    result: MatchResult
    index: list[tuple[str, str, str]]
    versions: dict[str, tuple[int, int]]
    region: set[str]
    neighbours: set[str]
    new_pairs: list[ScoredPairs]
    completed: list[ScoredPairs]
    judged: set[tuple[str, str]]
    #: the stored cluster rows of the region and the removed records
    old_clusters: dict[str, StoredCluster]
    #: the stored blocking keys of the changed and removed records
    old_index: set[tuple[str, str, str]]
    #: this run's changes to the hub's term frequencies
    delta: Counter
    #: unchanged records scored again because a value they hold changed frequency level
    shifted: set[str]
    #: matching.yaml review_max_share
    share: float
    #: blocks of the changed records skipped as giant (larger than max_block_size in the hub)
    giant_blocks: int = 0

    @property
    def gone(self) -> set[str]:
        """Records whose kept pairs, review items and blocking keys are stale."""
        return set(self.changed) | set(self.removed)


def _match_incremental(engine: Engine, config: HubConfig) -> MatchRunResult:
    with engine.connect() as conn, conn.begin():
        last = conn.execute(select(MATCH_RUNS).order_by(MATCH_RUNS.c.id.desc()).limit(1)).first()
        upto = cleansed_upto(conn)
        changed, removed = changed_since(conn, last.cleansed_upto if last else None)
        counts = {
            "arrived": len(changed),
            "removed": len(removed),
            "records": 0,
            "clusters_touched": 0,
            "neighbours": 0,
            "pairs_scored": 0,
        }
        erased = erasure_mark(conn)
        plan = _plan(conn, config, changed, removed) if changed or removed else None
        if plan is not None:
            counts["frequency_shifted"] = len(plan.shifted)
            counts["neighbours"] = len(plan.neighbours)
            counts["records"] = len(plan.region)
            counts["clusters_touched"] = int(plan.result.clusters["cluster_id"].nunique())
            counts["pairs_scored"] = sum(len(p.left) for p in plan.new_pairs + plan.completed)
            counts["giant_blocks_skipped"] = plan.giant_blocks
    review: list[ReviewRow] = []
    with write_transaction(engine) as conn:
        advisory_xact_lock(conn, MATCH_LOCK_KEY)
        latest = conn.execute(select(func.max(MATCH_RUNS.c.id))).scalar_one()
        if latest != (last.id if last else None):
            raise ConcurrentMatch("another matching run committed meanwhile; run again")
        if erasure_mark(conn) != erased:
            # The plan may hold the erased records (their index entries and counts).
            raise ConcurrentMatch("an erasure committed meanwhile; run again")
        if plan is not None:
            review = _write(conn, plan, counts)
        record_run(conn, INCREMENTAL, upto, {**counts, **model_ids(conn)})
        crash_point("match:before_commit")
    if plan is None:
        return MatchRunResult(
            INCREMENTAL, counts, 0, set(), stats={"review_queue": 0, "run": counts}
        )
    return MatchRunResult(
        INCREMENTAL,
        counts,
        len(review),
        plan.region | set(removed),
        plan.result.review,
        {**plan.result.stats, "review_queue": len(review), "run": counts},
    )


# --- planning (reads only) --------------------------------------------------------------------


def _plan(conn: Connection, config: HubConfig, changed: list[str], removed: list[str]) -> _Plan:
    m = config.matching
    models = load_models(conn)
    limits = thresholds(models, config)
    gone = set(changed) | set(removed)
    index = index_rows(current_cleansed(conn, changed))
    old_index = stored_index(conn, gone)
    # Values whose count changes level change the scores of every record holding them: those
    # records are scored again, as a full rebuild would score them.
    delta = index_delta(index, old_index)
    relevel = level_changes(stored_counts(conn, delta), delta, Levels.of(m))
    shifted = records_holding(conn, relevel) - gone
    if shifted:
        changed = sorted(set(changed) | shifted)
        gone |= shifted
        index += index_rows(current_cleansed(conn, sorted(shifted)))
        old_index |= stored_index(conn, shifted)
    near, new_pairs, giants = _score_changed(conn, m, models, changed, gone, index, delta)
    must, cannot = overrides(conn)
    region = _region(conn, new_pairs, limits, must, set(changed), gone, set(removed))
    frame = match_frame(current_cleansed(conn, sorted(region)))
    region = set(frame["record_id"])
    freq = hub_frequencies(conn, frame, delta)
    parts, completed = _recluster(
        conn, frame, region, gone, new_pairs, models, m, must, cannot, freq
    )
    result = assemble(frame, parts, known_organisations(conn, frame, region | set(removed)))
    hub_records = conn.execute(select(func.count()).select_from(SOURCES)).scalar_one()
    result.review = _review_items(
        conn,
        new_pairs + completed,
        result,
        m.review_band,
        limits,
        max_pending(hub_records, m.review_max_share),
    )
    return _Plan(
        changed=changed,
        removed=removed,
        result=result,
        index=index,
        versions=versions_of(conn, sorted(region)),
        region=region,
        neighbours=near,
        new_pairs=new_pairs,
        completed=completed,
        judged=judged_pairs(conn, must, cannot),
        old_clusters=stored_clusters(conn, region | set(removed)),
        old_index=old_index,
        delta=delta,
        shifted=shifted,
        share=m.review_max_share,
        giant_blocks=giants,
    )


def _score_changed(
    conn: Connection,
    m: MatchingConfig,
    models: dict[str, MatchModel],
    changed: list[str],
    gone: set[str],
    index: list[tuple[str, str, str]],
    delta: Counter,
) -> tuple[set[str], list[ScoredPairs], int]:
    """Step 1: score the changed records against the records sharing a blocking key with them
    (``index``: the changed records' keys). Returns those neighbours, the scored pairs and how
    many blocks were skipped as giant."""
    fresh = set(changed)
    blocks = [(r, n, h) for r, n, h in index if not n.startswith(INDEX_PREFIX)]
    extra = Counter((n, h) for _r, n, h in blocks)
    keys = {(n, h) for _r, n, h in blocks}
    near = neighbours(conn, keys, gone, m.max_block_size, extra)
    sizes = block_sizes(conn, keys, gone, extra)
    around = match_frame(current_cleansed(conn, sorted(near | fresh)))
    freq = hub_frequencies(conn, around, delta)
    new_pairs = []
    giants = 0
    for party in PARTY_TYPES:
        sub = around[around["party_type"] == party].reset_index(drop=True)
        if sub.empty:
            continue
        cands = candidate_pairs(sub, party, m.max_block_size, sizes)
        giants += sum(cands.giant_blocks.values())
        mine = sub["record_id"].isin(fresh).to_numpy()
        keep = mine[cands.left] | mine[cands.right]
        left, right = cands.left[keep], cands.right[keep]
        scores, by_rule = score_pairs(sub, party, models[party], m, left, right, freq)
        new_pairs.append(
            ScoredPairs(party, sub["record_id"].to_numpy(object), left, right, scores, by_rule)
        )
    return near, new_pairs, giants


def _region(
    conn: Connection,
    new_pairs: list[ScoredPairs],
    limits: dict[str, float],
    must: list[tuple[str, str]],
    fresh: set[str],
    gone: set[str],
    removed: set[str],
) -> set[str]:
    """Step 2: every component of the match graph holding a changed or removed record (new
    pairs at or above the threshold, kept pairs, must-links and stored clusters link them)."""
    linked: dict[str, set[str]] = {}
    for sp in new_pairs:
        up = sp.scores >= limits[sp.party_type]
        for a, b in zip(sp.ids[sp.left[up]].tolist(), sp.ids[sp.right[up]].tolist(), strict=True):
            linked.setdefault(a, set()).add(b)
            linked.setdefault(b, set()).add(a)
    for a, b in must:
        linked.setdefault(a, set()).add(b)
        linked.setdefault(b, set()).add(a)
    seeds = fresh | stored_links(conn, gone, set(), limits) | clusters_members(conn, gone)
    region: set[str] = set()
    frontier = seeds - removed
    while frontier:
        region |= frontier
        found = stored_links(conn, frontier, gone, limits)
        found |= clusters_members(conn, frontier)
        for r in frontier:
            found |= linked.get(r, set())
        frontier = found - region - removed
    return region


def _party_pairs(
    party: str, pos: dict[str, int], kept: list[KeptPair], new_pairs: list[ScoredPairs]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kept and the new pairs of one party's region records, as positions (left < right)."""
    rows = [
        (pos[k.left_record_id], pos[k.right_record_id], k.score, k.by_rule)
        for k in kept
        if k.party_type == party and k.left_record_id in pos and k.right_record_id in pos
    ]
    for sp in new_pairs:
        if sp.party_type != party:
            continue
        for a, b, s, r in zip(
            sp.ids[sp.left].tolist(),
            sp.ids[sp.right].tolist(),
            sp.scores.tolist(),
            sp.by_rule.tolist(),
            strict=True,
        ):
            if a in pos and b in pos:
                rows.append((pos[a], pos[b], s, r))
    rows = [(min(a, b), max(a, b), s, r) for a, b, s, r in rows]
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float32),
        np.array([r[3] for r in rows], dtype=bool),
    )


def _recluster(
    conn: Connection,
    frame: pd.DataFrame,
    region: set[str],
    gone: set[str],
    new_pairs: list[ScoredPairs],
    models: dict[str, MatchModel],
    m: MatchingConfig,
    must: list[tuple[str, str]],
    cannot: list[tuple[str, str]],
    freq: Frequencies,
) -> tuple[dict[str, tuple[pd.DataFrame, PartyMatch]], list[ScoredPairs]]:
    """Step 3: re-cluster the region from the kept pairs and the new ones. Returns each party's
    clustering and the pairs the clustering scored to complete its components."""
    kept = stored_pairs(conn, region, gone)
    parts: dict[str, tuple[pd.DataFrame, PartyMatch]] = {}
    completed = []
    for party in PARTY_TYPES:
        sub = frame[frame["party_type"] == party].reset_index(drop=True)
        if sub.empty:
            continue
        pos = {rid: i for i, rid in enumerate(sub["record_id"].tolist())}
        left, right, scores, by_rule = _party_pairs(party, pos, kept, new_pairs)
        pm = cluster_scored(
            sub,
            party,
            models[party],
            m,
            left,
            right,
            scores,
            by_rule,
            must,
            cannot,
            frequencies=freq,
            review_limit=0,  # the run's items come from _review_items, over the whole hub
        )
        parts[party] = (sub, pm)
        n = len(left)
        completed.append(
            ScoredPairs(
                party,
                sub["record_id"].to_numpy(object),
                pm.left[n:],
                pm.right[n:],
                pm.scores[n:],
                pm.by_rule[n:],
            )
        )
    return parts, completed


def _review_items(
    conn: Connection,
    scored: list[ScoredPairs],
    result: MatchResult,
    band: tuple[float, float],
    limits: dict[str, float],
    limit: int,
) -> pd.DataFrame:
    """Step 4: review items from the uncertain pairs scored in this run (inside the region or
    not; every other uncertain pair was offered by the run that scored it), with the clusters
    their records are in now: the region's new clustering, the stored one elsewhere."""
    cluster_of = dict(zip(result.clusters["record_id"], result.clusters["cluster_id"], strict=True))
    low, high = band
    outside: set[str] = set()
    for sp in scored:
        uncertain = (sp.scores >= low) & (sp.scores < high) & ~sp.by_rule
        for side in (sp.left[uncertain], sp.right[uncertain]):
            outside.update(r for r in sp.ids[side].tolist() if r not in cluster_of)
    for rid, stored in stored_clusters(conn, outside).items():
        cluster_of[rid] = stored.cluster_id
    size_of = dict(Counter(result.clusters["cluster_id"].tolist()))
    others = sorted({c for c in cluster_of.values() if c not in size_of})
    for chunk in chunks(others):
        size_of.update(
            conn.execute(
                select(CLUSTERS.c.cluster_id, func.count())
                .where(CLUSTERS.c.cluster_id.in_(chunk))
                .group_by(CLUSTERS.c.cluster_id)
            ).all()
        )
    return review_items_of(scored, cluster_of, size_of, band, limits, limit)


# --- writing ----------------------------------------------------------------------------------


def _write(conn: Connection, plan: _Plan, counts: dict[str, int]) -> list[ReviewRow]:
    """Write what the plan changed; returns the new review items."""
    now = utcnow()
    gone = sorted(plan.gone)
    # Only rows that changed are written: most of a region clusters as before, and a changed
    # record keeps most of its blocking keys.
    rewrite = [
        r
        for r in cluster_rows(plan.result, plan.versions, now)
        if plan.old_clusters.get(r.record_id) != r.stored()
    ]
    moved = {
        r.record_id
        for r in rewrite
        if _golden_relevant(plan.old_clusters.get(r.record_id)) != r.stored().golden_relevant()
    }
    stale = [r.record_id for r in rewrite if r.record_id in plan.old_clusters]
    stale += [r for r in plan.removed if r in plan.old_clusters]
    for chunk in chunks(sorted(stale)):
        conn.execute(delete(CLUSTERS).where(CLUSTERS.c.record_id.in_(chunk)))
    write_clusters(conn, rewrite)
    crash_point("match:after_cluster_write")
    for chunk in chunks(gone):
        _delete_pending_review(conn, chunk)
        conn.execute(delete(PAIRS).where(PAIRS.c.left_record_id.in_(chunk)))
        conn.execute(delete(PAIRS).where(PAIRS.c.right_record_id.in_(chunk)))
    _write_index(conn, set(plan.index), plan.old_index)
    apply_delta(conn, plan.delta)
    write_pairs(conn, plan.new_pairs + plan.completed)
    # An earlier item for a pair shares one of its records with it: one side suffices (the
    # changed record's, whose items are few), read from both columns.
    fresh = set(plan.changed)
    among = {
        a if a in fresh or b not in fresh else b
        for a, b in zip(plan.result.review["left_id"], plan.result.review["right_id"], strict=True)
    }
    review = review_rows(conn, plan.result, plan.judged, now, among=among, share=plan.share)
    write_review(conn, review, plan.share)
    # Golden records follow clusters, organisation links and record contents: a record whose
    # row changed only in confidence need not be consolidated again.
    queued = set(conn.execute(select(QUEUE.c.record_id)).scalars())
    todo = (moved | plan.gone) - queued
    bulk_insert(conn, "consolidation_queue", ("record_id",), [(r,) for r in sorted(todo)])
    counts["clusters_rewritten"] = len(rewrite)
    counts["queued"] = len(todo)
    return review


def _golden_relevant(stored: StoredCluster | None) -> tuple[object, ...] | None:
    return None if stored is None else stored.golden_relevant()


def _delete_pending_review(conn: Connection, chunk: list[str]) -> None:
    """Pending review items of ``chunk``'s records, found through the pair indexes (one per
    side), then deleted by id: a filter on status would lead the database to scan every
    pending item."""
    for side in (REVIEW.c.left_record_id, REVIEW.c.right_record_id):
        ids = [
            i
            for i, status in conn.execute(
                select(REVIEW.c.id, REVIEW.c.status).where(side.in_(chunk))
            )
            if status == "pending"
        ]
        if ids:
            conn.execute(delete(REVIEW).where(REVIEW.c.id.in_(ids)))


def _write_index(
    conn: Connection, new: set[tuple[str, str, str]], old: set[tuple[str, str, str]]
) -> None:
    """Drop the blocking keys the changed records lost; add the ones they gained."""
    dropped = [{"r": r, "n": n} for r, n, _h in old - new]
    if dropped:
        conn.execute(
            delete(INDEX).where(
                INDEX.c.record_id == bindparam("r"), INDEX.c.key_name == bindparam("n")
            ),
            dropped,
        )
    write_index(conn, sorted(new - old))
