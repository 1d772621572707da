"""Match quality against ground truth: pairwise precision/recall/F1, B-cubed, blocking recall."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def _pairs_in(labels: Sequence[Hashable]) -> int:
    return sum(n * (n - 1) // 2 for n in Counter(labels).values())


def pairwise_scores(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a clustering (cluster label per record) against the
    true entity per record, counted without enumerating pairs."""
    tp = _pairs_in(list(zip(predicted, truth, strict=True)))
    pred_pairs, true_pairs = _pairs_in(predicted), _pairs_in(truth)
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_pairs": true_pairs,
        "predicted_pairs": pred_pairs,
    }


def b_cubed(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> dict[str, float]:
    """B-cubed precision, recall and F1 (averaged per record)."""
    both = Counter(zip(predicted, truth, strict=True))
    pred_size, true_size = Counter(predicted), Counter(truth)
    n = len(predicted)
    precision = sum(c * c / pred_size[p] for (p, _t), c in both.items()) / n if n else 1.0
    recall = sum(c * c / true_size[t] for (_p, t), c in both.items()) / n if n else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def blocking_recall(
    left: Sequence[int], right: Sequence[int], truth: Sequence[Hashable]
) -> dict[str, float]:
    """Share of true pairs (same entity) that are among the candidate pairs."""
    found = sum(1 for a, b in zip(left, right, strict=True) if truth[a] == truth[b])
    total = _pairs_in(truth)
    return {
        "recall": found / total if total else 1.0,
        "true_pairs_found": found,
        "true_pairs": total,
        "candidate_pairs": len(left),
    }
