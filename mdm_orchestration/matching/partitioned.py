"""The full rebuild split by blocking-key hash (issue 21, "past one machine").

Each partition step reads the hub as the single-step rebuild does, computes the candidate pairs
of the blocks whose key hashes to it (:func:`~mdm_orchestration.matching.blocking.block_partition`),
scores them with the engine's scorer over the whole party's records (so hub-wide frequencies are
the whole hub's, exactly as in one step) and writes them to staging under the run's token. The
clustering step joins every partition's pairs (a pair two keys found, in two partitions, is one
pair with one score), then does what the single-step rebuild does after scoring, in its one
transaction, and clears every run's staging rows there. The hub is all the steps share: they may
run in separate processes or on separate machines.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, select

from mdm_orchestration.config import HubConfig
from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.store import reconsolidation_lock, write_transaction
from mdm_orchestration.hub.tables import STAGE_PAIRS, STAGE_PARTITIONS, utcnow
from mdm_orchestration.matching.blocking import Candidates, candidate_pairs
from mdm_orchestration.matching.engine import (
    PairScorer,
    PairScores,
    assemble,
    cluster_candidates,
    party_frames,
)
from mdm_orchestration.matching.rebuild import RebuildInputs, read_inputs, write_rebuild
from mdm_orchestration.matching.runs import ConcurrentMatch, MatchRunResult

STAGE_COLUMNS = (
    "token",
    "part",
    "left_record_id",
    "right_record_id",
    "party_type",
    "score",
    "by_rule",
    "weak",
    "rules",
)
#: Staged pairs written per ``bulk_insert`` call.
_BATCH = 200_000


@dataclass(frozen=True)
class RebuildPartition:
    """One partition of a partitioned rebuild: the run's token, which one, of how many."""

    token: str
    index: int
    count: int


class IncompleteRebuild(RuntimeError):
    """A partition of the run did not finish (crashed, or a newer run cleared it): nothing
    was written."""


def start_partitioned_rebuild(engine: Engine, partitions: int) -> list[RebuildPartition]:
    """A new run token and its partitions; staging rows of any other token (a run that never
    reached its clustering step) are cleared. The plan step refuses a count below 1."""
    token = uuid.uuid4().hex
    with write_transaction(engine) as conn:
        conn.execute(delete(STAGE_PAIRS).where(STAGE_PAIRS.c.token != token))
        conn.execute(delete(STAGE_PARTITIONS).where(STAGE_PARTITIONS.c.token != token))
    return [RebuildPartition(token, i, partitions) for i in range(partitions)]


def _snapshot(inputs: RebuildInputs, config: HubConfig) -> str:
    """A digest of what the scores depend on: the current cleansed versions, the models and
    the matching settings (the clustering step refuses pairs scored from another one)."""
    digest = hashlib.blake2b(digest_size=32)
    for rid, (extract, row) in sorted(inputs.versions.items()):
        digest.update(f"{rid}:{extract}:{row}\n".encode())
    digest.update(json.dumps(inputs.ids, sort_keys=True).encode())
    digest.update(json.dumps(list(inputs.erased)).encode())
    digest.update(config.matching.model_dump_json().encode())
    return digest.hexdigest()


def _stage_rows(
    part: RebuildPartition, party: str, ids: np.ndarray, cands: Candidates, scored: PairScores
) -> Iterator[list[tuple[Any, ...]]]:
    rules = np.zeros(len(cands), dtype=np.int64)
    for bit, mask in enumerate(scored.rule_masks.values()):
        rules |= mask.astype(np.int64) << bit
    for lo in range(0, len(cands), _BATCH):
        hi = lo + _BATCH
        yield [
            (part.token, part.index, a, b, party, s, r, w, k)
            for a, b, s, r, w, k in zip(
                ids[cands.left[lo:hi]].tolist(),
                ids[cands.right[lo:hi]].tolist(),
                scored.scores[lo:hi].astype(np.float64).tolist(),
                scored.by_rule[lo:hi].tolist(),
                scored.weak[lo:hi].tolist(),
                rules[lo:hi].tolist(),
                strict=True,
            )
        ]


