"""The rows matching keeps in the hub (clusters, review items, blocking keys, scored pairs),
as named tuples, and the writers both matching paths share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import Connection, bindparam, delete, func, select

from mdm_orchestration.hub.bulk import bulk_insert, indexes_dropped
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.tables import (
    CLEANSED,
    CURRENT_CLEANSED,
    EXTRACTS,
    INDEX,
    OVERRIDES,
    PARTY_TYPES,
    REVIEW,
    SOURCES,
    chunks,
    in_chunks,
)
from mdm_orchestration.matching.blocking import index_entries
from mdm_orchestration.matching.engine import MatchResult, ScoredPairs
from mdm_orchestration.matching.frequency_store import index_delta
from mdm_orchestration.matching.records import match_frame
from mdm_orchestration.matching.review_queue import MAX_PENDING_SHARE, max_pending
from mdm_orchestration.matching.steward import ordered, records_digest, version_hashes

#: Scored pairs below this match probability are not kept: they join no component, and a
#: component that needs one (to cluster its members) has it scored again.
PAIR_FLOOR = 0.05
PAIR_COLUMNS = ("left_record_id", "right_record_id", "party_type", "score", "by_rule")
INDEX_COLUMNS = ("record_id", "key_name", "key_hash")


class StoredCluster(NamedTuple):
    """A record's cluster row as the incremental path compares it (no record id, no time)."""

    party_type: str
    cluster_id: str
    confidence: float
    organisation_cluster_id: str | None
    extract_id: int
    row_number: int

    def golden_relevant(self) -> tuple[object, ...]:
        """What golden records depend on: the cluster, the organisation link, the version."""
        return (self.cluster_id, self.organisation_cluster_id, self.extract_id, self.row_number)


class ClusterRow(NamedTuple):
    record_id: str
    party_type: str
    cluster_id: str
    confidence: float
    organisation_cluster_id: str | None
    clustered_at: datetime
    extract_id: int
    row_number: int

    def stored(self) -> StoredCluster:
        return StoredCluster(
            self.party_type,
            self.cluster_id,
            self.confidence,
            self.organisation_cluster_id,
            self.extract_id,
            self.row_number,
        )


CLUSTER_COLUMNS = ClusterRow._fields


class ReviewRow(NamedTuple):
    party_type: str
    left_record_id: str
    right_record_id: str
    score: float
    status: str
    created_at: datetime
    #: uncertainty x records affected (None from a result without it)
    priority: float | None = None
    records_affected: int | None = None
    left_cluster_id: str | None = None
    right_cluster_id: str | None = None
    #: :func:`records_digest` of the two records when the item was raised
    records_digest: str | None = None


REVIEW_COLUMNS = ReviewRow._fields


def cleansed_upto(conn: Connection) -> datetime | None:
    """When the newest extract was cleansed (a run records it: later ones are new to it)."""
    return conn.execute(select(func.max(EXTRACTS.c.cleansed_at))).scalar_one()


def versions_of(conn: Connection, record_ids: list[str] | None) -> dict[str, tuple[int, int]]:
    """Each record's current cleansed version (extract id, row number)."""
    query = select(
        CLEANSED.c.source_record_id, CLEANSED.c.extract_id, CLEANSED.c.row_number
    ).select_from(CURRENT_CLEANSED)
    if record_ids is None:
        return {r: (e, n) for r, e, n in conn.execute(query)}
    out = {}
    for chunk in chunks(record_ids):
        rows = conn.execute(query.where(CLEANSED.c.source_record_id.in_(chunk)))
        out.update({r: (e, n) for r, e, n in rows})
    return out


def cluster_rows(
    result: MatchResult, versions: dict[str, tuple[int, int]], now: datetime
) -> list[ClusterRow]:
    c = result.clusters
    return [
        ClusterRow(r, p, k, float(s), o, now, *versions[r])
        for r, p, k, s, o in zip(
            c["record_id"],
            c["party_type"],
            c["cluster_id"],
            c["confidence"],
            c["organisation_cluster_id"],
            strict=True,
        )
    ]


