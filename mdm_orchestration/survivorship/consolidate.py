"""From clusters to golden records and their change events: the plan of one consolidation.

Pure: the hub side (``reading``, ``writing``) reads the inputs and writes the plan in one
transaction. A golden record's content is everything a consumer sees (attributes, consents, lifecycle,
organisation link, members) plus its lineage; a change of content is a new version and exactly
one change event. Content that did not change produces nothing, so re-running is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from mdm_orchestration.survivorship.ids import Assignment, assign_golden_ids, seq_of
from mdm_orchestration.survivorship.overrides import (
    APPLIED,
    Override,
    OverrideOutcome,
    apply_overrides,
)
from mdm_orchestration.survivorship.overrides import RETIRED as RETIRED_OVERRIDE
from mdm_orchestration.survivorship.rows import to_json_each
from mdm_orchestration.survivorship.rules import Record, Survivor

CREATED, UPDATED, MERGED, SPLIT, RETIRED = "created", "updated", "merged", "split", "retired"


@dataclass
class GoldenState:
    """The content of one active golden record."""

    party_type: str
    attributes: dict[str, Any]
    keys: dict[str, Any]
    lineage: dict[str, dict[str, str]]
    consents: dict[str, dict[str, Any]]
    lifecycle: str | None
    organisation_golden_id: str | None
    sources: list[str]
    members: list[str]

    def encoded(self) -> tuple[StateJSON, str]:
        """The JSON columns of this content and its digest: the SHA-256 of the canonical JSON
        (:func:`~mdm_orchestration.survivorship.rows.to_json`) of all its fields, which is
        the fields' own JSON joined in the order of their names, so each is encoded once."""
        parts = to_json_each(_state_values(self))
        text = "{" + ",".join(map(str.__add__, _STATE_KEYS, parts)) + "}"
        digest = hashlib.sha256(text.encode()).hexdigest()
        return StateJSON(*_state_columns(parts)), digest

    def digest(self) -> str:
        return self.encoded()[1]


class StateJSON(NamedTuple):
    """A golden state's JSON columns, as ``golden_records`` and ``golden_history`` hold them."""

    attributes: str
    keys: str
    lineage: str
    consents: str
    sources: str
    members: str


#: GoldenState's fields sorted by name: the key order of its canonical JSON.
_STATE_FIELDS = tuple(sorted(f.name for f in fields(GoldenState)))
#: Those fields' values, in that order; their keys as the JSON writes them; the JSON columns.
_state_values = operator.attrgetter(*_STATE_FIELDS)
_STATE_KEYS = tuple(f'"{name}":' for name in _STATE_FIELDS)
_state_columns = operator.itemgetter(*(_STATE_FIELDS.index(n) for n in StateJSON._fields))


class EncodedState:
    """A :class:`GoldenState` as a plan keeps it once encoded: its JSON columns, its digest and
    its plain columns; the rest decoded from its JSON when asked.

    A plan holds the new content of every golden record it creates or changes until it is
    written: at a first consolidation, of every golden record. Holding the survivors' dicts
    (and through them the records' values) beside their JSON was most of the stage's memory;
    the writer needs only the JSON and the plain columns. Decoded values are what the hub
    gives back when it reads the record (``to_json``'s JSON: a date is its ISO text), a new
    object at each access: a change to one is not the plan's (decode once and keep it)."""

    __slots__ = (
        "_digest",
        "lifecycle",
        "member_count",
        "organisation_golden_id",
        "party_type",
        "texts",
    )

    def __init__(self, state: GoldenState, texts: StateJSON, digest: str) -> None:
        self.party_type, self.lifecycle = state.party_type, state.lifecycle
        self.organisation_golden_id = state.organisation_golden_id
        self.member_count = len(state.members)
        self.texts, self._digest = texts, digest

    @property
    def attributes(self) -> dict[str, Any]:
        return json.loads(self.texts.attributes)  # type: ignore[no-any-return]

    @property
    def keys(self) -> dict[str, Any]:
        return json.loads(self.texts.keys)  # type: ignore[no-any-return]

    @property
    def lineage(self) -> dict[str, dict[str, str]]:
        return json.loads(self.texts.lineage)  # type: ignore[no-any-return]

    @property
    def consents(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.texts.consents)  # type: ignore[no-any-return]

    @property
    def sources(self) -> list[str]:
        return json.loads(self.texts.sources)  # type: ignore[no-any-return]

    @property
    def members(self) -> list[str]:
        return json.loads(self.texts.members)  # type: ignore[no-any-return]

    def encoded(self) -> tuple[StateJSON, str]:
        return self.texts, self._digest

    def digest(self) -> str:
        return self._digest

    def __repr__(self) -> str:
        return f"EncodedState({self.party_type!r}, {self._digest[:12]!r}, ...)"


