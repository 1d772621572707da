"""Deterministic match rules, applied to candidate pairs before the learned model.

A pair a rule accepts is a match whatever the model says (score 1.0); rules never reject. Which
rules run is configuration (``matching.yaml``); each is strict enough to hold on household
traps: members sharing an address, a surname and a home phone differ in given name, and a
father and son sharing a name differ in national id, birth date, suffix or middle initial.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd


class Columns:
    """A match frame's columns as object arrays, each read out of the frame once.

    The rules and caps read the same columns many times per call (``_same`` alone some fifty
    times for one ``POST /v1/match`` proposal), and each pandas column read costs 20-50 us of
    bookkeeping, more than comparing a proposal's few pairs; a :class:`~.engine.PairScorer`
    holds one of these for all its calls. The arrays are the frame's own (no copy for its
    object columns): the frame must not change while this is in use."""

    __slots__ = ("_frame", "_held", "_names")

    def __init__(
        self,
        frame: pd.DataFrame,
        names: dict[str, str] | None = None,
        held: dict[str | tuple[str, str], np.ndarray] | None = None,
    ) -> None:
        self._frame = frame
        self._names = names or {}
        self._held = held if held is not None else {}

    def __contains__(self, name: str) -> bool:
        return self._names.get(name, name) in self._frame.columns

    def __getitem__(self, name: str) -> np.ndarray:
        name = self._names.get(name, name)
        held = self._held.get(name)
        if held is None:
            held = self._held[name] = self._frame[name].to_numpy(object)
        return held

    def __len__(self) -> int:
        return len(self._frame)

    def renamed(self, **names: str) -> Columns:
        """The same columns, ``name`` read from column ``names[name]`` (the arrays shared)."""
        return Columns(self._frame, {**self._names, **names}, self._held)

    def house_numbers(self) -> np.ndarray:
        """:func:`house_numbers` of the street lines (None where there is none), made once
        for each column read as ``street``."""
        key = (_HOUSE, self._names.get("street", "street"))
        held = self._held.get(key)
        if held is None:
            streets = self["street"]
            if len(streets) < _FEW:
                held = np.empty(len(streets), dtype=object)
                held[:] = [house_number(v) for v in streets]
            else:
                held = house_numbers(pd.Series(streets, dtype=object)).to_numpy(object)
            self._held[key] = held
        return held


#: Where :class:`Columns` keeps the house numbers of a column (with the column's name: a
#: tuple, which no column name is).
_HOUSE = "house_number"
#: Below this many records house numbers are found value by value.
_FEW = 64


def columns_of(records: pd.DataFrame | Columns) -> Columns:
    """``records`` as :class:`Columns` (as they are, when they already are)."""
    return records if isinstance(records, Columns) else Columns(records)


def _codes(values: np.ndarray, left: np.ndarray) -> np.ndarray | None:
    """Integer codes of ``values`` (-1 where missing) when many pairs are compared: comparing
    codes of millions of pairs is cheaper than comparing their objects. None for few pairs (a
    code per record would cost more than the pairs)."""
    if len(left) < 4096 or len(left) * 2 < len(values):
        return None
    return pd.factorize(values, use_na_sentinel=True)[0]


def _same(
    records: pd.DataFrame | Columns, column: str, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    records = columns_of(records)
    values = records[column]
    codes = _codes(values, left)
    if codes is not None:
        a, b = codes[left], codes[right]
        return (a >= 0) & (a == b)
    a, b = values[left], values[right]
    present = pd.notna(a) & pd.notna(b)
    out = np.zeros(len(left), dtype=bool)
    out[present] = a[present] == b[present]
    return out


def same_values(
    records: pd.DataFrame | Columns, column: str, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Pairs whose ``column`` is present in both and equal (False where the column is absent)."""
    records = columns_of(records)
    if column not in records:
        return np.zeros(len(left), dtype=bool)
    return _same(records, column, left, right)


