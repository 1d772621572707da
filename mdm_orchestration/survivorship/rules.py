"""Survivorship: the golden value of each attribute, chosen among a cluster's records.

Pure functions over plain records (dicts of cleansed columns plus ``source_updated_at`` and
``quality_flags``); nothing here knows the hub or Dagster. Every attribute group survives from
one record (an address's parts never mix two records), and every choice is explained: the
record that supplied it and the strategy that decided.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from mdm_orchestration.cleansing.text import fold
from mdm_orchestration.config import (
    GOLDEN_ATTRIBUTES,
    GOLDEN_GROUPS,
    GOLDEN_PUBLIC_FIELDS,
    SourceConfig,
    SurvivorshipConfig,
)

Record = Mapping[str, Any]

PUBLIC_FIELDS = GOLDEN_PUBLIC_FIELDS
ATTRIBUTES = GOLDEN_ATTRIBUTES
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("given_key", "family_key"),
    "organisation": ("company_key",),
    "email": ("email_key",),
    "address": ("address_key",),
}
#: A value is valid unless cleansing judged it invalid: its ``*_valid`` column is False, or the
#: record carries a flag about that value.
VALIDITY_COLUMN = {
    "email": "email_valid",
    "phone": "phone_valid",
    "national_id": "national_id_valid",
}
INVALIDATING_FLAGS = {
    "email": frozenset({"email_invalid"}),
    "phone": frozenset({"phone_invalid"}),
    "address": frozenset({"postcode_invalid", "country_unknown"}),
    "birth_date": frozenset({"birth_date_invalid", "birth_date_implausible"}),
    "national_id": frozenset({"national_id_invalid"}),
}
VALIDITY = ("valid_only", "prefer_valid")
_OLDEST = datetime.min.replace(tzinfo=UTC)


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def filled(record: Record) -> set[str]:
    """The names of ``record``'s columns that hold a value: not :func:`_missing` (inlined, the
    set is made once per record instead of a call per column and group)."""
    return {
        k
        for k, v in record.items()
        if v is not None and not (v == "" or (isinstance(v, float) and v != v))
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _updated(record: Record) -> datetime:
    stamp = record.get("source_updated_at")
    if stamp is None or (isinstance(stamp, float) and stamp != stamp):
        return _OLDEST
    if hasattr(stamp, "to_pydatetime"):
        stamp = stamp.to_pydatetime()
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class _Memo:
    """What one cluster's survivorship measures more than once, per record (by identity: the
    records are not hashable) and group: the updated-at stamp and the value key."""

    __slots__ = ("_filled", "_keys", "_updated")

    def __init__(self) -> None:
        self._updated: dict[int, tuple[datetime, float]] = {}
        #: group -> record id -> value key
        self._keys: dict[str, dict[int, tuple[Any, ...]]] = {}
        self._filled: dict[int, set[str]] = {}

    def filled(self, record: Record) -> set[str]:
        """The record's columns that hold a value (not :func:`_missing`)."""
        got = self._filled.get(id(record))
        if got is None:
            got = self._filled[id(record)] = filled(record)
        return got

    def _stamp(self, record: Record) -> tuple[datetime, float]:
        got = self._updated.get(id(record))
        if got is None:
            stamp = _updated(record)
            got = self._updated[id(record)] = (stamp, stamp.timestamp())
        return got

    def updated(self, record: Record) -> datetime:
        return self._stamp(record)[0]

    def timestamp(self, record: Record) -> float:
        return self._stamp(record)[1]

    def value_keys(self, group: str) -> dict[int, tuple[Any, ...]]:
        """The value keys of ``group`` measured so far, by record identity."""
        keys = self._keys.get(group)
        if keys is None:
            keys = self._keys[group] = {}
        return keys

    def value_key(self, record: Record, group: str) -> tuple[Any, ...]:
        keys = self.value_keys(group)
        got = keys.get(id(record))
        if got is None:
            got = keys[id(record)] = _value_key(record, group, self.filled(record))
        return got


class Trust:
    """Source trust per attribute group: ``source_order`` first, then ``trust_rank``."""

    def __init__(self, sources: Mapping[str, SourceConfig], config: SurvivorshipConfig) -> None:
        base = {name: s.trust_rank for name, s in sources.items()}
        worst = max(base.values(), default=0) + 1
        self._default = base
        self._worst = worst
        self._by_group: dict[str, dict[str, float]] = {}
        for group, rule in config.attributes.items():
            if rule.source_order:
                order = {
                    name: i - len(rule.source_order) for i, name in enumerate(rule.source_order)
                }
                self._by_group[group] = {**base, **order}

    def rank(self, source: str, group: str | None = None) -> float:
        table = self._by_group.get(group or "", self._default)
        return table.get(source, self._worst)


@dataclass(frozen=True)
class Choice:
    """Where a golden value came from."""

    record_id: str
    source: str
    source_key: str
    rule: str

    def as_dict(self) -> dict[str, str]:
        return {
            "record_id": self.record_id,
            "source": self.source,
            "source_key": self.source_key,
            "rule": self.rule,
        }