_NO_SOURCES: Any = object()


class _Stored:
    """A column's value as the database gave it, not decoded yet."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:  # noqa: ANN401
        self.value = value


class Previous:
    """What the hub holds for an active golden record.

    ``attributes``, ``lineage``, ``consents`` and ``sources`` may be given still encoded, with
    ``decode`` (what the column's type does to a stored value): each is decoded on first use.
    A plan compares most golden records by their content hash alone; decoding every one of
    them was most of the read of the golden records after a full rebuild, and their memory.
    """

    __slots__ = (
        "_attributes",
        "_consents",
        "_decode",
        "_lineage",
        "_sources",
        "content_hash",
        "lifecycle",
        "organisation_golden_id",
        "party_type",
        "version",
    )
    #: The constructor's arguments, in order (the golden-record columns they come from).
    FIELDS = (
        "version",
        "content_hash",
        "party_type",
        "attributes",
        "lineage",
        "consents",
        "lifecycle",
        "organisation_golden_id",
        "sources",
    )

    def __init__(
        self,
        version: int,
        content_hash: str,
        party_type: str,
        attributes: dict[str, Any] | Any,  # noqa: ANN401 - decoded, or given to ``decode``
        lineage: dict[str, Any] | Any,  # noqa: ANN401
        consents: dict[str, Any] | Any,  # noqa: ANN401
        lifecycle: str | None,
        organisation_golden_id: str | None,
        sources: list[str] | Any = _NO_SOURCES,  # noqa: ANN401
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> None:
        self.version = version
        self.content_hash = content_hash
        self.party_type = party_type
        self.lifecycle = lifecycle
        self.organisation_golden_id = organisation_golden_id
        self._decode = decode
        if decode is not None:
            attributes, lineage, consents = _Stored(attributes), _Stored(lineage), _Stored(consents)
            sources = _Stored(sources)
        self._attributes, self._lineage, self._consents = attributes, lineage, consents
        self._sources = [] if sources is _NO_SOURCES else sources

    def _decoded(self, slot: str) -> Any:  # noqa: ANN401
        value = getattr(self, slot)
        if type(value) is _Stored and self._decode is not None:
            value = self._decode(value.value)
            setattr(self, slot, value)
        return value

    @property
    def attributes(self) -> dict[str, Any]:
        return self._decoded("_attributes")  # type: ignore[no-any-return]

    @property
    def lineage(self) -> dict[str, Any]:
        return self._decoded("_lineage")  # type: ignore[no-any-return]

    @property
    def consents(self) -> dict[str, Any]:
        return self._decoded("_consents")  # type: ignore[no-any-return]

    @property
    def sources(self) -> list[str]:
        return self._decoded("_sources")  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Previous({self.version!r}, {self.content_hash!r}, {self.party_type!r}, ...)"


@dataclass
class Event:
    golden_id: str
    event_type: str
    changed: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)


@dataclass
class Plan:
    #: golden id -> new content (its JSON columns and digest, encoded once), for every golden
    #: record created or changed
    states: dict[str, EncodedState] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    assignment: Assignment = field(default_factory=Assignment)
    #: record id -> golden id, for every clustered record
    xref: dict[str, str] = field(default_factory=dict)
    unchanged: int = 0
    #: overrides this plan applies for the first time or retires
    override_outcomes: list[OverrideOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = Counter(e.event_type for e in self.events)
        return {t: int(out.get(t, 0)) for t in (CREATED, UPDATED, MERGED, SPLIT, RETIRED)} | {
            "unchanged": self.unchanged
        }


def changed_fields(old: Previous, new: GoldenState, old_members: Iterable[str]) -> list[str]:
    """Names of what changed: attributes, ``consents.<purpose>``, lifecycle, organisation link,
    members; ``lineage`` when only the explanation did."""
    out = sorted(
        k
        for k in set(old.attributes) | set(new.attributes)
        if old.attributes.get(k) != new.attributes.get(k)
    )
    out += sorted(
        f"consents.{p}"
        for p in set(old.consents) | set(new.consents)
        if (old.consents.get(p) or {}).get("granted") != (new.consents.get(p) or {}).get("granted")
    )
    if old.lifecycle != new.lifecycle:
        out.append("lifecycle")
    if old.organisation_golden_id != new.organisation_golden_id:
        out.append("organisation_golden_id")
    if sorted(old_members) != new.members:
        out.append("members")
    return out or ["lineage"]


def plan_consolidation(
    membership: Mapping[str, tuple[str, str, str | None]],
    records: Iterable[tuple[str, list[Record]]],
    previous_xref: Mapping[str, str],
    previous: Mapping[str, Previous],
    next_seq: int,
    survivor: Survivor,
    outside_golden_of: Mapping[str, str] | None = None,
    overrides: Mapping[str, Sequence[Override]] | None = None,
) -> Plan:
    """Plan a consolidation.

    ``membership`` maps every clustered record id to (cluster id, party type, organisation
    cluster id); ``records`` yields (cluster id, its records) for the clusters to survive;
    ``previous_xref`` maps record ids to their golden id in the hub, ``previous`` describes the
    active golden records, and ``next_seq`` is the golden-id counter. When only part of the hub
    is consolidated, ``outside_golden_of`` gives the golden id of organisation clusters outside
    it that contacts inside it link to. ``overrides`` maps golden ids to their active attribute
    overrides, applied after survivorship; those of a golden record this plan ends (merged,
    retired) or does not reach are retired.
    """
    clusters: dict[str, list[str]] = {}
    for rid, (cluster, _party, _org) in membership.items():
        clusters.setdefault(cluster, []).append(rid)
    active_xref = {r: g for r, g in previous_xref.items() if g in previous}
    outside = dict(outside_golden_of or {})
    assignment = assign_golden_ids(clusters, active_xref, sorted(previous, key=seq_of), next_seq)
    plan = Plan(assignment=assignment)
    golden_of = assignment.golden_of_cluster
    plan.xref = {rid: golden_of[c] for rid, (c, _p, _o) in membership.items()}
    old_members: dict[str, list[str]] = {}
    for rid, g in active_xref.items():
        old_members.setdefault(g, []).append(rid)
    merged_into_target: dict[str, list[str]] = {}
    for loser, target in assignment.merged.items():
        merged_into_target.setdefault(target, []).append(loser)
    split_off: dict[str, list[str]] = {}
    for new_id, origins in assignment.minted.items():
        for g in origins:
            split_off.setdefault(g, []).append(new_id)

    for cluster, members in records:
        gid = golden_of[cluster]
        survived = survivor.survive(members)
        pins = (overrides or {}).get(gid, ())
        if pins:
            applied_before = {o.override_id for o in pins if o.applied}
            plan.override_outcomes += [
                out
                for out in apply_overrides(survived, pins, members)
                if out.outcome != APPLIED or out.override_id not in applied_before
            ]
        party = membership[members[0]["source_record_id"]][1]
        org_votes = Counter(
            golden_of.get(o) or outside[o]
            for m in members
            if (o := membership[m["source_record_id"]][2]) is not None
            and (o in golden_of or o in outside)
        )
        org = min(org_votes, key=lambda g: (-org_votes[g], g)) if org_votes else None
        state = GoldenState(
            party_type=party,
            attributes=survived.attributes,
            keys=survived.keys,
            lineage=survived.lineage,
            consents=survived.consents,
            lifecycle=survived.lifecycle,
            organisation_golden_id=org,
            sources=survived.sources,
            members=sorted(m["source_record_id"] for m in members),
        )
        old = previous.get(gid)
        texts, digest = state.encoded()
        if old is None:
            origins = assignment.minted.get(gid, [])
            event = Event(gid, SPLIT if origins else CREATED, sorted(survived.attributes), origins)
        elif digest != old.content_hash:
            related = sorted(merged_into_target.get(gid, []) + split_off.get(gid, []))
            event = Event(
                gid, UPDATED, changed_fields(old, state, old_members.get(gid, [])), related
            )
        else:
            plan.unchanged += 1
            continue
        plan.states[gid] = EncodedState(state, texts, digest)
        plan.events.append(event)
    for loser, target in sorted(assignment.merged.items()):
        plan.events.append(Event(loser, MERGED, ["status"], [target]))
    for gid in sorted(assignment.retired):
        plan.events.append(Event(gid, RETIRED, ["status"], []))
    surviving = set(golden_of.values())
    for gid in sorted(set(overrides or {}) - surviving):
        why = (
            f"the golden record was merged into {assignment.merged[gid]}"
            if gid in assignment.merged
            else "the golden record is no longer active"
        )
        plan.override_outcomes += [
            OverrideOutcome(o.override_id, gid, RETIRED_OVERRIDE, why)
            for o in (overrides or {})[gid]
        ]
    plan.events.sort(key=lambda e: seq_of(e.golden_id))
    return plan
