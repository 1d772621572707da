"""The vectorised string checks of the rules decide as the per-pair ones (``one_slip``, the
birth-date generation gap) on every pair."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mdm_orchestration.matching.rules import (
    _positions_differ,
    contradicting,
    near_same_id,
    one_slip,
)


def _ids(rng: np.random.Generator, n: int) -> list:
    base = ["123456789", "12345678", "AB12345C", "987654321", "12345", "1234567890"]
    out = []
    for _ in range(n):
        v = list(base[int(rng.integers(len(base)))])
        kind = int(rng.integers(5))
        if kind == 1:  # one character mistyped
            v[int(rng.integers(len(v)))] = str(int(rng.integers(10)))
        elif kind == 2 and len(v) > 2:  # two characters swapped, not always adjacent
            i = int(rng.integers(len(v) - 2))
            j = i + int(rng.integers(1, 3))
            v[i], v[j] = v[j], v[i]
        elif kind == 3:
            out.append(None)
            continue
        out.append("".join(v))
    return out


def test_near_same_id_equals_one_slip():
    rng = np.random.default_rng(2)
    ids = _ids(rng, 400)
    records = pd.DataFrame({"national_id": pd.Series(ids, dtype=object)})
    left = rng.integers(0, len(ids), 5000)
    right = rng.integers(0, len(ids), 5000)
    expected = [
        x is not None and y is not None and len(x) >= 6 and one_slip(x, y)
        for x, y in ((ids[i], ids[j]) for i, j in zip(left, right, strict=True))
    ]
    assert near_same_id(records, left, right).tolist() == expected


def test_birth_generation_gap_equals_per_pair_rule():
    rng = np.random.default_rng(4)
    births = [
        None
        if rng.random() < 0.1
        else f"{int(rng.integers(1940, 2005))}-{int(rng.integers(1, 13)):02d}-"
        f"{int(rng.integers(1, 29)):02d}"
        for _ in range(300)
    ] + ["1960-01-01", "1970-01-10", "1906-01-01", "1960-1-1", "x960-01-01"]
    records = pd.DataFrame(
        {
            "birth": pd.Series(births, dtype=object),
            "national_id": pd.Series([None] * len(births), dtype=object),
        }
    )
    left = rng.integers(0, len(births), 4000)
    right = rng.integers(0, len(births), 4000)
    expected = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        x, y = births[i], births[j]
        flag = False
        dated = x is not None and y is not None and x[:4].isdigit() and y[:4].isdigit()
        if dated and abs(int(x[:4]) - int(y[:4])) >= 10:
            flag = _positions_differ(x, y) > 2
        expected.append(flag)
    assert contradicting(records, left, right, 10).tolist() == expected


def test_same_and_differ_by_codes_equal_by_values():
    from mdm_orchestration.matching.rules import _differ, _same

    rng = np.random.default_rng(6)
    pool = np.array(["a", "b", "ab", "", None, float("nan"), "B"], dtype=object)
    values = pool[rng.integers(0, len(pool), 3000)]
    records = pd.DataFrame({"v": pd.Series(values, dtype=object)})
    left = rng.integers(0, len(values), 20_000)
    right = rng.integers(0, len(values), 20_000)
    present = [
        (x is not None and x == x and y is not None and y == y, x, y)
        for x, y in zip(values[left].tolist(), values[right].tolist(), strict=True)
    ]
    assert _same(records, "v", left, right).tolist() == [p and x == y for p, x, y in present]
    assert _differ(records, "v", left, right).tolist() == [p and x != y for p, x, y in present]
    # few pairs: compared as values, the same answer
    assert _same(records, "v", left[:10], right[:10]).tolist() == [
        p and x == y for p, x, y in present[:10]
    ]
