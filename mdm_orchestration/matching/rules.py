"""Deterministic match rules, applied to candidate pairs before the learned model.

A pair a rule accepts is a match whatever the model says (score 1.0); rules never reject. Which
rules run is configuration (``matching.yaml``); each is strict enough to hold on household
traps: members sharing an address, a surname and a home phone differ in given name, and a
father and son sharing a name differ in national id, birth date, suffix or middle initial.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _same(records: pd.DataFrame, column: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    values = records[column].to_numpy(object)
    a, b = values[left], values[right]
    present = pd.notna(a) & pd.notna(b)
    out = np.zeros(len(left), dtype=bool)
    out[present] = a[present] == b[present]
    return out


def _differ(records: pd.DataFrame, column: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Both present and different: evidence against, which vetoes the softer rules."""
    values = records[column].to_numpy(object)
    a, b = values[left], values[right]
    present = pd.notna(a) & pd.notna(b)
    out = np.zeros(len(left), dtype=bool)
    out[present] = a[present] != b[present]
    return out


def apply_rules(
    records: pd.DataFrame, left: np.ndarray, right: np.ndarray, rules: list[str]
) -> dict[str, np.ndarray]:
    """Rule name -> mask of the candidate pairs it accepts."""
    same_party = _same(records, "party_type", left, right)
    conflict = (
        _differ(records, "national_id", left, right)
        | _differ(records, "birth", left, right)
        | _differ(records, "suffix", left, right)
        | _differ(records, "middle_initial", left, right)
    )
    out: dict[str, np.ndarray] = {}
    if "same_national_id" in rules:
        out["same_national_id"] = same_party & _same(records, "national_id", left, right)
    if "same_email_and_given_name" in rules:
        out["same_email_and_given_name"] = (
            same_party
            & _same(records, "email", left, right)
            & _same(records, "given_key", left, right)
            & ~conflict
        )
    if "same_phone_and_full_name" in rules:
        out["same_phone_and_full_name"] = (
            same_party
            & _same(records, "phone", left, right)
            & _same(records, "given_key", left, right)
            & _same(records, "family", left, right)
            & ~conflict
        )
    return out


#: Fields whose exact agreement corroborates a name match.
CORROBORATING = ("email", "phone", "national_id", "birth", "street", "postcode", "company")


def corroborated(records: pd.DataFrame, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Pairs that agree on at least one identifying field besides the name.

    Two records sharing only a name (a common name in two cities; a person's work contact and
    home record with nothing else in common) are never matched automatically: the model's score
    is capped below the threshold, so the pair goes to review instead.
    """
    out = np.zeros(len(left), dtype=bool)
    for column in CORROBORATING:
        if column in records:
            out |= _same(records, column, left, right)
    return out


def _positions_differ(a: str, b: str) -> int:
    if len(a) != len(b):
        return max(len(a), len(b))
    return sum(x != y for x, y in zip(a, b, strict=True))


def contradicting(
    records: pd.DataFrame, left: np.ndarray, right: np.ndarray, year_gap: int = 10
) -> np.ndarray:
    """Pairs that cannot be one person whatever else they share: birth dates a generation
    apart (years ``year_gap`` or more apart and more than two characters different; a typo or a
    pair of swapped digits is not; 0 turns this off). A father and son sharing a name, an address and a phone are kept
    apart by this even when a third record, without a birth date, resembles both."""
    values = records["birth"].to_numpy(object)
    a, b = values[left], values[right]
    out = np.zeros(len(left), dtype=bool)
    if year_gap <= 0:
        return out
    for i in np.nonzero(pd.notna(a) & pd.notna(b))[0]:
        x, y = str(a[i]), str(b[i])
        if x[:4].isdigit() and y[:4].isdigit() and abs(int(x[:4]) - int(y[:4])) >= year_gap:
            out[i] = _positions_differ(x, y) > 2
    return out