def stage_partition(engine: Engine, config: HubConfig, part: RebuildPartition) -> dict[str, int]:
    """Score the candidate pairs of the partition's blocks and stage them (one transaction, so
    a crash stages nothing); counts only."""
    inputs = read_inputs(engine)
    _frame, subs = party_frames(inputs.cleansed)
    matching = config.matching
    staged: list[tuple[str, np.ndarray, Candidates, PairScores]] = []
    stats: dict[str, Any] = {}
    for party, sub in subs.items():
        cands = candidate_pairs(
            sub, party, matching.max_block_size, partition=(part.index, part.count)
        )
        scored = PairScorer(sub, party, inputs.models[party], matching)(cands.left, cands.right)
        staged.append((party, sub["record_id"].to_numpy(object), cands, scored))
        stats[party] = {
            "pairs_by_key": cands.pairs_by_key,
            "giant_blocks": cands.giant_blocks,
            "rules": list(scored.rule_masks),
            # What the clustering step must read back (it refuses anything else).
            "pairs": len(cands),
        }
    with write_transaction(engine) as conn:
        _clear(conn, part.token, part.index)
        for party, ids, cands, scored in staged:
            for rows in _stage_rows(part, party, ids, cands, scored):
                bulk_insert(conn, "match_stage_pairs", STAGE_COLUMNS, rows)
                crash_point("match:after_stage_batch")
        conn.execute(
            STAGE_PARTITIONS.insert().values(
                token=part.token,
                part=part.index,
                partitions=part.count,
                snapshot=_snapshot(inputs, config),
                stats=stats,
                finished_at=utcnow(),
            )
        )
    return {
        "records": len(inputs.cleansed),
        "pairs_staged": sum(len(c) for _p, _i, c, _s in staged),
        "giant_blocks_skipped": sum(sum(c.giant_blocks.values()) for _p, _i, c, _s in staged),
    }


def _clear(conn: Connection, token: str, partition: int) -> None:
    conn.execute(
        delete(STAGE_PAIRS).where(STAGE_PAIRS.c.token == token, STAGE_PAIRS.c.part == partition)
    )
    conn.execute(
        delete(STAGE_PARTITIONS).where(
            STAGE_PARTITIONS.c.token == token, STAGE_PARTITIONS.c.part == partition
        )
    )


def _clear_all(conn: Connection) -> None:
    """Every run's staging rows (erasure deletes them all too: staged pairs name record ids,
    and a run in flight is refused anyway, since its snapshot holds the erasure)."""
    conn.execute(delete(STAGE_PAIRS))
    conn.execute(delete(STAGE_PARTITIONS))