def _column(review: pd.DataFrame, name: str) -> list[object]:
    if name in review.columns:
        return [None if v is None or v != v else v for v in review[name].tolist()]
    return [None] * len(review)


def _by_priority(review: pd.DataFrame) -> pd.DataFrame:
    """Review candidates, the highest priority first (without priorities: the most uncertain)."""
    if review.empty:
        return review
    if "priority" in review.columns:
        key = -pd.to_numeric(review["priority"], errors="coerce").fillna(-1.0).to_numpy(float)
    else:
        key = np.abs(pd.to_numeric(review["score"]).to_numpy(float) - 0.5)
    return review.iloc[np.argsort(key, kind="stable")]


def review_rows(
    conn: Connection,
    result: MatchResult,
    judged: set[tuple[str, str]],
    now: datetime,
    among: set[str] | None = None,
    share: float = MAX_PENDING_SHARE,
) -> list[ReviewRow]:
    """New pending review items from the result's review frame (``among``: the records an
    incremental run re-matched, whose pairs are the only candidates).

    A pair already pending stays as it is; a pair a steward decided (a done item) comes back only
    when one of its records changed since (its records digest differs) and no override holds it:
    the done item is then removed here, in the caller's transaction, and raised anew. A pair
    judged without a review item (an imported label, an override) does not come back."""
    query = select(
        REVIEW.c.id,
        REVIEW.c.left_record_id,
        REVIEW.c.right_record_id,
        REVIEW.c.status,
        REVIEW.c.records_digest,
    )
    existing: dict[tuple[str, str], tuple[int, str, str | None]] = {}
    if among is None:
        rows = list(conn.execute(query))
    else:
        rows = []
        for side in (REVIEW.c.left_record_id, REVIEW.c.right_record_id):
            for cond in in_chunks(side, sorted(among)):
                rows += conn.execute(query.where(cond)).all()
    for i, a, b, status, digest in rows:
        existing[ordered(a, b)] = (i, status, digest)
    forced = {
        ordered(a, b)
        for a, b in conn.execute(select(OVERRIDES.c.left_record_id, OVERRIDES.c.right_record_id))
    }
    judged = {ordered(*p) for p in judged}
    review = _by_priority(result.review)
    # The queue keeps at most max_pending items (write_review trims it): candidates are taken in
    # priority order, a batch at a time, until that many are raised, so a result with millions
    # of uncertain pairs costs no more than the items it can raise.
    limit = max_pending(conn.execute(select(func.count()).select_from(SOURCES)).scalar_one(), share)
    out: list[ReviewRow] = []
    reopened: list[int] = []
    seen: set[tuple[str, str]] = set()
    batch = max(2 * limit, 1_000)
    for lo in range(0, len(review), batch):
        if len(out) >= limit:
            break
        part = review.iloc[lo : lo + batch]
        hashes = version_hashes(
            conn, list(set(part["left_id"].tolist()) | set(part["right_id"].tolist()))
        )
        for a, b, p, s, priority, affected, lc, rc in zip(
            part["left_id"],
            part["right_id"],
            part["party_type"],
            part["score"],
            _column(part, "priority"),
            _column(part, "records_affected"),
            _column(part, "left_cluster_id"),
            _column(part, "right_cluster_id"),
            strict=True,
        ):
            if len(out) >= limit:
                break
            pair = ordered(a, b)
            if pair in seen or pair in forced:
                continue
            seen.add(pair)
            digest = records_digest(*pair, hashes)
            old = existing.get(pair)
            if old is not None:
                _id, status, old_digest = old
                if status != "done" or old_digest is None or old_digest == digest:
                    continue
                reopened.append(_id)
            elif pair in judged:
                continue
            if pair != (a, b):  # the clusters follow their records
                lc, rc = rc, lc
            out.append(
                ReviewRow(
                    p,
                    *pair,
                    float(s),
                    "pending",
                    now,
                    None if priority is None else float(priority),
                    None if affected is None else int(affected),
                    lc,
                    rc,
                    digest,
                )
            )
    for chunk in chunks(reopened):
        conn.execute(delete(REVIEW).where(REVIEW.c.id.in_(chunk)))
    return out