@dataclass
class Survived:
    """A cluster's golden values: public attributes, internal keys, and their lineage."""

    attributes: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, dict[str, str]] = field(default_factory=dict)
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)
    lifecycle: str | None = None
    sources: list[str] = field(default_factory=list)


class Survivor:
    """Applies ``survivorship.yaml`` to clusters of records."""

    def __init__(self, config: SurvivorshipConfig, sources: Mapping[str, SourceConfig]) -> None:
        self.config = config
        self.trust = Trust(sources, config)
        self._lifecycle_rank = {name: i for i, name in enumerate(config.lifecycle_order)}
        #: groups whose strategies leave the attribute empty rather than take an invalid value
        self._valid_only = {
            group for group, rule in config.attributes.items() if "valid_only" in rule.strategies
        }

    # --- the measures --------------------------------------------------------------------

    def _valid(self, record: Record, group: str) -> bool:
        column = VALIDITY_COLUMN.get(group)
        if column is not None and record.get(column) is False:
            return False
        bad = INVALIDATING_FLAGS.get(group)
        return not (bad and not bad.isdisjoint(record.get("quality_flags") or ()))

    @staticmethod
    def _value_key(record: Record, group: str) -> tuple[Any, ...]:
        return _value_key(record, group, filled(record))

    @staticmethod
    def _completeness(record: Record, group: str) -> int:
        return sum(not _missing(record.get(f)) for f in PUBLIC_FIELDS[group])

    def _keep_best(
        self, strategy: str, cands: list[Record], group: str, memo: _Memo | None = None
    ) -> list[Record]:
        memo = memo or _Memo()
        measure: Callable[[Record], Any]
        if strategy == "valid_only":
            return [r for r in cands if self._valid(r, group)]
        if strategy == "prefer_valid":
            valid = [r for r in cands if self._valid(r, group)]
            return valid or cands
        if strategy == "source_trust":
            measure = lambda r: -self.trust.rank(r["source"], group)  # noqa: E731
        elif strategy == "most_recent":
            measure = memo.updated
        elif strategy == "most_complete":
            shown = PUBLIC_FIELDS[group]  # distinct names: the count of those filled
            measure = lambda r: len(memo.filled(r).intersection(shown))  # noqa: E731
        elif strategy == "most_frequent":
            counts = Counter(memo.value_key(r, group) for r in cands)
            measure = lambda r: counts[memo.value_key(r, group)]  # noqa: E731
        else:  # pragma: no cover - the configuration validates strategy names
            raise ValueError(strategy)
        scores = [measure(r) for r in cands]
        best = max(scores)
        return [r for r, s in zip(cands, scores, strict=True) if s == best]

    def _tie_break_key(
        self, group: str | None, memo: _Memo | None = None
    ) -> Callable[[Record], tuple[Any, ...]]:
        memo = memo or _Memo()
        parts: list[Callable[[Record], Any]] = []
        for name in self.config.tie_break:
            if name == "most_recent":
                parts.append(lambda r: -memo.timestamp(r))
            elif name == "source_trust":
                parts.append(lambda r: self.trust.rank(r["source"], group))
            elif name == "most_complete" and group is not None:
                parts.append(lambda r: -self._completeness(r, group))
        return lambda r: (*(p(r) for p in parts), r["source_record_id"])

    # --- one attribute group ---------------------------------------------------------------

    def choose(
        self, records: Sequence[Record], group: str, memo: _Memo | None = None
    ) -> tuple[Record, str] | None:
        """The record whose ``group`` survives, and the strategy that decided; ``None`` if no
        record offers a (valid, where required) value. A record offers a group when it fills
        any of the group's parts (an address with a city but no street still counts)."""
        memo = memo or _Memo()
        return self._choose(records, [memo.filled(r) for r in records], group, memo)

    def _choose(
        self, records: Sequence[Record], fills: list[set[str]], group: str, memo: _Memo
    ) -> tuple[Record, str] | None:
        """:meth:`choose`, with each record's filled columns (``fills``, in record order)."""
        shown = PUBLIC_FIELDS[group]
        offers = [
            (r, has) for r, has in zip(records, fills, strict=True) if not has.isdisjoint(shown)
        ]
        if not offers:
            return None
        if len(offers) == 1:
            # One offer: only the validity strategies can act on it.
            only = offers[0][0]
            if group in self._valid_only and not self._valid(only, group):
                return None
            return only, "only_value"
        keys = memo.value_keys(group)
        distinct = len({keys.setdefault(id(r), _value_key(r, group, has)) for r, has in offers})
        cands = [r for r, _has in offers]
        rule = "agreed" if distinct == 1 else None
        # Records agreeing on a value still go through the strategies: they pick the best
        # rendering of it (the most complete name, the most trusted spelling).
        for strategy in self.config.attributes[group].strategies:
            if len(cands) == 1 and strategy not in VALIDITY:
                continue
            kept = self._keep_best(strategy, cands, group, memo)
            if not kept:
                return None
            if rule is None and (
                len(kept) == 1 or len({memo.value_key(r, group) for r in kept}) == 1
            ):
                rule = strategy
            cands = kept
        if len(cands) == 1:  # the tie-break's minimum of one record
            return cands[0], rule or "tie_break"
        return min(cands, key=self._tie_break_key(group, memo)), rule or "tie_break"

    # --- a whole cluster -------------------------------------------------------------------

    def survive(self, records: Sequence[Record]) -> Survived:
        if len(records) == 1:
            return self._survive_one(records[0])
        memo = _Memo()
        out = Survived()
        fills = [memo.filled(r) for r in records]
        for group in GOLDEN_GROUPS:
            chosen = self._choose(records, fills, group, memo)
            if chosen is None:
                continue
            record, rule = chosen
            _take(out, record, group, rule, memo.filled(record))
        out.consents = self.consents(records, memo)
        out.lifecycle, lifecycle_from = self.lifecycle(records, memo)
        if lifecycle_from is not None:
            out.lineage["lifecycle"] = lifecycle_from
        out.sources = sorted({r["source"] for r in records})
        return out

    def _survive_one(self, record: Record) -> Survived:
        """:meth:`survive` of a cluster of one record: each group it fills (and holds valid,
        where a ``valid_only`` strategy asks) is its ``only_value``, no measure is needed."""
        out = Survived()
        has = filled(record)
        for group in GOLDEN_GROUPS:
            shown = [f for f in PUBLIC_FIELDS[group] if f in has]
            if not shown or (group in self._valid_only and not self._valid(record, group)):
                continue
            _take(out, record, group, "only_value", has)
        out.consents = self.consents((record,))
        out.lifecycle, lifecycle_from = self.lifecycle((record,))
        if lifecycle_from is not None:
            out.lineage["lifecycle"] = lifecycle_from
        out.sources = [record["source"]]
        return out

    def consents(
        self, records: Iterable[Record], memo: _Memo | None = None
    ) -> dict[str, dict[str, Any]]:
        """Per purpose, the most recent statement across sources (then trust, then record id)."""
        memo = memo or _Memo()
        latest: dict[str, tuple[tuple[Any, ...], Record, bool]] = {}
        for r in records:
            for purpose, granted in (r.get("consents") or {}).items():
                key = (
                    -memo.timestamp(r),
                    self.trust.rank(r["source"]),
                    r["source_record_id"],
                )
                if purpose not in latest or key < latest[purpose][0]:
                    latest[purpose] = (key, r, bool(granted))
        out = {}
        for purpose in sorted(latest):
            _key, r, granted = latest[purpose]
            stamp = memo.updated(r)
            out[purpose] = {
                "granted": granted,
                "stated_at": None if stamp == _OLDEST else stamp.isoformat(),
                **_choice(r, "most_recent"),
            }
        return out

    def lifecycle(
        self, records: Sequence[Record], memo: _Memo | None = None
    ) -> tuple[str | None, dict[str, str] | None]:
        """The first lifecycle of ``lifecycle_order`` that any record has (unknown ones last)."""
        with_stage = [r for r in records if not _missing(r.get("lifecycle"))]
        if not with_stage:
            return None, None
        if len(with_stage) == 1:
            best = with_stage[0]
        else:
            worst = len(self._lifecycle_rank)
            order = self._tie_break_key(None, memo)
            best = min(
                with_stage,
                key=lambda r: (self._lifecycle_rank.get(r["lifecycle"], worst), order(r)),
            )
        return best["lifecycle"], _choice(best, "lifecycle_order")


