"""Clusters from scored pairs: dedupe's hierarchical clustering, then steward constraints.

Each connected component of pairs above the threshold is clustered hierarchically with
dedupe's components, distance matrix and confidences, by average linkage (UPGMA) where dedupe's
own ``cluster`` fixes centroid linkage, so a chain of weak links does not fuse two people.
Centroid linkage assumes Euclidean distances, which match scores are not: a record four near-
certain links bind to a person's cluster was left out because the cluster also held a record
it scores low against (measured: FEBRL3 F1 0.9992 with centroid, 1.0 with average linkage).

Must-link pairs enter with score 1.0 (they merge first and stay merged); cannot-link pairs are
removed, and a cluster that still holds both ends of one (through other records) is split again
by greedy union in descending score order that refuses every union joining a cannot-link pair.
Both constraints always hold.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from mdm_orchestration.hub.tables import component_labels


@dataclass
class Clustering:
    cluster_of: np.ndarray  # position -> cluster number (0..k-1)
    confidence: np.ndarray  # position -> dedupe's per-record confidence (1.0 for singletons)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _components(
    n: int, left: np.ndarray, right: np.ndarray, extra: list[tuple[int, int]]
) -> np.ndarray:
    """The connected component of each record, through ``left``-``right`` and ``extra``."""
    return component_labels(
        n, [*left.tolist(), *(a for a, _b in extra)], [*right.tolist(), *(b for _a, b in extra)]
    )


def _split_constrained(
    members: list[int], edges: list[tuple[float, int, int]], cannot: set[tuple[int, int]]
) -> list[list[int]]:
    """Greedy union over ``edges`` (score, a, b) inside one cluster, never joining a forbidden pair."""
    index = {m: k for k, m in enumerate(members)}
    parent = list(range(len(members)))
    groups: dict[int, set[int]] = {k: {m} for k, m in enumerate(members)}
    for _score, a, b in sorted(edges, reverse=True):
        ra, rb = _find(parent, index[a]), _find(parent, index[b])
        if ra == rb:
            continue
        if any((min(x, y), max(x, y)) in cannot for x in groups[ra] for y in groups[rb]):
            continue
        parent[rb] = ra
        groups[ra] |= groups.pop(rb)
    return [sorted(g) for g in groups.values()]


#: dedupe's ``connected_components`` re-filters a component of more nodes than this.
MAX_COMPONENT = 30000


def _flat_clusters(linkage: np.ndarray, n: int, distance: float) -> list[list[int]]:
    """scipy's ``fcluster(linkage, distance, criterion="distance")`` as groups of leaves, each
    in ascending order: a merge is kept when no merge below it (itself included) is higher than
    ``distance`` (scipy's cophenetic rule, read off the linkage without its checks, which cost
    more than the clustering of a small component)."""
    parent = list(range(2 * n - 1))
    highest = [0.0] * (n - 1)
    for i, (a, b, height) in enumerate(linkage[:, :3].tolist()):
        a, b = int(a), int(b)
        top = max(
            height, highest[a - n] if a >= n else height, highest[b - n] if b >= n else height
        )
        highest[i] = top
        if top <= distance:
            parent[a] = parent[b] = n + i
    groups: dict[int, list[int]] = {}
    for leaf in range(n):
        node = leaf
        while parent[node] != node:
            node = parent[node]
        groups.setdefault(node, []).append(leaf)
    return list(groups.values())


#: The pairs of three records, in the order of their condensed distances.
_PAIRS_OF_THREE = ((0, 1), (0, 2), (1, 2))


def _three(condensed: np.ndarray, distance: float) -> list[list[int]] | None:
    """The flat clusters of three records (the commonest component of more than one pair)
    without scipy: average linkage merges the closest pair at its distance, then the third
    record at the mean of its two distances, exactly as scipy computes it; the cut keeps a merge
    no higher than ``distance``. None when two distances tie for the closest (then which pair
    scipy merges first is scipy's to say)."""
    d = condensed.astype(np.float64).tolist()
    order = sorted(range(3), key=d.__getitem__)
    low, mid, high = (d[k] for k in order)
    if low == mid:
        return None
    if max((mid + high) / 2, low) <= distance:
        return [[0, 1, 2]]
    if low <= distance:
        a, b = _PAIRS_OF_THREE[order[0]]
        return [[a, b], [3 - a - b]]
    return [[0], [1], [2]]


def _hierarchical(dupes: np.ndarray, threshold: float):  # type: ignore[no-untyped-def]
    """dedupe's ``clustering.cluster`` with average instead of centroid linkage: (record
    positions, per-record confidences) for each cluster of two or more.

    The components are found with scipy and walked as slices of one sorted edge list (dedupe's
    own walk is a Python union-find over every edge, through a memory-mapped copy); each is
    clustered as dedupe does (its condensed distances, scipy's average linkage, its
    confidences). A component larger than dedupe's limit goes through dedupe's own walk, which
    re-filters it."""
    import scipy.cluster.hierarchy
    from dedupe.clustering import condensedDistance, confidences  # slow to import: see model.py

    if len(dupes) == 0:
        return
    pairs, scores = dupes["pairs"], dupes["score"]
    nodes, inverse = np.unique(pairs, return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    label = component_labels(len(nodes), inverse[:, 0], inverse[:, 1])
    if np.bincount(label).max() > MAX_COMPONENT:
        yield from _dedupe_hierarchical(dupes, threshold)
        return
    order = np.argsort(label[inverse[:, 0]], kind="stable")
    edge_label = label[inverse[order, 0]]
    cuts = np.flatnonzero(np.diff(edge_label)) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    stops = np.concatenate([cuts, [len(order)]]).tolist()
    distance = 1 - threshold
    for start, stop in zip(starts, stops, strict=True):
        if stop - start == 1:
            edge = order[start]
            score = scores[edge]
            if score > threshold:
                yield tuple(pairs[edge]), (score,) * 2
            continue
        i_to_id, condensed, n = condensedDistance(dupes[order[start:stop]])
        groups = _three(condensed, distance) if n == 3 else None
        if groups is None:
            linkage = scipy.cluster.hierarchy.linkage(condensed, method="average")
            groups = _flat_clusters(linkage, n, distance)
        squared = condensed**2
        for group in groups:
            if len(group) > 1:
                yield tuple(i_to_id[i] for i in group), confidences(group, squared, n)


def _dedupe_hierarchical(dupes: np.ndarray, threshold: float):  # type: ignore[no-untyped-def]
    """:func:`_hierarchical` through dedupe's own component walk (components it re-filters)."""
    import scipy.cluster.hierarchy
    from dedupe.clustering import condensedDistance, confidences, connected_components

    for sub_graph in connected_components(dupes, MAX_COMPONENT):
        if len(sub_graph) == 1:
            ((ids, score),) = sub_graph
            if score > threshold:
                yield tuple(ids), (score,) * 2
            continue
        i_to_id, condensed, n = condensedDistance(sub_graph)
        linkage = scipy.cluster.hierarchy.linkage(condensed, method="average")
        squared = condensed**2
        for group in _flat_clusters(linkage, n, 1 - threshold):
            if len(group) > 1:
                yield tuple(i_to_id[i] for i in group), confidences(group, squared, n)


def cluster_pairs(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    must_link: list[tuple[int, int]] = (),  # type: ignore[assignment]
    cannot_link: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> Clustering:
    """Cluster ``n`` records (positions) from scored pairs ``left < right``."""
    cannot = {(min(a, b), max(a, b)) for a, b in cannot_link}
    # Components of the pairs at or above the threshold (and must-links) bound what can join.
    # Inside a component every scored pair is handed to dedupe, below the threshold too: a pair
    # it does not see counts as "completely different" and would split one person's records.
    # Pairs outside every component are left out (millions of them at a million records).
    above = scores >= threshold
    comp = _components(n, left[above], right[above], must_link)
    inside = np.nonzero(comp[left] == comp[right])[0]
    a, b = left[inside].astype(np.int64), right[inside].astype(np.int64)
    s = np.asarray(scores)[inside]
    if must_link:
        ml = np.array([(min(x, y), max(x, y)) for x, y in must_link], dtype=np.int64)
        a, b = np.concatenate([a, ml[:, 0]]), np.concatenate([b, ml[:, 1]])
        s = np.concatenate([s, np.ones(len(ml), dtype=s.dtype)])
    # One score per pair, the last given winning (a must-link over the pair's score), as a dict
    # of the pairs would keep it, without a Python object per pair.
    code = a * max(n, 1) + b
    last = len(code) - 1 - np.unique(code[::-1], return_index=True)[1]
    keep = np.sort(last)
    if cannot:
        banned = np.array(sorted(cannot), dtype=np.int64)
        keep = keep[~np.isin(code[keep], banned[:, 0] * max(n, 1) + banned[:, 1])]
    a, b, s = a[keep], b[keep], s[keep]
    cluster_of = np.arange(n, dtype=np.int64)
    confidence = np.ones(n, dtype=np.float64)
    constrained = {x for pair in cannot for x in pair}
    if len(a):
        dupes = np.empty(len(a), dtype=[("pairs", "i8", 2), ("score", "f4")])
        dupes["pairs"][:, 0], dupes["pairs"][:, 1], dupes["score"] = a, b, s
        # The kept pairs of each component, for splitting a cluster that holds a cannot-link.
        by_comp = np.argsort(comp[a], kind="stable")
        comp_sorted = comp[a][by_comp]
        for ids, conf in _hierarchical(dupes, threshold):
            members = [int(m) for m in ids]
            groups = [members]
            # Only a cluster holding both ends of a cannot-link can hold one (most hold none).
            if (
                cannot
                and sum(m in constrained for m in members) > 1
                and any((min(x, y), max(x, y)) in cannot for x in members for y in members)
            ):
                group_set = set(members)
                c = comp[members[0]]
                lo, hi = np.searchsorted(comp_sorted, [c, c + 1])
                edges = [
                    (e_s, e_a, e_b)
                    for e_a, e_b, e_s in zip(
                        a[by_comp[lo:hi]].tolist(),
                        b[by_comp[lo:hi]].tolist(),
                        s[by_comp[lo:hi]].tolist(),
                        strict=True,
                    )
                    if e_a in group_set and e_b in group_set and e_s >= threshold
                ]
                groups = _split_constrained(members, edges, cannot)
            conf_of = dict(zip(members, np.asarray(conf, dtype=float).tolist(), strict=False))
            for group in groups:
                root = min(group)
                for m in group:
                    cluster_of[m] = root
                    confidence[m] = conf_of.get(m, 1.0) if len(group) > 1 else 1.0
    # Must-links hold even where dedupe's linkage left them apart: join their clusters.
    if must_link:
        members_of: dict[int, set[int]] = defaultdict(set)
        for i, c in enumerate(cluster_of.tolist()):
            members_of[c].add(i)
        for a, b in must_link:
            ca, cb = int(cluster_of[a]), int(cluster_of[b])
            joined = members_of[ca] | members_of[cb]
            if cannot and any((min(x, y), max(x, y)) in cannot for x in joined for y in joined):
                continue  # a steward's cannot-link wins over a conflicting must-link
            if ca != cb:
                root = min(ca, cb)
                for m in members_of[ca] | members_of[cb]:
                    cluster_of[m] = root
                members_of[root] = members_of.pop(ca, set()) | members_of.pop(cb, set())
    # Renumber 0..k-1 in order of first appearance.
    _, dense = np.unique(cluster_of, return_inverse=True)
    return Clustering(cluster_of=dense.astype(np.int64), confidence=confidence)
