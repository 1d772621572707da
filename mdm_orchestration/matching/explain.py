"""Why a pair scored what it did: each compared field's state and its share of the log-odds.

Pure (no Dagster, no database). The model is dedupe's: a feature vector per pair (one distance
column per comparator, then interaction columns, then a "both present" indicator per comparator
that can be missing) into a logistic regression. So the score's log-odds is exactly
``intercept + sum(coef[j] * x[j])``; each column belongs to one record field (an interaction
column is shared equally by its fields), which gives each field its contribution. Terms the engine
applies after the model (term-frequency adjustments, rules, the name-only cap) come in as
named ``adjustments`` in log-odds.

A field's contribution is relative to the model's intercept, not to an "average" pair: a
string distance is 0 only for nothing at all, so a field compared by distance contributes about
nothing when it agrees and a negative amount when it disagrees, and the intercept carries the
baseline. A field that is missing on either side contributes nothing (dedupe sets both its
distance and its indicator to 0).

States: ``missing`` (either side has no value), ``agree`` (equal values), ``near`` (unequal but
a comparator found them close: a nickname, one keying slip in an id, a small edit distance),
``disagree`` (the rest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mdm_orchestration.matching.model import MatchModel

AGREE, NEAR, DISAGREE, MISSING = "agree", "near", "disagree", "missing"
STATES = (AGREE, NEAR, DISAGREE, MISSING)

#: A distance comparator calls two unequal values "near" when their distance exceeds the one it
#: gives a value and itself by at most this much (normalised affine gap: ``smith``/``smyth``
#: 1.0 over, ``jon``/``john`` 1.7, ``mary``/``maria`` 1.3; ``smith``/``jones`` 5.0, two
#: e-mail addresses of one name at two providers 1.95,
#: ``london``/``paris`` 4.7). Custom comparators of ours step 0 / 0.5 / 1: half is near.
NEAR_EXCESS = {
    "normalizedAffineGapDistance": 1.75,
    "names_any_order": 2.0,
}
DEFAULT_NEAR_EXCESS = 0.5
#: Log-odds are kept within +-this (a rule's certain match would be infinite; JSON has no
#: infinity). sigmoid(50) is 1.0 in double precision, so the score is unchanged.
MAX_LOG_ODDS = 50.0


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _clip(x: float) -> float:
    return float(min(max(x, -MAX_LOG_ODDS), MAX_LOG_ODDS))


@dataclass(frozen=True)
class Comparison:
    """One comparator's column(s) for a field: the raw feature values and their log-odds."""

    name: str
    distance: float | None  # None when a side is missing
    contribution: float


@dataclass(frozen=True)
class FieldExplanation:
    field: str
    state: str
    contribution: float
    left: Any
    right: Any
    comparisons: tuple[Comparison, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "state": self.state,
            "contribution": round(self.contribution, 6),
            "left": _json_value(self.left),
            "right": _json_value(self.right),
            "comparisons": [
                {
                    "name": c.name,
                    "distance": None if c.distance is None else round(c.distance, 6),
                    "contribution": round(c.contribution, 6),
                }
                for c in self.comparisons
            ],
        }