def index_rows(cleansed: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The blocking keys of cleansed records: ``(record_id, key_name, key_hash)``."""
    frame = match_frame(cleansed)
    rows: list[tuple[str, str, str]] = []
    for party in PARTY_TYPES:
        sub = frame[frame["party_type"] == party]
        if not sub.empty:
            rows += index_entries(sub, party)
    return rows


#: Records whose blocking-index rows a full rebuild makes and writes at a time (some 15 rows
#: each): at a million records all of them at once are 13 million tuples, some 2 GB.
INDEX_BATCH_RECORDS = 50_000


def index_batches(
    cleansed: pd.DataFrame, records: int = INDEX_BATCH_RECORDS
) -> Iterator[list[tuple[str, str, str]]]:
    """:func:`index_rows` of ``cleansed``, ``records`` records at a time: each batch sorted, the
    batches in record-id order, so that together they are ``sorted(index_rows(cleansed))``
    (a record's keys depend on that record alone) in primary-key order: appends to the
    table's B-tree, not page splits."""
    ids = cleansed["source_record_id"]
    if not ids.is_monotonic_increasing:
        cleansed = cleansed.iloc[np.argsort(ids.to_numpy(object), kind="stable")]
    for lo in range(0, len(cleansed), records):
        yield sorted(index_rows(cleansed.iloc[lo : lo + records]))


def write_full_index(
    conn: Connection, cleansed: pd.DataFrame, records: int = INDEX_BATCH_RECORDS
) -> Counter:
    """Write the blocking index of every record of ``cleansed`` into the emptied table, a batch
    at a time; returns the term counts its ``tf_*`` entries make (as :func:`index_delta` of
    them all)."""
    counts: Counter = Counter()
    for rows in index_batches(cleansed, records):
        bulk_insert(conn, "blocking_index", INDEX_COLUMNS, rows, stored=True)
        counts.update(index_delta(rows, []))
    return counts


_STORED_INDEX = "SELECT record_id, key_name, key_hash FROM blocking_index"
_IN_ORDER = "ORDER BY record_id, key_name"
#: Past this share of the stored index changed (and this many rows), a full rebuild writes the
#: whole index again (indexes dropped, rows appended in order) instead of row by row.
INDEX_REWRITE_SHARE = 0.25
INDEX_REWRITE_MIN_ROWS = 50_000


def replace_full_index(
    conn: Connection, cleansed: pd.DataFrame, records: int = INDEX_BATCH_RECORDS
) -> Counter:
    """Make the blocking index exactly :func:`index_rows` of ``cleansed`` (every current
    record), as emptying it and :func:`write_full_index` would; returns the same term counts.

    Its rows depend on the cleansed records alone, and a full rebuild's records are mostly
    the ones the index already holds: a batch at a time, in record-id order, the stored rows
    of the batch's id range (the ranges together cover every id) are compared with the new
    ones, and only the rows that differ are deleted and inserted. Once more than
    :data:`INDEX_REWRITE_SHARE` of what was read differs (a new hub, a change of the blocking
    keys), the index is emptied and written whole, its indexes dropped meanwhile.

    On SQLite only, whose ranges compare record ids byte by byte as Python sorts them; on
    PostgreSQL (a collation's order, and ``COPY``) the index is emptied and written whole."""
    if conn.dialect.name != "sqlite":
        conn.execute(delete(INDEX))
        return write_full_index(conn, cleansed, records)
    counts: Counter = Counter()
    read = changed = 0
    previous: str | None = None
    for rows in index_batches(cleansed, records):
        if not rows:
            continue  # records without keys: their stored rows are in the next range
        last = rows[-1][0]
        # Plain tuples from the driver: SQLAlchemy rows would cost more than the comparison.
        cursor = conn.connection.cursor()
        if previous is None:
            cursor.execute(f"{_STORED_INDEX} WHERE record_id <= ? {_IN_ORDER}", (last,))
        else:
            cursor.execute(
                f"{_STORED_INDEX} WHERE record_id > ? AND record_id <= ? {_IN_ORDER}",
                (previous, last),
            )
        stored_rows = cursor.fetchall()
        cursor.close()
        read += len(stored_rows)
        counts.update(index_delta(rows, []))
        previous = last
        if stored_rows == rows:  # both in primary-key order: nothing changed
            continue
        stored, new = set(stored_rows), set(rows)
        gone, added = stored - new, new - stored
        changed += len(gone) + len(added)
        if changed > max(INDEX_REWRITE_MIN_ROWS, INDEX_REWRITE_SHARE * read):
            with indexes_dropped(conn, "blocking_index"):
                conn.execute(delete(INDEX))
                return write_full_index(conn, cleansed, records)
        if gone:
            conn.execute(
                delete(INDEX).where(
                    INDEX.c.record_id == bindparam("rid"), INDEX.c.key_name == bindparam("name")
                ),
                [{"rid": r, "name": k} for r, k, _h in gone],
            )
        bulk_insert(conn, "blocking_index", INDEX_COLUMNS, sorted(added), stored=True)
    # Stored rows past the last current record (or all of them, without records).
    tail = delete(INDEX)
    conn.execute(tail if previous is None else tail.where(INDEX.c.record_id > previous))
    return counts


def write_clusters(conn: Connection, rows: list[ClusterRow]) -> None:
    bulk_insert(conn, "match_clusters", CLUSTER_COLUMNS, rows)


def write_index(conn: Connection, rows: list[tuple[str, str, str]]) -> None:
    bulk_insert(conn, "blocking_index", INDEX_COLUMNS, rows)


def write_review(conn: Connection, rows: list[ReviewRow], share: float = MAX_PENDING_SHARE) -> None:
    """Add pending items, then keep the queue within :func:`max_pending` of the hub's records
    (the lowest priorities, and items without one, go)."""
    bulk_insert(conn, "review_queue", REVIEW_COLUMNS, rows)
    trim_pending(conn, share=share)


def trim_pending(
    conn: Connection, limit: int | None = None, share: float = MAX_PENDING_SHARE
) -> int:
    """Drop the pending items beyond ``limit`` (default: :func:`max_pending` of the source
    records), the lowest priority first; returns how many went."""
    if limit is None:
        limit = max_pending(
            conn.execute(select(func.count()).select_from(SOURCES)).scalar_one(), share
        )
    pending = conn.execute(
        select(func.count()).select_from(REVIEW).where(REVIEW.c.status == "pending")
    ).scalar_one()
    if pending <= limit:
        return 0
    drop = (
        conn.execute(
            select(REVIEW.c.id)
            .where(REVIEW.c.status == "pending")
            .order_by(REVIEW.c.priority.asc().nulls_first(), func.abs(REVIEW.c.score - 0.5).desc())
            .limit(pending - limit)
        )
        .scalars()
        .all()
    )
    for chunk in chunks(drop):
        conn.execute(delete(REVIEW).where(REVIEW.c.id.in_(chunk)))
    return len(drop)


def write_pairs(
    conn: Connection,
    pairs: list[ScoredPairs],
    start: dict[str, int] | None = None,
    batch: int = 200_000,
) -> int:
    """Keep the scored pairs at or above ``PAIR_FLOOR`` (from ``start[party]`` on), a batch of
    rows at a time."""
    written = 0
    for sp in pairs:
        first = (start or {}).get(sp.party_type, 0)
        for lo in range(first, len(sp.left), batch):
            part = ScoredPairs(
                sp.party_type,
                sp.ids,
                sp.left[lo : lo + batch],
                sp.right[lo : lo + batch],
                sp.scores[lo : lo + batch],
                sp.by_rule[lo : lo + batch],
            )
            rows = part.rows(PAIR_FLOOR)
            # Ids, a party, a float and a bool: nothing to convert on the way.
            bulk_insert(conn, "match_pairs", PAIR_COLUMNS, rows, stored=True)
            written += len(rows)
            crash_point("match:after_pair_batch")
    return written