def _differ(
    records: pd.DataFrame | Columns, column: str, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Both present and different: evidence against, which vetoes the softer rules."""
    records = columns_of(records)
    values = records[column]
    codes = _codes(values, left)
    if codes is not None:
        a, b = codes[left], codes[right]
        return (a >= 0) & (b >= 0) & (a != b)
    a, b = values[left], values[right]
    present = pd.notna(a) & pd.notna(b)
    out = np.zeros(len(left), dtype=bool)
    out[present] = a[present] != b[present]
    return out


def apply_rules(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray, rules: list[str]
) -> dict[str, np.ndarray]:
    """Rule name -> mask of the candidate pairs it accepts."""
    records = columns_of(records)
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
    if "same_contact_and_company_name" in rules:
        out["same_contact_and_company_name"] = (
            same_party
            & _same(records, "company", left, right)
            & (
                same_values(records, "web_domain", left, right)
                | _same(records, "phone", left, right)
            )
        )
    return out


#: Fields whose exact agreement corroborates a person's name match (``phone_digits``: the
#: digits of a number that failed validation, equal in both records).
CORROBORATING = ("email", "phone", "phone_digits", "national_id", "birth", "street", "postcode")
#: What corroborates two organisation records: a registration (VAT, tax) id, a website or
#: business email domain, a phone. Their names never do: ``Jones Ltd`` in Leeds and ``Jones
#: Corp`` in Ohio are two companies. Street plus postcode also corroborates
#: (:func:`corroborated_organisation`).
ORGANISATION_CORROBORATING = ("national_id", "web_domain", "phone", "phone_digits")


def corroborated_organisation(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Organisation pairs with evidence besides the name: a registration id (or one keying slip
    apart), a web domain, a phone, or the street line (or one slip apart) plus the postcode (or
    the town, where one record has no postcode)."""
    records = columns_of(records)
    out = np.zeros(len(left), dtype=bool)
    for column in ORGANISATION_CORROBORATING:
        if column in records:
            out |= _same(records, column, left, right)
    # The same place: the postcode, or the town where one record lacks a postcode.
    place = _same(records, "postcode", left, right)
    postcodes = records["postcode"]
    no_postcode = pd.isna(postcodes[left]) | pd.isna(postcodes[right])
    place |= no_postcode & _same(records, "city", left, right)
    out |= place & _same(records, "street", left, right)
    rest = np.nonzero(~out)[0]
    out[rest] = near_same_id(records, left[rest], right[rest])
    rest = np.nonzero(~out & place)[0]
    out[rest] = near_same_street(records, left[rest], right[rest])
    return out


def contradicting_organisation(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Organisation pairs that are two legal entities whatever else they share: different
    countries; registration ids of one kind both present and more than one keying slip apart; legal forms
    of different families (an ``Inc`` and a ``GmbH``; ``Ltd`` and ``Limited`` are one)."""
    records = columns_of(records)
    out = _differ(records, "country", left, right)
    if "legal_form_family" in records:
        out |= _differ(records, "legal_form_family", left, right)
    differ = _differ(records, "national_id", left, right) & ~out
    if "national_id_type" in records:
        # A VAT number and a company number of one company differ: only ids of one kind do.
        differ &= ~_differ(records, "national_id_type", left, right)
    ids = np.nonzero(differ)[0]
    out[ids] = ~near_same_id(records, left[ids], right[ids])
    return out


def distinct_names(
    tokens: np.ndarray, token_counts: np.ndarray, left: np.ndarray, right: np.ndarray, floor: float
) -> np.ndarray:
    """Organisation pairs whose names each hold a word the other lacks and whose words, weighted
    by how rare they are among the hub's organisations, agree less than ``floor``: ``Acme
    Holdings`` and ``Acme Logistics`` (two companies of a group) are distinct, ``Acme`` and
    ``Acme Logistics`` or ``Acme Logistcs`` (a word one slip apart counts as the same) are not.

    A word held by ``c`` organisations weighs ``2 ** (-floor(log2 c) / 2)``: ``Group`` or
    ``Holdings`` weigh little, the distinctive word a lot. ``tokens`` and ``token_counts`` hold,
    per record, its name's words and their hub-wide counts."""
    out = np.zeros(len(left), dtype=bool)
    for i, (a, b) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        ta, tb = tokens[a], tokens[b]
        if not ta or not tb or ta == tb:
            continue
        whole_a, whole_b = " ".join(ta), " ".join(tb)
        if min(len(whole_a), len(whole_b)) >= 8 and one_edit(whole_a, whole_b):
            continue  # one keying slip in the whole name (gil / gill consulting)
        wa = [_word_weight(c) for c in token_counts[a]]
        wb = [_word_weight(c) for c in token_counts[b]]
        matched_a = [any(_same_word(x, y) for y in tb) for x in ta]
        matched_b = [any(_same_word(y, x) for x in ta) for y in tb]
        if all(matched_a) or all(matched_b):
            continue
        shared = sum(w for w, m in zip(wa, matched_a, strict=True) if m)
        total = shared + sum(w for w, m in zip(wa, matched_a, strict=True) if not m)
        total += sum(w for w, m in zip(wb, matched_b, strict=True) if not m)
        out[i] = total > 0 and shared / total < floor
    return out


def _word_weight(count: int) -> float:
    """``2 ** (-level / 2)`` of a word ``count`` organisations hold (level: ``floor(log2)``):
    1 for a word one holds, 1/8 for one 64 hold, 1/32 for one a thousand hold."""
    return 2.0 ** (-math.floor(math.log2(max(count, 1))) / 2)


def _same_word(x: str, y: str) -> bool:
    return x == y or (min(len(x), len(y)) >= 4 and one_edit(x, y))


def corroborated(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Pairs that agree on at least one identifying field besides the name (a national id or a
    street line one keying slip apart counts: see :func:`near_same_id`, :func:`near_same_street`).

    Two records sharing only a name (a common name in two cities; a person's work contact and
    home record with nothing else in common) are never matched automatically: the model's score
    is capped below the threshold, so the pair goes to review instead.
    """
    records = columns_of(records)
    out = np.zeros(len(left), dtype=bool)
    for column in CORROBORATING:
        if column in records:
            out |= _same(records, column, left, right)
    # The near-equal checks loop in Python: run them only on pairs nothing exact corroborates.
    for column, near in (("national_id", near_same_id), ("street", near_same_street)):
        if column in records:
            rest = np.nonzero(~out)[0]
            out[rest] = near(records, left[rest], right[rest])
    return out


def one_slip(x: str, y: str) -> bool:
    """Equal, or one keying slip apart: one character mistyped, or two adjacent ones swapped."""
    if len(x) != len(y):
        return False
    diff = [i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
    if len(diff) <= 1:
        return True
    i, j = diff if len(diff) == 2 else (0, 0)
    return j == i + 1 and x[i] == y[j] and x[j] == y[i]


def one_edit(x: str, y: str) -> bool:
    """Equal or one keying slip apart, a character left out or typed in once more included."""
    if len(x) == len(y):
        return one_slip(x, y)
    if abs(len(x) - len(y)) != 1:
        return False
    short, long = (x, y) if len(x) < len(y) else (y, x)
    i = next((k for k, (p, q) in enumerate(zip(short, long, strict=False)) if p != q), len(short))
    return short[i:] == long[i + 1 :]


#: Pairs compared a block at a time in the vectorised string checks (a block's character
#: matrices take ``2 * PAIR_BLOCK * longest value * 4`` bytes).
PAIR_BLOCK = 250_000


def _characters(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings as rows of code points (zero-padded to the longest) and their lengths."""
    text = np.array([str(v) for v in values], dtype=str)
    if not len(text) or text.dtype.itemsize == 0:
        return np.zeros((len(text), 1), dtype=np.uint32), np.zeros(len(text), dtype=np.int64)
    lengths = np.char.str_len(text).astype(np.int64)
    return text.view(np.uint32).reshape(len(text), -1), lengths


def _pair_characters(
    values: np.ndarray, left: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Character matrices and lengths of the records ``left`` and ``right`` point to (each
    distinct record converted once): ``(matrix, lengths, rows of left, rows of right)``."""
    records, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    matrix, lengths = _characters(values[records])
    return matrix, lengths, inverse[: len(left)], inverse[len(left) :]


def _slips(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`one_slip` of equal-length rows of code points: at most one position differs, or
    exactly two adjacent ones, swapped."""
    diff = x != y
    count = diff.sum(axis=1)
    out = count <= 1
    two = np.nonzero(count == 2)[0]
    if len(two):
        d = diff[two]
        i = d.argmax(axis=1)
        j = d.shape[1] - 1 - d[:, ::-1].argmax(axis=1)
        xs, ys = x[two], y[two]
        rows = np.arange(len(two))
        out[two] = (j == i + 1) & (xs[rows, i] == ys[rows, j]) & (xs[rows, j] == ys[rows, i])
    return out


def _one_slip_pairs(
    values: np.ndarray, left: np.ndarray, right: np.ndarray, min_length: int
) -> np.ndarray:
    """``len(x) >= min_length and one_slip(x, y)`` for the pairs of present ``values``."""
    out = np.zeros(len(left), dtype=bool)
    if not len(left):
        return out
    matrix, lengths, rl, rr = _pair_characters(values, left, right)
    for start in range(0, len(left), PAIR_BLOCK):
        a, b = rl[start : start + PAIR_BLOCK], rr[start : start + PAIR_BLOCK]
        same = np.nonzero((lengths[a] == lengths[b]) & (lengths[a] >= min_length))[0]
        out[start + same] = _slips(matrix[a[same]], matrix[b[same]])
    return out


_HOUSE_NUMBER = re.compile(r"^(\d+) ")


def house_number(street: object) -> str | None:
    """:func:`house_numbers` of one street line (None where it has none)."""
    found = _HOUSE_NUMBER.match(street) if isinstance(street, str) else None
    return found.group(1) if found else None


def house_numbers(streets: pd.Series) -> pd.Series:
    """The leading house number of each street line (``95`` of ``95 leahy place``), else NaN."""
    return streets.astype(object).str.extract(_HOUSE_NUMBER.pattern, expand=False)


def near_same_street(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Pairs whose street lines (both present) start with the same house number and are at
    most one keying slip apart (``95 leahy place``, ``95 leahy lplace``): the same address,
    mistyped, is as identifying as the exact one."""
    records = columns_of(records)
    values = records["street"]
    number = records.house_numbers()
    a, b = values[left], values[right]
    na, nb = number[left], number[right]
    out = np.zeros(len(left), dtype=bool)
    same = pd.notna(na) & pd.notna(nb)
    same[same] = na[same] == nb[same]
    for i in np.nonzero(same)[0]:
        x, y = a[i], b[i]
        out[i] = len(x) >= 8 and one_edit(x, y)
    return out


def near_same_id(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Pairs whose national ids (both present, at least 6 characters) are equal or one keying
    slip apart. Identifiers are issued without regard to family, so two relatives' ids are
    no closer than two strangers'; a near-equal id is a transcription of one person's."""
    records = columns_of(records)
    values = records["national_id"]
    out = np.zeros(len(left), dtype=bool)
    both = np.nonzero(pd.notna(values[left]) & pd.notna(values[right]))[0]
    out[both] = _one_slip_pairs(values, left[both], right[both], 6)
    return out


def _positions_differ(a: str, b: str) -> int:
    if len(a) != len(b):
        return max(len(a), len(b))
    return sum(x != y for x, y in zip(a, b, strict=True))


def different_valid_ids(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Person pairs whose national ids both pass their check and are more than one keying slip
    apart: two people (a father and son, twins, two members of a household), unlike one
    mistyped id or an id no check could judge."""
    records = columns_of(records)
    out = np.zeros(len(left), dtype=bool)
    if "national_id_checked" not in records:
        return out
    differ = _differ(records, "national_id_checked", left, right)
    if "national_id_type" in records:
        differ &= ~_differ(records, "national_id_type", left, right)
    both = np.nonzero(differ)[0]
    checked = records.renamed(national_id="national_id_checked")
    out[both] = ~near_same_id(checked, left[both], right[both])
    return out


def contradicting(
    records: pd.DataFrame | Columns, left: np.ndarray, right: np.ndarray, year_gap: int = 10
) -> np.ndarray:
    """Pairs that cannot be one person whatever else they share: birth dates a generation
    apart (years ``year_gap`` or more apart and more than two characters different; a typo or a
    pair of swapped digits is not; 0 turns this off), or national ids that both pass their check
    and are more than one keying slip apart. A father and son sharing a name, an address and a
    phone are kept apart by this even when a third record, without a birth date, resembles both.
    National ids equal or one keying slip apart outweigh the birth dates (a birth date keyed in
    the wrong field or replaced by a placeholder is commoner than two relatives with near-equal
    ids)."""
    records = columns_of(records)
    out = different_valid_ids(records, left, right)
    values = records["birth"]
    a, b = values[left], values[right]
    if year_gap <= 0:
        return out
    checked = pd.notna(a) & pd.notna(b)
    if "national_id" in records and checked.any():
        checked[checked] = ~near_same_id(records, left[checked], right[checked])
    todo = np.nonzero(checked & ~out)[0]
    if not len(todo):
        return out
    # Years and characters per distinct record, then compared a block of pairs at a time.
    matrix, lengths, rl, rr = _pair_characters(values, left[todo], right[todo])
    head = [str(v)[:4] for v in values[np.unique(np.concatenate([left[todo], right[todo]]))]]
    year = np.array([int(h) if h.isdigit() else -1 for h in head], dtype=np.int64)
    dated = (year[rl] >= 0) & (year[rr] >= 0) & (np.abs(year[rl] - year[rr]) >= year_gap)
    for start in range(0, len(todo), PAIR_BLOCK):
        chunk = np.nonzero(dated[start : start + PAIR_BLOCK])[0] + start
        a, b = rl[chunk], rr[chunk]
        differ = np.where(
            lengths[a] == lengths[b],
            (matrix[a] != matrix[b]).sum(axis=1),
            np.maximum(lengths[a], lengths[b]),
        )
        out[todo[chunk]] = differ > 2
    return out