@dataclass(frozen=True)
class Explanation:
    """A pair's score taken apart. ``score`` = sigmoid(``log_odds``), where ``log_odds`` =
    ``intercept`` + the fields' contributions + the adjustments; ``model_score`` leaves the
    adjustments out (what the classifier alone says)."""

    party_type: str
    intercept: float
    fields: tuple[FieldExplanation, ...]
    adjustments: tuple[tuple[str, float], ...] = ()
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_log_odds(self) -> float:
        return self.intercept + sum(f.contribution for f in self.fields)

    @property
    def log_odds(self) -> float:
        return _clip(self.model_log_odds + sum(v for _k, v in self.adjustments))

    @property
    def model_score(self) -> float:
        return sigmoid(self.model_log_odds)

    @property
    def score(self) -> float:
        return sigmoid(self.log_odds)

    def field(self, name: str) -> FieldExplanation:
        return next(f for f in self.fields if f.field == name)

    def by_state(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s: [] for s in STATES}
        for f in self.fields:
            out[f.state].append(f.field)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types only (for an HTTP API, a web review page, ``mdm review --json``)."""
        return {
            "party_type": self.party_type,
            "score": round(self.score, 6),
            "model_score": round(self.model_score, 6),
            "log_odds": round(self.log_odds, 6),
            "intercept": round(self.intercept, 6),
            "threshold": self.threshold,
            "fields": [f.as_dict() for f in self.fields],
            "adjustments": [{"name": k, "log_odds": round(v, 6)} for k, v in self.adjustments],
            "states": self.by_state(),
        }

    def text(self, width: int = 28) -> str:
        """A few lines for a terminal: the strongest movers first, missing fields last."""
        head = f"score {self.score:.3f}"
        if self.adjustments:
            head += f" (model alone {self.model_score:.3f})"
        if self.threshold is not None:
            head += f", threshold {self.threshold:.2f}"
        lines = [head, f"  {'field':<16}{'state':<10}{'log-odds':>9}  values"]
        order = sorted(
            self.fields, key=lambda f: (f.state == MISSING, -abs(f.contribution), f.field)
        )
        for f in order:
            a, b = _short(f.left, width), _short(f.right, width)
            values = a if f.state == AGREE else f"{a} | {b}"
            lines.append(f"  {f.field:<16}{f.state:<10}{f.contribution:>+9.2f}  {values}")
        lines.append(f"  {'(intercept)':<26}{self.intercept:>+9.2f}")
        for name, value in self.adjustments:
            lines.append(f"  {name:<26}{_clip(value):>+9.2f}")
        return "\n".join(lines)


def _short(value: Any, width: int) -> str:  # noqa: ANN401
    if _missing(value):
        return "-"
    s = str(value)
    return s if len(s) <= width else s[: width - 1] + "…"


def _json_value(value: Any) -> Any:  # noqa: ANN401
    if _missing(value):
        return None
    if isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _missing(value: Any) -> bool:  # noqa: ANN401
    return value is None or (isinstance(value, float) and value != value)


def _classifier(model: MatchModel) -> tuple[np.ndarray, float]:
    """The logistic regression's weights (inside dedupe's GridSearchCV, or bare)."""
    clf = getattr(model.classifier, "best_estimator_", model.classifier)
    coef = np.asarray(clf.coef_, dtype=np.float64).reshape(-1)
    intercept = float(np.asarray(clf.intercept_, dtype=np.float64).reshape(-1)[0])
    return coef, intercept


@dataclass(frozen=True)
class _Column:
    name: str
    fields: tuple[str, ...]
    variable: Any  # the field variable (None for derived columns)
    indicator: bool = False


def feature_columns(data_model: Any) -> list[_Column]:  # noqa: ANN401
    """dedupe's feature columns in order, each with the record field(s) it reads: the comparator
    columns (a categorical variable has several), the interaction columns, then a presence
    indicator for each column that can be missing (as ``DataModel.__init__`` lays them out)."""
    columns: list[_Column] = []
    field_of: dict[str, str] = {}
    missing_flags: list[bool] = []
    for var in data_model.field_variables:
        field_of[var.name] = var.field
        if len(var) == 1:
            columns.append(_Column(var.name, (var.field,), var))
            missing_flags.append(bool(var.has_missing))
        else:
            for higher in var.higher_vars:
                columns.append(_Column(f"{var.name} {higher.name}", (var.field,), var))
                missing_flags.append(bool(higher.has_missing))
    base = list(columns)
    for indices in data_model._interaction_indices:
        fields = tuple(dict.fromkeys(f for j in indices for f in base[j].fields))
        columns.append(
            _Column("interaction " + "*".join(base[j].name for j in indices), fields, None)
        )
        missing_flags.append(any(missing_flags[j] for j in indices))
    for j in data_model._missing_field_indices:
        c = columns[j]
        columns.append(_Column(f"{c.name} present", c.fields, c.variable, indicator=True))
    if len(columns) != len(data_model):
        raise ValueError(
            f"explain: {len(columns)} columns mapped, the data model has {len(data_model)}"
        )
    return columns


def _is_exact(var: Any) -> bool:  # noqa: ANN401
    return getattr(var, "type", None) == "Exact"


def _near(var: Any, a: Any, b: Any) -> bool:  # noqa: ANN401
    """Whether a comparator finds two unequal present values close."""
    if (
        var is None
        or _is_exact(var)
        or getattr(var, "type", None)
        not in (
            "String",
            "ShortString",
            "Custom",
        )
    ):
        return False
    compare = var.comparator
    try:
        d = float(compare(a, b))
        same = min(float(compare(a, a)), float(compare(b, b)))
    except Exception:  # noqa: BLE001 - a comparator that cannot judge is no evidence of near
        return False
    name = getattr(compare, "__name__", "")
    return d - same <= NEAR_EXCESS.get(name, DEFAULT_NEAR_EXCESS)


def explain_pair(
    model: MatchModel,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    adjustments: Mapping[str, float] | None = None,
) -> Explanation:
    """Explain the model's score of records ``a`` and ``b`` (match-frame rows, as the engine
    passes them to dedupe), plus any log-odds ``adjustments`` the engine applied after it."""
    dm = model.data_model
    columns = feature_columns(dm)
    x = np.asarray(dm.distances([(dict(a), dict(b))])[0], dtype=np.float64)
    coef, intercept = _classifier(model)
    if len(coef) != len(x):
        raise ValueError(f"explain: {len(coef)} weights for {len(x)} features")
    terms = coef * x
    per_field: dict[str, float] = {}
    comparisons: dict[str, list[Comparison]] = {}
    variables: dict[str, list[Any]] = {}
    indicator_of: dict[str, float] = {}
    for j, col in enumerate(columns):
        share = float(terms[j]) / len(col.fields)
        for f in col.fields:
            per_field[f] = per_field.get(f, 0.0) + share
        if col.indicator:
            indicator_of[col.name.removesuffix(" present")] = float(terms[j])
    for j, col in enumerate(columns):
        if col.indicator or col.variable is None:
            continue
        f = col.fields[0]
        present = not (_missing(a.get(f)) or _missing(b.get(f)))
        comparisons.setdefault(f, []).append(
            Comparison(
                col.name,
                float(x[j]) if present else None,
                float(terms[j]) + indicator_of.get(col.name, 0.0),
            )
        )
        variables.setdefault(f, []).append(col.variable)
    out = []
    for f in per_field:
        va, vb = a.get(f), b.get(f)
        if _missing(va) or _missing(vb):
            state = MISSING
        elif va == vb:
            state = AGREE
        elif any(_near(var, va, vb) for var in variables.get(f, [])):
            state = NEAR
        else:
            state = DISAGREE
        out.append(
            FieldExplanation(f, state, per_field.get(f, 0.0), va, vb, tuple(comparisons.get(f, ())))
        )
    return Explanation(
        party_type=model.party_type,
        intercept=intercept,
        fields=tuple(out),
        adjustments=tuple((str(k), _clip(float(v))) for k, v in (adjustments or {}).items()),
        threshold=float(model.threshold),
    )


def _logit(p: float) -> float:
    p = min(max(p, 1e-300), 1.0)
    return MAX_LOG_ODDS if p >= 1.0 else _clip(math.log(p) - math.log1p(-p))


def with_engine_terms(
    explanation: Explanation,
    terms: Mapping[str, float] | None = None,
    *,
    weak: bool = False,
    contradicted: bool = False,
    rule: str | None = None,
    threshold: float | None = None,
) -> Explanation:
    """The explanation of the engine's final score, as ``PairScorer`` computes it: the model's
    log-odds plus its named ``terms`` (frequency adjustments, ...), then a rule's match (1.0),
    else the cap for a pair without enough evidence (at most ``threshold - 0.01``) and a
    contradiction (0.0). Each step after the terms is one more named log-odds term, the
    difference it made, so that the score is still sigmoid(intercept + contributions + terms).
    """
    adjustments = list(explanation.adjustments) + [
        (str(k), _clip(float(v))) for k, v in (terms or {}).items()
    ]
    current = _clip(explanation.model_log_odds + sum(v for _k, v in adjustments))
    threshold = explanation.threshold if threshold is None else threshold
    if rule is not None and not contradicted:
        adjustments.append((f"rule:{rule}", MAX_LOG_ODDS - current))
    else:
        if weak and threshold is not None:
            cap = _logit(max(threshold - 0.01, 0.0))
            if current > cap:
                adjustments.append(("cap:not_enough_evidence", cap - current))
                current = cap
        if contradicted:
            adjustments.append(("contradiction", -MAX_LOG_ODDS - current))
    return Explanation(
        party_type=explanation.party_type,
        intercept=explanation.intercept,
        fields=explanation.fields,
        adjustments=tuple(adjustments),
        threshold=explanation.threshold,
        extra=dict(explanation.extra),
    )


__all__ = [
    "AGREE",
    "DISAGREE",
    "MISSING",
    "NEAR",
    "STATES",
    "Comparison",
    "Explanation",
    "FieldExplanation",
    "explain_pair",
    "feature_columns",
    "with_engine_terms",
]