def _take(out: Survived, record: Record, group: str, rule: str, has: set[str]) -> None:
    """``group``'s fields that ``record`` fills (``has``), surviving by ``rule``: its public
    attributes with their lineage, and its keys."""
    choice = _choice(record, rule)
    for f in PUBLIC_FIELDS[group]:
        if f in has:
            value = record[f]
            out.attributes[f] = value if type(value) is str else _json_value(value)
            out.lineage[f] = choice
    for f in KEY_FIELDS.get(group, ()):
        if f in has:
            out.keys[f] = record[f]


def _choice(record: Record, rule: str) -> dict[str, str]:
    """``Choice(...).as_dict()`` of ``record`` surviving by ``rule``, without the frozen
    dataclass in between (one per attribute group of every golden record)."""
    return {
        "record_id": record["source_record_id"],
        "source": record["source"],
        "source_key": record["source_key"],
        "rule": rule,
    }


#: The columns a group's value is compared by: its keys, else its public fields.
_VALUE_FIELDS = {group: KEY_FIELDS.get(group) or PUBLIC_FIELDS[group] for group in PUBLIC_FIELDS}


def _value_key(record: Record, group: str, has: set[str]) -> tuple[Any, ...]:
    """The value ``record`` offers for ``group``, as compared: its key columns (or public
    fields) when it fills any of them, else its public fields folded. ``has``: the record's
    filled columns (:func:`filled`), so that a column is looked at once."""
    fields = _VALUE_FIELDS[group]
    if not has.isdisjoint(fields):
        return tuple(map(record.get, fields))
    return tuple(fold(str(record[f])) if f in has else None for f in PUBLIC_FIELDS[group])
