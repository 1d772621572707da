"""The review queue sized for people: which uncertain pairs a steward is asked about.

Pure. From one party type's scored pairs and their clustering: only a pair in the review band
that the model alone decided (a rule's pair never is) and whose verdict could change a cluster:

- a pair inside one cluster is a possible false merge (a "distinct" verdict would split it);
- a pair across two clusters is a possible missed merge (a "match" verdict would join them).

One item per pair of clusters (or per cluster, for a possible false merge): the pair nearest the
decision threshold represents it. Items are ranked by priority = uncertainty x records affected
(the records of both clusters, or of the one), and at most ``MAX_PENDING_SHARE`` of the records
are offered, the highest priorities kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: At most this share of a party type's records is pending review (issue 16: <= 1% at every
#: hub size). A module constant until ``matching.yaml`` grows a key for it
#: (``review_max_share``); callers may pass ``max_items`` instead.
MAX_PENDING_SHARE = 0.01

REVIEW_ITEM_COLUMNS = (
    "left_id",
    "right_id",
    "score",
    "priority",
    "records_affected",
    "left_cluster_id",
    "right_cluster_id",
)


def max_pending(records: int, share: float = MAX_PENDING_SHARE) -> int:
    """How many items ``records`` records may have pending (rounded down: never above the
    share)."""
    return int(records * share + 1e-9)


def uncertainty(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 at the decision threshold, falling linearly to 0 at a score of 0 or 1."""
    s = np.asarray(scores, dtype=np.float64)
    t = min(max(float(threshold), 1e-6), 1 - 1e-6)
    return np.clip(np.where(s < t, s / t, (1.0 - s) / (1.0 - t)), 0.0, 1.0)