@contextmanager
def _snapshot_read(engine: Engine) -> Iterator[Connection]:
    """One read transaction that sees one state of the staging tables throughout: on
    PostgreSQL at REPEATABLE READ (READ COMMITTED would let another run's plan step clear the
    rows between two of its reads); SQLite's read transaction already is a snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _joined(
    conn: Connection,
    token: str,
    partitions: int,
    party: str,
    sub: pd.DataFrame,
    stats: list[dict[str, Any] | None],
) -> tuple[Candidates, PairScores]:
    """Every partition's staged pairs of ``party`` as one set of candidates with their scores,
    in the order the single-step rebuild lists them (by left, then right position). ``stats``
    is each partition's (by index); a partition whose rows read differ in number from those it
    staged (cleared by another run's plan step meanwhile) is refused."""
    n = max(len(sub), 1)
    where = pd.Index(sub["record_id"].to_numpy(object))
    codes, scores, by_rule, weak, rules = [], [], [], [], []
    columns = [STAGE_PAIRS.c[c] for c in STAGE_COLUMNS[2:] if c != "party_type"]
    for index in range(partitions):  # one partition's rows as Python objects at a time
        rows = conn.execute(
            select(*columns).where(
                STAGE_PAIRS.c.token == token,
                STAGE_PAIRS.c.part == index,
                STAGE_PAIRS.c.party_type == party,
            )
        ).all()
        staged = (stats[index] or {}).get("pairs", 0)
        if len(rows) != staged:
            raise IncompleteRebuild(
                f"partition {index} of {partitions} staged {staged} {party} pairs but "
                f"{len(rows)} were read (another run cleared them?); run again"
            )
        if not rows:
            continue
        left_ids, right_ids, s, r, w, k = zip(*rows, strict=True)
        a = where.get_indexer(list(left_ids)).astype(np.int64)
        b = where.get_indexer(list(right_ids)).astype(np.int64)
        if (a < 0).any() or (b < 0).any():
            raise ConcurrentMatch("a staged pair names a record the hub no longer holds")
        codes.append(np.minimum(a, b) * n + np.maximum(a, b))
        scores.append(np.asarray(s, dtype=np.float64).astype(np.float32))
        by_rule.append(np.asarray(r, dtype=bool))
        weak.append(np.asarray(w, dtype=bool))
        rules.append(np.asarray(k, dtype=np.int64))
    if not codes:
        codes, scores, by_rule, weak, rules = (
            [np.zeros(0, t)] for t in (np.int64, np.float32, bool, bool, np.int64)
        )
    # A pair two partitions found (two records sharing keys of both) is one pair, one score.
    unique, first = np.unique(np.concatenate(codes), return_index=True)
    pick = np.concatenate(rules)[first]
    by_key: dict[str, int] = {}
    giants: dict[str, int] = {}
    present = [s for s in stats if s]
    for s in present:
        for name, count in s["pairs_by_key"].items():
            by_key[name] = by_key.get(name, 0) + count
        for name, count in s["giant_blocks"].items():
            giants[name] = giants.get(name, 0) + count
    names = present[0]["rules"] if present else []
    cands = Candidates(unique // n, unique % n, by_key, giants)
    scored = PairScores(
        np.concatenate(scores)[first],
        np.concatenate(by_rule)[first],
        np.concatenate(weak)[first],
        {name: int(((pick >> bit) & 1).sum()) for bit, name in enumerate(names)},
    )
    return cands, scored


def finish_partitioned_rebuild(
    engine: Engine, config: HubConfig, token: str, partitions: int
) -> MatchRunResult:
    """Join the run's staged pairs, cluster them and write the result exactly as
    :func:`~mdm_orchestration.matching.rebuild_clusters` does (one transaction, which also
    clears every run's staging rows), under the same locks."""
    with reconsolidation_lock(engine):
        inputs = read_inputs(engine)
        snapshot = _snapshot(inputs, config)
        with _snapshot_read(engine) as conn:
            done = {
                row.part: row
                for row in conn.execute(
                    select(STAGE_PARTITIONS).where(STAGE_PARTITIONS.c.token == token)
                )
            }
            missing = sorted(set(range(partitions)) - set(done))
            if missing:
                raise IncompleteRebuild(
                    f"{len(missing)} of {partitions} partitions did not finish; run again"
                )
            stale = sorted(
                i for i, r in done.items() if r.snapshot != snapshot or r.partitions != partitions
            )
            if stale:
                raise ConcurrentMatch(
                    f"the hub changed while partitions {stale} of {partitions} scored (or they "
                    "belong to another split); run again"
                )
            frame, subs = party_frames(inputs.cleansed)
            parts = {}
            for party, sub in subs.items():
                stats = [done[i].stats.get(party) for i in range(partitions)]
                cands, scored = _joined(conn, token, partitions, party, sub, stats)
                model = inputs.models[party]
                scorer = PairScorer(sub, party, model, config.matching)
                parts[party] = (
                    sub,
                    cluster_candidates(
                        sub,
                        party,
                        model,
                        config.matching,
                        cands,
                        scored,
                        scorer,
                        list(inputs.must),
                        list(inputs.cannot),
                    ),
                )
        result = assemble(frame, parts)
        # Every token's rows go: this run's, and those of runs that will never finish (a newer
        # run's partitions, if any, are then missing and that run is refused).
        return write_rebuild(engine, config, inputs, result, also=_clear_all)
