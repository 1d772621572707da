"""Blocking: which record pairs are compared at all.

Several passes of keys computed from the cleansed record; two records become a candidate pair
when they share any key. Keys are chosen so that each kind of true duplicate shares at least one
even when other fields changed: the email key (moves, married names), a valid phone, a valid
national id, the address (typos in names), and phonetic family name with given name plus birth
date or postcode (new email and phone). Blocks larger than ``max_block_size`` are skipped: a
shared switchboard or a placeholder value is not evidence, and a giant block costs quadratically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mdm_orchestration.hub.tables import ORGANISATION, PERSON
from mdm_orchestration.matching.frequencies import record_terms
from mdm_orchestration.matching.rules import house_number, house_numbers

#: Below this many records keys are joined in Python (:func:`_join_keys`).
_ARROW_ROWS = 64


def _join_keys(frame: pd.DataFrame, columns: list[str]) -> Keys:
    """``a|b|c`` where every part is present (a non-empty string), else null: joined by Arrow,
    column by column, not a Python string per record (below 64 records, where Arrow's fixed
    cost per call is larger than the strings', one per record)."""
    if len(frame) < _ARROW_ROWS:
        return _join_values(frame, columns)
    parts = []
    for column in columns:
        try:
            part = pa.array(frame[column].to_numpy(object), type=pa.string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            return _join_values(frame, columns)  # a value that is not a string: as it is
        parts.append(pc.if_else(pc.equal(part, ""), pa.scalar(None, pa.string()), part))
    return pc.binary_join_element_wise(*parts, "|")


#: One key per record: an object series (None or NaN where missing) or an Arrow string array.
Keys = pd.Series | pa.Array


def _as_series(keys: Keys, index: pd.Index) -> pd.Series:
    if isinstance(keys, pa.Array):
        return pd.Series(keys.to_numpy(zero_copy_only=False), index=index, dtype=object)
    return keys


def _factorize(keys: Keys) -> tuple[np.ndarray, pa.Array | np.ndarray]:
    """Integer codes of the keys (-1 where missing) and the distinct keys (an Arrow array or
    an object array: made into Python strings only where a caller needs them)."""
    if isinstance(keys, pa.Array):
        encoded = pc.dictionary_encode(keys)
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return codes, encoded.dictionary
    codes, distinct = pd.factorize(keys.to_numpy(object), use_na_sentinel=True)
    return codes.astype(np.int64), distinct


def _join_values(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    cols = [frame[c].tolist() for c in columns]
    joined = [
        "|".join(str(p) for p in parts) if all(isinstance(p, str) and p for p in parts) else None
        for parts in zip(*cols, strict=True)
    ]
    return pd.Series(joined, index=frame.index, dtype=object)


def blocking_keys(records: pd.DataFrame, party_type: str) -> dict[str, pd.Series]:
    """Key name -> one key per record (``NaN`` where the record has no such key)."""
    return {
        name: _as_series(make(), records.index)
        for name, make in _key_makers(records, party_type).items()
    }


def _joined(*parts: list) -> list[str | None]:
    """:func:`_join_values` of columns given as lists."""
    return [
        "|".join(p) if all(isinstance(v, str) and v for v in p) else None
        for p in zip(*parts, strict=True)
    ]


def few_blocking_keys(records: pd.DataFrame, party_type: str) -> dict[str, list]:
    """:func:`blocking_keys` of a few records (the service's proposals), value by value: the
    vectorised keys cost a pandas operation per key and record column (a frame copied for
    each derived column), which dominates one proposal's matching. A key is its value where
    it is a non-empty string, anything else where it is missing (``test_few_blocking_keys``
    holds the two to the same keys)."""
    col = {name: records[name].tolist() for name in _KEY_COLUMNS[party_type]}
    if party_type == PERSON:
        given, family = col["given_phonetic"], col["family_phonetic"]
        birth, postcode, city, street = col["birth"], col["postcode"], col["city"], col["street"]
        names = [
            "|".join(sorted((g, f))) if isinstance(g, str) and isinstance(f, str) else None
            for g, f in zip(given, family, strict=True)
        ]
        id_chars = [
            "".join(sorted(v)) if isinstance(v, str) and len(v) >= 6 else None
            for v in col["national_id"]
        ]
        return {
            "email": col["email"],
            "phone": col["phone"],
            "national_id": col["national_id"],
            "address": _joined(street, postcode),
            "family_birth": _joined(family, birth),
            "birth_city": _joined(birth, city),
            "given_birth": _joined(col["given_key"], birth),
            "birth_postcode": _joined(birth, postcode),
            "street_city": _joined(street, city),
            "names_any_order_birth": _joined(names, birth),
            "family_postcode": _joined(family, postcode),
            "id_characters_postcode": _joined(id_chars, postcode),
            "name_city": _joined(family, given, city),
            "family_house_number": _joined(family, [house_number(v) for v in street]),
            "full_name": _joined(col["given_key"], col["family"]),
        }
    company, postcode = col["company"], col["postcode"]
    return {
        "company": company,
        "phone": col["phone"],
        "national_id": col["national_id"],
        "email_domain": [None if d in PERSONAL_DOMAINS else d for d in col["email_domain"]],
        "address": _joined(col["street"], postcode),
        "company_postcode": _joined(
            [" ".join(v.split()[:2]) if isinstance(v, str) else None for v in company], postcode
        ),
    }


#: The match-frame columns each party's keys are made of.
_KEY_COLUMNS = {
    PERSON: (
        "email",
        "phone",
        "national_id",
        "street",
        "postcode",
        "city",
        "birth",
        "given_key",
        "family",
        "given_phonetic",
        "family_phonetic",
    ),
    ORGANISATION: ("company", "phone", "national_id", "email_domain", "street", "postcode"),
}


def _key_makers(records: pd.DataFrame, party_type: str) -> dict[str, Callable[[], Keys]]:
    """Key name -> what computes that key for every record, so that a caller can hold one key
    at a time (at a million records each joined key is some 70 MB of strings). A key changed
    here is changed in :func:`few_blocking_keys` too (``test_match_frame_rows`` holds the two
    to the same keys)."""
    r = records
    first_letter = pd.Series(
        [v[0] if isinstance(v, str) and v else None for v in r["given_key"]],
        index=r.index,
        dtype=object,
    )
    r = r.assign(given_initial=first_letter)
    if party_type == PERSON:
        return {
            "email": lambda: r["email"],
            "phone": lambda: r["phone"],
            "national_id": lambda: r["national_id"],
            "address": lambda: _join_keys(r, ["street", "postcode"]),
            "family_birth": lambda: _join_keys(r, ["family_phonetic", "birth"]),
            "birth_city": lambda: _join_keys(r, ["birth", "city"]),
            "given_birth": lambda: _join_keys(r, ["given_key", "birth"]),
            # Typos in both names (or the two swapped): born the same day in the same postcode.
            "birth_postcode": lambda: _join_keys(r, ["birth", "postcode"]),
            # A typo in the postcode: the same street line in the same town.
            "street_city": lambda: _join_keys(r, ["street", "city"]),
            # Given and family name swapped between silos.
            "names_any_order_birth": lambda: _join_keys(
                r.assign(
                    names=pd.Series(
                        [
                            "|".join(sorted((g, f)))
                            if isinstance(g, str) and isinstance(f, str)
                            else None
                            for g, f in zip(r["given_phonetic"], r["family_phonetic"], strict=True)
                        ],
                        index=r.index,
                        dtype=object,
                    )
                ),
                ["names", "birth"],
            ),
            "family_postcode": lambda: _join_keys(r, ["family_phonetic", "postcode"]),
            # A national id keyed with two characters swapped (and names changed): the same
            # characters, in order, in the same postcode.
            "id_characters_postcode": lambda: _join_keys(
                r.assign(
                    id_chars=pd.Series(
                        [
                            "".join(sorted(v)) if isinstance(v, str) and len(v) >= 6 else None
                            for v in r["national_id"]
                        ],
                        index=r.index,
                        dtype=object,
                    )
                ),
                ["id_chars", "postcode"],
            ),
            "name_city": lambda: _join_keys(r, ["family_phonetic", "given_phonetic", "city"]),
            # A mistyped postcode and a misspelt street (95 leahy place, 6302; 95 leahy lplace,
            # 6320) keep the house number: with the family name it is a small block.
            "family_house_number": lambda: _join_keys(
                r.assign(house=house_numbers(r["street"])), ["family_phonetic", "house"]
            ),
            # The same person at work (CRM contact) and at home shares little but the name;
            # common names make blocks too large to keep, which is the point of the cap.
            "full_name": lambda: _join_keys(r, ["given_key", "family"]),
        }
    return {
        "company": lambda: r["company"],
        "phone": lambda: r["phone"],
        "national_id": lambda: r["national_id"],
        "email_domain": lambda: r["email_domain"].where(~r["email_domain"].isin(PERSONAL_DOMAINS)),
        "address": lambda: _join_keys(r, ["street", "postcode"]),
        "company_postcode": lambda: _join_keys(
            r.assign(
                head=pd.Series(
                    [" ".join(v.split()[:2]) if isinstance(v, str) else None for v in r["company"]],
                    index=r.index,
                    dtype=object,
                )
            ),
            ["head", "postcode"],
        ),
    }


#: Free-mail domains: shared by strangers, never an organisation key.
PERSONAL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "aol.com",
        "icloud.com",
        "live.com",
        "msn.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "proton.me",
        "protonmail.com",
    }
)


@dataclass
class Candidates:
    """Candidate pairs (positions, ``left < right``) and what the blocking did."""

    left: np.ndarray
    right: np.ndarray
    pairs_by_key: dict[str, int] = field(default_factory=dict)
    giant_blocks: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.left)


