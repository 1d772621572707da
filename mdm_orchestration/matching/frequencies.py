"""Term frequencies: how many of the hub's records carry each compared value.

At a million records two strangers often share a given name and a birth date, or a family name
and a city: an agreement on a value that thousands of records hold is weaker evidence than one on
a value a handful hold (splink's term-frequency adjustment). The counts are hub-wide, whichever
path matches: the full rebuild counts every current record; the incremental path keeps the counts
in ``term_frequencies`` (values as hashes) and applies each run's changes.

Decisions read a count through its *level* (``floor(log2(count))``; for the full name, the
count itself up to ``rare_name_records + 1``), so that a value whose count changes without
changing level changes no score. When a value's level changes, the incremental path scores
every record holding it again (found through ``tf_*`` entries in the blocking index): the
incremental path and a full rebuild then weigh every agreement alike.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from itertools import compress

import numpy as np
import pandas as pd

from mdm_orchestration.config import MatchingConfig
from mdm_orchestration.hub.tables import ORGANISATION, PERSON

#: Compared fields whose agreement is weighed by frequency, per party type. ``full_name``
#: (``given_key|family``) decides whether a name is rare; ``token`` is each word of an
#: organisation's name (``Group``, ``Holdings``, ``Jones``).
TF_FIELDS: dict[str, tuple[str, ...]] = {
    PERSON: ("given_key", "family", "birth", "postcode", "city", "full_name"),
    ORGANISATION: ("token",),
}
#: The most name tokens counted per organisation (the blocking index keeps one entry each).
MAX_TOKENS = 8
#: Blocking-index entries that find the records holding a value: ``tf_<field>``.
INDEX_PREFIX = "tf_"


def value_key(field: str, value: str) -> str:
    """A value as the hub stores it in ``term_frequencies`` and the blocking index: hashed."""
    return hashlib.blake2b(f"tf\x1f{field}\x1f{value}".encode(), digest_size=16).hexdigest()


#: Words that join the words of a name in the languages the hub's cleansing knows (``Benard et
#: Chauveau``, ``Wulf und Werner``, ``Jones & Sons`` as ``jones and sons``): not part of it.
CONNECTORS = frozenset({"and", "et", "und", "y", "e", "en", "of", "the"})


def company_tokens(company: object) -> list[str]:
    """The distinct words of an organisation's name key, in order, connectors left out, at most
    ``MAX_TOKENS``."""
    if not isinstance(company, str):
        return []
    words = (t for t in company.split() if t and t not in CONNECTORS)
    return list(dict.fromkeys(words))[:MAX_TOKENS]


def _full_names(frame: pd.DataFrame) -> list[str | None]:
    return [
        f"{g}|{f}" if isinstance(g, str) and g and isinstance(f, str) and f else None
        for g, f in zip(frame["given_key"].tolist(), frame["family"].tolist(), strict=True)
    ]


def field_values(frame: pd.DataFrame, field: str) -> list[object]:
    """One value per record (a list of tokens for ``token``; None where missing)."""
    if field == "full_name":
        return _full_names(frame)
    if field == "token":
        return [company_tokens(v) for v in frame["company"].tolist()]
    return [v if isinstance(v, str) and v else None for v in frame[field].tolist()]


#: Below this many records :func:`record_terms` filters each party's records as lists.
_FEW_ROWS = 64


def record_terms(frame: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """``(record_id, party_type, index key name, value key)`` for every counted value of the
    records of a match frame (one entry per organisation name token)."""
    out: list[tuple[str, str, str, str]] = []
    few = len(frame) < _FEW_ROWS
    parties = frame["party_type"].tolist() if few else None
    for party, fields in TF_FIELDS.items():
        if parties is not None:
            # A few records (the service's): filtered as lists, not a frame per party.
            mine = [p == party for p in parties]
            if not any(mine):
                continue
            ids = list(compress(frame["record_id"].tolist(), mine))
        else:
            sub = frame[frame["party_type"] == party]
            if sub.empty:
                continue
            ids = sub["record_id"].tolist()
        for field in fields:
            keys: dict[str, str] = {}
            values = (
                list(compress(field_values(frame, field), mine))
                if parties is not None
                else field_values(sub, field)
            )
            for rid, value in zip(ids, values, strict=True):
                if field == "token":
                    for i, token in enumerate(value):  # type: ignore[arg-type]
                        k = keys.get(token) or keys.setdefault(token, value_key(field, token))
                        out.append((rid, party, f"{INDEX_PREFIX}{field}_{i}", k))
                elif value is not None:
                    k = keys.get(value) or keys.setdefault(value, value_key(field, value))  # type: ignore[arg-type]
                    out.append((rid, party, f"{INDEX_PREFIX}{field}", k))
    return out


def field_of(index_name: str) -> str:
    """The field of a ``tf_*`` blocking-index entry name."""
    name = index_name[len(INDEX_PREFIX) :]
    return "token" if name.startswith("token_") else name


#: (party type, field, value key) -> records holding the value
Counts = Mapping[tuple[str, str, str], int]


def count_terms(terms: Iterable[tuple[str, str, str, str]]) -> Counter:
    """Counts from :func:`record_terms` entries."""
    return Counter((party, field_of(name), key) for _rid, party, name, key in terms)


@dataclass(frozen=True)
class Levels:
    """How counts are read: ``floor(log2(count))`` (0 for a value held by one record). For the
    full name also its count itself, capped at ``rare_name_records + 1`` (whether at most
    ``rare_name_records`` records hold it decides the name-only cap). ``bounds`` clip a field's
    level to the range in which it changes a score (a person field's penalty starts above its
    reference count and stops growing at its cap), so that a value crossing a level no score
    reads re-scores nothing (a city passing 131,072 records)."""

    rare_name_records: int
    bounds: Mapping[str, tuple[int, int]] = dataclass_field(default_factory=dict)

    @classmethod
    def of(cls, config: MatchingConfig) -> Levels:
        tf = config.term_frequencies
        bounds = {
            name: (tf.reference(name), tf.reference(name) + math.ceil(tf.max_penalty / weight))
            for name, weight in tf.weights.items()
            if weight > 0
        }
        return cls(config.rare_name_records, bounds)

    def level(self, field: str, count: int) -> int | tuple[int, int]:
        raw = int(math.floor(math.log2(count))) if count >= 1 else -1
        if field in self.bounds:
            low, high = self.bounds[field]
            raw = min(max(raw, low), high)
        elif field == "full_name":
            raw = 0  # not weighed: only its rarity counts
        if field == "full_name":
            return (min(count, self.rare_name_records + 1), raw)
        return raw


class Frequencies:
    """Hub-wide counts of compared values, looked up per record of a match frame."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Frequencies:
        """The counts of ``frame``'s own records (the whole hub, in a full rebuild): what
        :func:`count_terms` makes of :func:`record_terms`, counted per distinct value (each
        hashed once) instead of through an entry per record."""
        counts: Counter = Counter()
        for party, fields in TF_FIELDS.items():
            sub = frame[frame["party_type"] == party]
            if sub.empty:
                continue
            for field in fields:
                values = field_values(sub, field)
                if field == "token":
                    held = Counter(t for tokens in values for t in tokens)  # type: ignore[union-attr]
                else:
                    held = Counter(v for v in values if v is not None)
                for value, count in held.items():
                    counts[(party, field, value_key(field, value))] += count  # type: ignore[arg-type]
        return cls(counts)

    def per_record(self, frame: pd.DataFrame, party: str, field: str) -> np.ndarray:
        """Each record's count of its value of ``field`` (0 where it has none); for ``token``,
        an object array of per-token count lists."""
        return self.per_value(field_values(frame, field), party, field)

    def per_value(self, values: list, party: str, field: str) -> np.ndarray:
        """:meth:`per_record` of the records' :func:`field_values` ``values``."""
        if field == "token":
            out = np.empty(len(values), dtype=object)
            out[:] = [
                [self.counts.get((party, field, value_key(field, t)), 1) for t in v]  # type: ignore[union-attr]
                for v in values
            ]
            return out
        codes, distinct = pd.factorize(np.array(values, dtype=object), use_na_sentinel=True)
        held = np.array(
            [self.counts.get((party, field, value_key(field, v)), 1) for v in distinct],
            dtype=np.int64,
        )
        counts = np.zeros(len(values), dtype=np.int64)
        present = codes >= 0
        counts[present] = held[codes[present]]
        return counts


class GroupedFrequencies(Frequencies):
    """Counts that differ by group of records: rows ``start:stop`` of a frame looked up in their
    group's own :class:`Frequencies` (``POST /v1/match`` scores a batch of proposals in one
    frame, each proposal's group counting its own values once more)."""

    def __init__(self, groups: list[tuple[int, int, Frequencies]]) -> None:
        super().__init__({})
        self.size = 0
        for a, b, _f in groups:
            if a != self.size or b < a:
                raise ValueError("groups must follow each other from row 0, without gaps")
            self.size = b
        self.groups = groups

    def per_value(self, values: list, party: str, field: str) -> np.ndarray:
        if len(values) != self.size:
            raise ValueError(f"{len(values)} records for groups covering {self.size}")
        parts = [f.per_value(values[a:b], party, field) for a, b, f in self.groups]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def level_changes(before: Counts, delta: Counts, levels: Levels) -> list[tuple[str, str, str]]:
    """The values (party, field, value key) whose level ``delta`` changes."""
    out = []
    for key, change in delta.items():
        if change == 0:
            continue
        old = before.get(key, 0)
        if levels.level(key[1], old) != levels.level(key[1], old + change):
            out.append(key)
    return out