def review_items(
    ids: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    scores: np.ndarray,
    by_rule: np.ndarray,
    cluster_of: np.ndarray,
    band: tuple[float, float],
    threshold: float,
    *,
    max_items: int | None = None,
    party_type: str | None = None,
    cluster_size: np.ndarray | None = None,
) -> pd.DataFrame:
    """The review items of one party type's scored pairs, highest priority first.

    ``left``/``right`` are positions into ``ids`` (the record ids), ``cluster_of`` a cluster
    per position: integer labels (a cluster's id is then its smallest record id, as the engine
    names clusters) or the cluster ids themselves (strings, used as they are: the incremental
    path's records outside its region keep their stored clusters). ``cluster_size`` (per
    position, the size of its cluster) defaults to the count among ``ids``. ``max_items``
    defaults to :func:`max_pending` of ``len(ids)``. With ``party_type``, a ``party_type``
    column follows."""
    ids = np.asarray(ids, dtype=object)
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    by_rule = np.asarray(by_rule, dtype=bool)
    n = len(ids)
    limit = max_pending(n) if max_items is None else max(int(max_items), 0)
    low, high = band
    keep = np.nonzero((scores >= low) & (scores < high) & ~by_rule & (left != right))[0]
    if not len(keep) or not limit:
        return _frame(None, party_type)
    # Integers only until the few items kept: at 1M records the band holds millions of pairs.
    labels, named = _labels(cluster_of)
    size = np.bincount(labels)
    if cluster_size is not None:
        size = np.zeros(len(size), dtype=np.int64)
        size[labels] = np.asarray(cluster_size, dtype=np.int64)
    a, b, s = left[keep], right[keep], scores[keep]
    ca, cb = labels[a], labels[b]
    k1, k2 = np.minimum(ca, cb), np.maximum(ca, cb)
    key = k1 * np.int64(len(size)) + k2
    u = uncertainty(s, threshold)
    # The most uncertain pair represents its pair of clusters (ties: the first by position).
    order = np.lexsort((np.minimum(a, b), -u, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    affected = np.where(ca[first] == cb[first], size[ca[first]], size[ca[first]] + size[cb[first]])
    priority = u[first] * affected
    top = first[np.lexsort((np.minimum(a, b)[first], -priority))[:limit]]
    affected = np.where(ca[top] == cb[top], size[ca[top]], size[ca[top]] + size[cb[top]])
    roots = named if named is not None else _roots(ids, labels, np.union1d(ca[top], cb[top]))
    a, b = a[top], b[top]
    swap = ids[a] > ids[b]
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    items = pd.DataFrame(
        {
            "left_id": ids[a],
            "right_id": ids[b],
            "score": np.round(s[top], 4),
            "priority": np.round(u[top] * affected, 6),
            "records_affected": affected.astype(np.int64),
            "left_cluster_id": [roots[c] for c in labels[a].tolist()],
            "right_cluster_id": [roots[c] for c in labels[b].tolist()],
        }
    )
    items = items.sort_values(
        ["priority", "left_id", "right_id"], ascending=[False, True, True], kind="stable"
    )
    return _frame(items, party_type)


def review_items_of(
    scored: list,
    cluster_id_of: Mapping[str, str],
    cluster_size_of: Mapping[str, int],
    band: tuple[float, float],
    thresholds: Mapping[str, float],
    max_items: int,
) -> pd.DataFrame:
    """:func:`review_items` over several parties' scored pairs (``ScoredPairs``: ``party_type``,
    ``ids``, ``left``, ``right``, ``scores``, ``by_rule``) whose records' clusters are given by
    id (``cluster_id_of``: record id -> cluster id; ``cluster_size_of``: cluster id -> its
    records in the hub), as the incremental path knows them: the region's new clustering, the
    stored one elsewhere. A pair with a record of no cluster (erased) is left out. One frame,
    the highest priority first, at most ``max_items`` rows."""
    frames = []
    for sp in scored:
        ids = np.asarray(sp.ids, dtype=object)
        if not len(ids) or not len(sp.left):
            continue
        cluster = np.array([cluster_id_of.get(r) for r in ids.tolist()], dtype=object)
        known = np.array([c is not None for c in cluster.tolist()], dtype=bool)
        ok = known[sp.left] & known[sp.right]
        cluster[~known] = "\x00unclustered"
        sizes = np.array([cluster_size_of.get(c, 1) for c in cluster.tolist()], dtype=np.int64)
        frames.append(
            review_items(
                ids,
                np.asarray(sp.left)[ok],
                np.asarray(sp.right)[ok],
                np.asarray(sp.scores)[ok],
                np.asarray(sp.by_rule)[ok],
                cluster,
                band,
                thresholds[sp.party_type],
                max_items=max_items,
                party_type=sp.party_type,
                cluster_size=sizes,
            )
        )
    if not frames:
        return _frame(None, "")
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(
        ["priority", "left_id", "right_id"], ascending=[False, True, True], kind="stable"
    )
    return out.head(max_items).reset_index(drop=True)


def _labels(cluster_of: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
    """Cluster labels as integers 0..k-1, and the cluster ids when they were given."""
    values = np.asarray(cluster_of)
    if values.dtype.kind in "iu":
        _, inverse = np.unique(values, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), None
    codes, uniques = pd.factorize(pd.Series(values.astype(object)), sort=False)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _roots(ids: np.ndarray, labels: np.ndarray, wanted: np.ndarray) -> dict[int, str]:
    """The cluster id (smallest record id) of each ``wanted`` label."""
    members = np.nonzero(np.isin(labels, wanted))[0]
    out: dict[int, str] = {}
    for label, rid in zip(labels[members].tolist(), ids[members].tolist(), strict=True):
        if label not in out or rid < out[label]:
            out[label] = rid
    return out


def _frame(items: pd.DataFrame | None, party_type: str | None) -> pd.DataFrame:
    if items is None:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in REVIEW_ITEM_COLUMNS})
        out = out.astype({"score": float, "priority": float, "records_affected": np.int64})
    else:
        out = items[list(REVIEW_ITEM_COLUMNS)].reset_index(drop=True)
        out = out.astype({"left_id": object, "right_id": object})
    if party_type is not None:
        out.insert(2, "party_type", party_type)
    return out


__all__ = [
    "MAX_PENDING_SHARE",
    "REVIEW_ITEM_COLUMNS",
    "max_pending",
    "review_items",
    "review_items_of",
    "uncertainty",
]