def key_hash(name: str, key: str) -> str:
    """How the persisted blocking index stores a key: hashed, so it holds no customer value."""
    return hashlib.blake2b(f"{name}\x1f{key}".encode(), digest_size=16).hexdigest()


def index_entries(records: pd.DataFrame, party_type: str) -> list[tuple[str, str, str]]:
    """(record id, key name, key hash) for every blocking key of ``records`` (a match frame
    of one party type), and every value counted by ``frequencies.record_terms``."""
    out = []
    ids = records["record_id"].tolist()
    few = len(records) < _ARROW_ROWS
    made = few_blocking_keys(records, party_type) if few else blocking_keys(records, party_type)
    for name, keys in made.items():
        for rid, key in zip(ids, keys if few else keys.tolist(), strict=True):
            if isinstance(key, str) and key:
                out.append((rid, name, key_hash(name, key)))
    # The values counted for frequency-aware matching (``tf_*``): not blocks, but how the
    # incremental path finds the records holding a value whose count changed level.
    out += [(rid, name, key) for rid, _party, name, key in record_terms(records)]
    return out


def block_partition(name: str, key: str, partitions: int) -> int:
    """Which of ``partitions`` the block of key ``name`` = ``key`` belongs to: a stable hash of
    the key's bytes (:func:`key_hash`'s, never Python's salted ``hash``), the same in every
    process."""
    return int(key_hash(name, key)[:16], 16) % partitions


