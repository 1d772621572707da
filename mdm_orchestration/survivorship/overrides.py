"""Attribute overrides: a steward pins a value, or a source record, for one attribute group of a
golden record. Pure: applied last, after survivorship has chosen, to a cluster's
:class:`~mdm_orchestration.survivorship.rules.Survived` values; the hub side is ``pinning``.

An override stands on what it was made over (its ``baseline``): for a pinned record, that
record's values of the group; for a pinned value, the values survivorship chose. When that
changes (the record was updated, or left the golden record; a new or changed record makes
survivorship choose otherwise), the override is not applied but retired, and a steward is
asked to look again: the sources said something new, and a pin must not hide it for ever.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdm_orchestration.cleansing.keys import group_keys
from mdm_orchestration.survivorship.rules import (
    KEY_FIELDS,
    PUBLIC_FIELDS,
    Record,
    Survived,
    _json_value,
    _missing,
)

VALUE, RECORD = "value", "record"
OVERRIDE_KINDS = (VALUE, RECORD)
#: The lineage rule of a pinned attribute.
OVERRIDE_RULE = "override"
#: The lineage source of a pinned value (a pinned record names its own source).
STEWARD_SOURCE = "steward"
#: What a consolidation does with an active override.
APPLIED, RETIRED = "applied", "retired"
#: The attribute groups a steward may pin (survivorship's groups) and their shown fields.
ATTRIBUTE_GROUPS: Mapping[str, tuple[str, ...]] = PUBLIC_FIELDS
GROUPS = tuple(PUBLIC_FIELDS)


@dataclass(frozen=True)
class Override:
    """An active override as survivorship applies it."""

    override_id: int
    golden_id: str
    group: str
    kind: str  # value | record
    record_id: str | None = None
    pinned: Mapping[str, Any] = field(default_factory=dict)
    baseline: Mapping[str, Any] = field(default_factory=dict)
    #: whether a consolidation already wrote the golden record with it
    applied: bool = False


@dataclass(frozen=True)
class OverrideOutcome:
    """What a consolidation did with an override: ``applied`` or ``retired`` (and why)."""

    override_id: int
    golden_id: str
    outcome: str
    reason: str | None = None


def group_values(values: Mapping[str, Any], group: str) -> dict[str, Any]:
    """The group's shown fields that hold a value, as the hub stores them (JSON)."""
    out = {
        f: _json_value(values.get(f)) for f in PUBLIC_FIELDS[group] if not _missing(values.get(f))
    }
    normalised: dict[str, Any] = json.loads(json.dumps(out, default=str, sort_keys=True))
    return normalised


def pinned_values(group: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """A steward's values for ``group``: its shown fields only, stripped, empty ones dropped.
    Raises ``ValueError`` for a field outside the group or when nothing is left."""
    if group not in PUBLIC_FIELDS:
        raise ValueError(f"no attribute group {group!r}: one of {', '.join(GROUPS)}")
    unknown = sorted(set(given) - set(PUBLIC_FIELDS[group]))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} not in the {group} group ({', '.join(PUBLIC_FIELDS[group])})"
        )
    out = {}
    for f in PUBLIC_FIELDS[group]:
        value = given.get(f)
        if isinstance(value, str):
            value = " ".join(value.split())
        if not _missing(value):
            out[f] = value
    if not out:
        raise ValueError(f"give at least one value of the {group} group")
    return group_values(out, group)


def override_lineage(override: Override, record: Record | None) -> dict[str, str]:
    """The lineage of a pinned attribute: the pinned record, or the steward's override."""
    if record is not None:
        return {
            "record_id": str(record["source_record_id"]),
            "source": str(record["source"]),
            "source_key": str(record["source_key"]),
            "rule": OVERRIDE_RULE,
            "override_id": str(override.override_id),
        }
    return {
        "record_id": "",
        "source": STEWARD_SOURCE,
        "source_key": f"override-{override.override_id}",
        "rule": OVERRIDE_RULE,
        "override_id": str(override.override_id),
    }


def apply_overrides(
    survived: Survived, overrides: Iterable[Override], records: Sequence[Record]
) -> list[OverrideOutcome]:
    """Apply a golden record's active overrides to its survived values (in place), last of
    everything; one outcome per override. Each is checked against what survivorship chose
    before any override (two on one group: the newer wins)."""
    chosen = dict(survived.attributes)
    by_id = {r["source_record_id"]: r for r in records}
    outcomes = []
    for o in sorted(overrides, key=lambda o: o.override_id):
        record = None
        if o.kind == RECORD:
            record = by_id.get(o.record_id)
            if record is None:
                outcomes.append(_retired(o, "the pinned source record left this golden record"))
                continue
            now = group_values(record, o.group)
            if now != dict(o.baseline):
                outcomes.append(_retired(o, f"the pinned source record's {o.group} changed"))
                continue
            values = now
        else:
            if group_values(chosen, o.group) != dict(o.baseline):
                outcomes.append(
                    _retired(o, f"the {o.group} that survivorship chooses from the sources changed")
                )
                continue
            values = dict(o.pinned)
        lineage = override_lineage(o, record)
        for f in PUBLIC_FIELDS[o.group]:
            survived.attributes.pop(f, None)
            survived.lineage.pop(f, None)
        for f, v in values.items():
            survived.attributes[f] = v
            survived.lineage[f] = dict(lineage)
        # The group's internal keys follow the pinned values (householding and the household
        # events read them): the pinned record's own, or those cleansing derives from the
        # steward's values.
        country = str(survived.attributes.get("country") or chosen.get("country") or "US")
        keys = record if record is not None else group_keys(o.group, values, country)
        for f in KEY_FIELDS.get(o.group, ()):
            survived.keys.pop(f, None)
            if not _missing(keys.get(f)):
                survived.keys[f] = keys[f]
        outcomes.append(OverrideOutcome(o.override_id, o.golden_id, APPLIED))
    return outcomes


def _retired(o: Override, reason: str) -> OverrideOutcome:
    return OverrideOutcome(o.override_id, o.golden_id, RETIRED, reason)


__all__ = [
    "APPLIED",
    "ATTRIBUTE_GROUPS",
    "GROUPS",
    "OVERRIDE_KINDS",
    "OVERRIDE_RULE",
    "RECORD",
    "RETIRED",
    "STEWARD_SOURCE",
    "VALUE",
    "Override",
    "OverrideOutcome",
    "apply_overrides",
    "group_values",
    "override_lineage",
    "pinned_values",
]
