"""The column-wise comparators (``column_distances``, ``score_indexed``) give dedupe's own
figures: the same distances, bit for bit, and the same scores as :meth:`MatchModel.score`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mdm_orchestration.matching.labels import load_default_labels
from mdm_orchestration.matching.model import FIELDS, FieldColumns, column_distances, train_model


@pytest.fixture(scope="module", params=["person", "organisation"])
def labelled(request):
    labels = load_default_labels()[request.param]
    pairs = [tuple(p) for p in labels["match"][:60]], [tuple(p) for p in labels["distinct"][:60]]
    return request.param, pairs


@pytest.fixture(scope="module")
def model(labelled):
    party, (matches, distincts) = labelled
    return train_model(party, matches, distincts)


def _records(labelled) -> pd.DataFrame:
    party, (matches, distincts) = labelled
    rows = [dict(r) for pair in matches + distincts for r in pair]
    frame = pd.DataFrame(
        {f: pd.Series([r.get(f) for r in rows], dtype=object) for f in FIELDS[party]}
    )
    return frame


def test_column_distances_equal_dedupes(labelled, model):
    party, _ = labelled
    records = _records(labelled)
    n = len(records)
    rng = np.random.default_rng(7)
    left = np.concatenate([np.arange(0, n, 2), rng.integers(0, n, 500)])
    right = np.concatenate([np.arange(1, n, 2), rng.integers(0, n, 500)])
    rows = records.to_dict("records")
    expected = model.data_model.distances(
        [(rows[i], rows[j]) for i, j in zip(left.tolist(), right.tolist(), strict=True)]
    )
    columns = FieldColumns.of_frame(records, FIELDS[party])
    got = column_distances(model.data_model, columns, left, right)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    assert model.score_indexed(columns, left, right, batch=64, block=128).tolist() == (
        model.score([(rows[i], rows[j]) for i, j in zip(left, right, strict=True)]).tolist()
    )
    assert [columns.row(i) for i in range(n)] == rows


def test_missing_values_are_none_only():
    # dedupe takes None for missing; a NaN (never in a match frame) is a value to it.
    frame = pd.DataFrame({"given": pd.Series(["ann", None, float("nan"), "ann"], dtype=object)})
    columns = FieldColumns.of_frame(frame, ["given"])
    codes = columns.codes["given"]
    assert codes[0] == codes[3] and codes[1] == -1 and codes[2] >= 0
