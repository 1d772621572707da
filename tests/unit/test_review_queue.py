"""The review queue: one item per pair of clusters, ranked, bounded, no rule pairs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mdm_orchestration.matching.review_queue import (
    MAX_PENDING_SHARE,
    REVIEW_ITEM_COLUMNS,
    max_pending,
    review_items,
    review_items_of,
    uncertainty,
)

BAND = (0.3, 0.7)
T = 0.5


def build(pairs, cluster_of, n=None):
    """``pairs``: (left, right, score, by_rule) over records r00..r{n-1}."""
    n = n if n is not None else len(cluster_of)
    ids = np.array([f"r{i:02d}" for i in range(n)], dtype=object)
    left = np.array([p[0] for p in pairs], dtype=np.int64)
    right = np.array([p[1] for p in pairs], dtype=np.int64)
    scores = np.array([p[2] for p in pairs], dtype=np.float32)
    by_rule = np.array([p[3] if len(p) > 3 else False for p in pairs], dtype=bool)
    return ids, left, right, scores, by_rule, np.asarray(cluster_of)


def test_one_item_per_pair_of_clusters_the_most_uncertain_pair_represents_it():
    # clusters: A = {0, 1, 2}, B = {3, 4}, C = {5}
    cluster_of = [0, 0, 0, 1, 1, 2]
    pairs = [
        (0, 3, 0.35),  # A-B
        (4, 1, 0.52),  # A-B, nearest the threshold: represents A-B
        (2, 4, 0.66),  # A-B
        (5, 3, 0.45),  # B-C
        (0, 1, 0.95),  # above the band: not offered
        (0, 5, 0.10),  # below the band
    ]
    items = review_items(*build(pairs, cluster_of), BAND, T, max_items=10)
    assert list(items.columns) == list(REVIEW_ITEM_COLUMNS)
    assert len(items) == 2
    ab = items.iloc[0]
    assert (ab.left_id, ab.right_id) == ("r01", "r04")  # ordered left < right
    assert ab.score == pytest.approx(0.52)
    assert ab.records_affected == 5
    assert (ab.left_cluster_id, ab.right_cluster_id) == ("r00", "r03")
    bc = items.iloc[1]
    assert (bc.left_id, bc.right_id, bc.records_affected) == ("r03", "r05", 3)
    assert (bc.left_cluster_id, bc.right_cluster_id) == ("r03", "r05")
    assert ab.priority == pytest.approx(uncertainty(np.array([0.52]), T)[0] * 5, abs=1e-5)


def test_ranked_by_uncertainty_times_records_affected():
    # two singletons at the threshold vs. two big clusters a little off it
    cluster_of = [0, 1] + [2] * 10 + [3] * 10
    pairs = [(0, 1, 0.5), (2, 12, 0.62)]
    items = review_items(*build(pairs, cluster_of), BAND, T, max_items=10)
    assert items["left_id"].tolist() == ["r02", "r00"]
    assert items["records_affected"].tolist() == [20, 2]
    assert items["priority"].is_monotonic_decreasing
    assert items.iloc[1].priority == pytest.approx(2.0)


def test_a_pair_inside_one_cluster_is_offered_as_a_possible_false_merge():
    cluster_of = [0, 0, 0, 0]
    pairs = [(0, 1, 0.9), (1, 2, 0.9), (0, 2, 0.4), (1, 3, 0.53), (0, 3, 0.45)]
    items = review_items(*build(pairs, cluster_of), BAND, T, max_items=10)
    assert len(items) == 1  # one item for the one cluster
    item = items.iloc[0]
    assert item.left_cluster_id == item.right_cluster_id == "r00"
    assert item.records_affected == 4
    assert (item.left_id, item.right_id) == ("r01", "r03")


def test_rule_pairs_are_never_offered():
    cluster_of = [0, 1, 2, 3]
    pairs = [(0, 1, 0.5, True), (2, 3, 0.6, False)]
    items = review_items(*build(pairs, cluster_of), BAND, T, max_items=10)
    assert items["left_id"].tolist() == ["r02"]
    pairs = [(0, 1, 0.5, True)]
    assert review_items(*build(pairs, cluster_of), BAND, T, max_items=10).empty


def test_pending_items_are_capped_at_one_percent_of_records_keeping_the_highest():
    rng = np.random.default_rng(7)
    n = 5_000
    cluster_of = np.arange(n) // 2  # 2,500 clusters of two
    m = 20_000
    left = rng.integers(0, n, m)
    right = rng.integers(0, n, m)
    scores = rng.uniform(0.0, 1.0, m).astype(np.float32)
    ids = np.array([f"r{i:05d}" for i in range(n)], dtype=object)
    by_rule = rng.uniform(size=m) < 0.1
    everything = review_items(
        ids, left, right, scores, by_rule, cluster_of, BAND, T, max_items=10**9
    )
    items = review_items(ids, left, right, scores, by_rule, cluster_of, BAND, T)
    assert max_pending(n) == int(n * MAX_PENDING_SHARE) == 50
    assert len(everything) > 50 and len(items) == 50
    assert items["priority"].min() >= everything["priority"].iloc[50]
    assert items["priority"].is_monotonic_decreasing
    # one item per pair of clusters, never a rule's pair
    keys = {
        tuple(sorted(k)) for k in zip(items.left_cluster_id, items.right_cluster_id, strict=True)
    }
    assert len(keys) == len(items)
    ruled = {
        tuple(sorted((ids[a], ids[b]))) for a, b, r in zip(left, right, by_rule, strict=True) if r
    }
    unruled = {
        tuple(sorted((ids[a], ids[b])))
        for a, b, r in zip(left, right, by_rule, strict=True)
        if not r
    }
    offered = set(zip(everything.left_id, everything.right_id, strict=True))
    assert offered <= unruled and not (offered & (ruled - unruled))
    assert ((everything.score >= BAND[0]) & (everything.score < BAND[1])).all()


def test_tiny_party_and_empty_band_give_no_items():
    cluster_of = [0, 1]
    pairs = [(0, 1, 0.5)]
    assert review_items(*build(pairs, cluster_of), BAND, T).empty  # 1% of 2 records is 0
    items = review_items(*build(pairs, cluster_of), BAND, T, max_items=5, party_type="person")
    assert items["party_type"].tolist() == ["person"]
    assert review_items(*build([], cluster_of), BAND, T, max_items=5).empty


def test_scales_to_a_million_pairs():
    rng = np.random.default_rng(1)
    n, m = 200_000, 1_000_000
    ids = np.array([f"{i:032x}" for i in range(n)], dtype=object)
    left, right = rng.integers(0, n, m), rng.integers(0, n, m)
    scores = rng.uniform(size=m).astype(np.float32)
    start = time.perf_counter()
    items = review_items(ids, left, right, scores, np.zeros(m, bool), np.arange(n) // 3, BAND, T)
    assert len(items) == 2_000
    assert time.perf_counter() - start < 20


def test_cluster_ids_and_sizes_given_by_the_caller_are_used_as_they_are():
    # the incremental path: record r02 lies outside the region, in a stored cluster of 7
    ids, left, right, scores, by_rule, _ = build([(0, 2, 0.5)], [0, 0, 0])
    cluster_of = np.array(["r00", "r00", "zz-stored"], dtype=object)
    items = review_items(
        ids,
        left,
        right,
        scores,
        by_rule,
        cluster_of,
        BAND,
        T,
        max_items=5,
        cluster_size=np.array([2, 2, 7]),
    )
    item = items.iloc[0]
    assert (item.left_cluster_id, item.right_cluster_id) == ("r00", "zz-stored")
    assert item.records_affected == 9 and item.priority == pytest.approx(9.0)


def test_review_items_of_scored_pairs_with_stored_clusters():
    from types import SimpleNamespace

    ids = np.array(["a", "b", "c", "d"], dtype=object)
    sp = SimpleNamespace(
        party_type="person",
        ids=ids,
        left=np.array([0, 1, 2]),
        right=np.array([1, 2, 3]),
        scores=np.array([0.5, 0.45, 0.5], dtype=np.float32),
        by_rule=np.zeros(3, bool),
    )
    clusters = {"a": "a", "b": "b", "c": "old-cluster"}  # d was erased
    sizes = {"a": 1, "b": 3, "old-cluster": 6}
    items = review_items_of([sp], clusters, sizes, BAND, {"person": T}, max_items=10)
    assert items[["left_id", "right_id"]].values.tolist() == [["b", "c"], ["a", "b"]]
    assert items["records_affected"].tolist() == [9, 4]
    assert items["party_type"].tolist() == ["person", "person"]
    assert items.iloc[0].right_cluster_id == "old-cluster"
    assert len(review_items_of([sp], clusters, sizes, BAND, {"person": T}, max_items=1)) == 1
