"""Text helpers shared by the cleansers: whitespace, emptiness, ASCII folding for match keys."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable
from typing import Any

import pandas as pd
from unidecode import unidecode

_SPACE = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[^a-z0-9 ]+")

#: Values silos use for "nothing here".
PLACEHOLDERS = frozenset({"", "n/a", "na", "none", "null", "nil", "unknown", "-", "--", "?"})


def clean_text(value: Any) -> str | None:
    """Trimmed, NFC-normalised text with single spaces; ``None`` for empty or placeholder values."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = _SPACE.sub(" ", unicodedata.normalize("NFC", str(value))).strip()
    if text.casefold() in PLACEHOLDERS:
        return None
    return text


def fold(value: str | None) -> str | None:
    """Match-key form: ASCII, lower case, letters/digits/spaces only, single spaces."""
    if not value:
        return None
    folded = _NOT_ALNUM.sub(" ", unidecode(value).lower())
    folded = _SPACE.sub(" ", folded).strip()
    return folded or None


def map_unique(series: pd.Series, fn: Callable[[Any], Any]) -> pd.Series:
    """Apply ``fn`` once per distinct value (silos repeat cities, names, domains...)."""
    table = {value: fn(value) for value in series.dropna().unique()}
    # Missing inputs give None (not NaN), so results can be tested with plain truthiness. The
    # mask is pd.isna of each value, computed for the column at once.
    missing = series.isna().to_numpy()
    return pd.Series(
        [None if m else table[v] for v, m in zip(series, missing, strict=True)],
        index=series.index,
        dtype=object,
    )


def map_rows_unique(frame: pd.DataFrame, fn: Callable[..., Hashable]) -> list[Any]:
    """Apply ``fn(*row)`` once per distinct row of ``frame``; returns one result per row."""
    rows = list(frame.itertuples(index=False, name=None))
    cache: dict[tuple[Any, ...], Any] = {}
    out = []
    for row in rows:
        hit = cache.get(row, cache)
        if hit is cache:
            hit = cache[row] = fn(*row)
        out.append(hit)
    return out