def _in_partition(
    name: str, distinct: pa.Array | np.ndarray, blocks: np.ndarray, partition: tuple[int, int]
) -> np.ndarray:
    """Which of the distinct keys (only those where ``blocks`` holds) fall in ``partition``
    (index, count): Python strings are made for those keys only."""
    index, count = partition
    at = np.flatnonzero(blocks)
    picked = distinct.take(pa.array(at)) if isinstance(distinct, pa.Array) else distinct[at]
    mine = np.zeros(len(blocks), dtype=bool)
    mine[at] = [block_partition(name, str(k), count) == index for k in _strings(picked)]
    return mine


def candidate_pairs(
    records: pd.DataFrame,
    party_type: str,
    max_block_size: int,
    block_sizes: Mapping[tuple[str, str], int] | None = None,
    partition: tuple[int, int] | None = None,
) -> Candidates:
    """Every pair of records (by position in ``records``) sharing at least one blocking key.

    ``block_sizes`` gives the size of a block in the whole hub, by (key name, key hash), when
    ``records`` are only part of it (incremental matching): a block is giant by its hub size.
    ``partition`` (index, count): only the blocks whose key :func:`block_partition` puts there
    (their pairs, their giant blocks); the partitions' pairs together are every pair."""
    packed: list[np.ndarray] = []
    by_key: dict[str, int] = {}
    giants: dict[str, int] = {}
    for name, make in _key_makers(records, party_type).items():
        # Integer codes per key value (missing keys: -1), one key at a time; a block's pairs
        # come from its positions in ascending order, never through a frame of key strings
        # joined to itself.
        codes, distinct = _factorize(make())
        if not len(distinct):
            continue
        sizes = np.bincount(codes[codes >= 0], minlength=len(distinct)).astype(np.int64)
        if block_sizes is not None:
            hub = np.array(
                [block_sizes.get((name, key_hash(name, k)), 0) for k in _strings(distinct)],
                dtype=np.int64,
            )
            sizes = np.maximum(sizes, hub)
        if partition is not None:
            sizes = np.where(_in_partition(name, distinct, sizes > 1, partition), sizes, 0)
        giants[name] = int((sizes > max_block_size).sum())
        kept = (sizes > 1) & (sizes <= max_block_size)
        member = np.nonzero((codes >= 0) & kept[np.maximum(codes, 0)])[0]
        if not len(member):
            continue
        pl, pr = block_pairs(codes[member], member)
        by_key[name] = len(pl)
        # One int64 per pair (left * n + right) from here: half the memory of two arrays.
        pl *= len(records)
        pl += pr
        packed.append(pl)
        del pr
    if not packed:
        return Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), by_key, giants)
    unique = np.unique(np.concatenate(packed))
    n = max(len(records), 1)
    return Candidates(unique // n, unique % n, by_key, giants)


def _strings(distinct: pa.Array | np.ndarray) -> list:
    return distinct.to_pylist() if isinstance(distinct, pa.Array) else distinct.tolist()


def block_pairs(codes: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(left < right)`` of ``positions`` sharing a code: by code, then by left,
    then by right, ascending."""
    order = np.lexsort((positions, codes))
    codes, positions = codes[order], positions[order].astype(np.int64)
    start = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    size = np.diff(np.r_[start, len(codes)])
    end = np.repeat(start + size, size)  # one past each element's block
    after = end - np.arange(len(codes)) - 1  # partners following each element in its block
    left = np.repeat(np.arange(len(codes)), after)
    offset = np.arange(len(left)) - np.repeat(np.cumsum(after) - after, after)
    right = left + 1 + offset
    return positions[left], positions[right]
