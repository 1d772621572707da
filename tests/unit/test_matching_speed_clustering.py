"""The clustering's fast walk gives what dedupe's walk and scipy's ``fcluster`` give."""

from __future__ import annotations

import numpy as np
import scipy.cluster.hierarchy
from scipy.spatial.distance import pdist

from mdm_orchestration.matching.clustering import (
    _dedupe_hierarchical,
    _flat_clusters,
    _hierarchical,
    cluster_pairs,
)


def _fcluster_groups(linkage: np.ndarray, distance: float) -> list[list[int]]:
    labels = scipy.cluster.hierarchy.fcluster(linkage, distance, criterion="distance")
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(i)
    return sorted(groups.values())


def test_flat_clusters_equal_fcluster():
    rng = np.random.default_rng(3)
    for trial in range(300):
        n = int(rng.integers(2, 12))
        # Coarse distances, so that ties and heights exactly at the cut occur.
        condensed = rng.integers(0, 9, n * (n - 1) // 2) / 8
        linkage = scipy.cluster.hierarchy.linkage(condensed, method="average")
        for distance in (0.25, 0.5, 0.625, float(rng.random())):
            assert sorted(_flat_clusters(linkage, n, distance)) == _fcluster_groups(
                linkage, distance
            ), trial
    points = rng.random((40, 2))
    linkage = scipy.cluster.hierarchy.linkage(pdist(points), method="average")
    assert sorted(_flat_clusters(linkage, 40, 0.3)) == _fcluster_groups(linkage, 0.3)


def _random_dupes(rng: np.random.Generator, n: int, edges: int) -> np.ndarray:
    a = rng.integers(0, n, edges)
    b = rng.integers(0, n, edges)
    keep = a < b
    code = np.unique(a[keep] * n + b[keep])
    dupes = np.empty(len(code), dtype=[("pairs", "i8", 2), ("score", "f4")])
    dupes["pairs"][:, 0], dupes["pairs"][:, 1] = code // n, code % n
    dupes["score"] = rng.integers(0, 21, len(code)) / 20
    return dupes


def _as_sets(clusters) -> list:
    return sorted(
        (tuple(int(i) for i in ids), np.asarray(conf, dtype=float).round(6).tolist())
        for ids, conf in clusters
    )


def test_hierarchical_equals_dedupes_walk():
    rng = np.random.default_rng(5)
    for _trial in range(20):
        dupes = _random_dupes(rng, 300, 400)
        for threshold in (0.5, 0.65):
            assert _as_sets(_hierarchical(dupes.copy(), threshold)) == _as_sets(
                _dedupe_hierarchical(dupes.copy(), threshold)
            )


def test_cluster_pairs_keeps_constraints():
    rng = np.random.default_rng(11)
    dupes = _random_dupes(rng, 200, 600)
    left, right = dupes["pairs"][:, 0].copy(), dupes["pairs"][:, 1].copy()
    scores = dupes["score"].copy()
    cannot = [(int(left[i]), int(right[i])) for i in range(0, len(left), 7) if scores[i] >= 0.5]
    must = [(int(right[i]), int(left[i])) for i in range(3, len(left), 11) if scores[i] < 0.5]
    must = [m for m in must if (min(m), max(m)) not in set(cannot)]
    out = cluster_pairs(200, left, right, scores, 0.5, must_link=must, cannot_link=cannot)
    for a, b in cannot:
        assert out.cluster_of[a] != out.cluster_of[b]
    assert len(out.cluster_of) == 200


def test_three_records_cluster_as_scipy_does():
    from mdm_orchestration.matching.clustering import _three

    rng = np.random.default_rng(9)
    decided = 0
    for _trial in range(3000):
        # float32 distances as dedupe makes them (1 - score), coarse so that cuts and ties occur
        condensed = (1 - rng.integers(0, 21, 3) / 20).astype("f4")
        if rng.random() < 0.3:
            condensed[int(rng.integers(3))] = 1.0  # a pair blocking never produced
        for distance in (0.35, 0.5, float(1 - np.float32(0.65)), float(rng.random())):
            got = _three(condensed, distance)
            if got is None:
                continue
            decided += 1
            linkage = scipy.cluster.hierarchy.linkage(condensed, method="average")
            assert sorted(got) == _fcluster_groups(linkage, distance), (condensed, distance)
    assert decided > 5000
