"""From clusters to golden records and their change events: the plan of one consolidation.

Pure: the hub side (``reading``, ``writing``) reads the inputs and writes the plan in one
transaction. A golden record's content is everything a consumer sees (attributes, consents, lifecycle,
organisation link, members) plus its lineage; a change of content is a new version and exactly
one change event. Content that did not change produces nothing, so re-running is a no-op.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdm_orchestration.survivorship.ids import Assignment, assign_golden_ids, seq_of
from mdm_orchestration.survivorship.overrides import (
    APPLIED,
    Override,
    OverrideOutcome,
    apply_overrides,
)
from mdm_orchestration.survivorship.overrides import RETIRED as RETIRED_OVERRIDE
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

    def digest(self) -> str:
        # vars(), not dataclasses.asdict(): asdict deep-copies every nested value (slow).
        text = json.dumps(vars(self), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Previous:
    """What the hub holds for an active golden record."""

    version: int
    content_hash: str
    party_type: str
    attributes: dict[str, Any]
    lineage: dict[str, Any]
    consents: dict[str, Any]
    lifecycle: str | None
    organisation_golden_id: str | None
    sources: list[str] = field(default_factory=list)


@dataclass
class Event:
    golden_id: str
    event_type: str
    changed: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)


@dataclass
class Plan:
    #: golden id -> new content, for every golden record created or changed
    states: dict[str, GoldenState] = field(default_factory=dict)
    #: golden id -> GoldenState.digest() of its new content
    digests: dict[str, str] = field(default_factory=dict)
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
        digest = state.digest()
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
        plan.states[gid] = state
        plan.digests[gid] = digest
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
