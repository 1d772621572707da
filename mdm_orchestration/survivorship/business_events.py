"""Business events of a golden-record change (``events.yaml``): pure decisions, no I/O.

Derived for ``updated`` changes, where an old and a new version exist to compare: a created
record is announced as ``created`` with its values and consents, and a merge, split or
retirement by its own change event. Household events compare the person's household before
the change with the one its new address and family name lead to (:func:`household_move`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mdm_orchestration.config.events import BusinessEventRule, EventsConfig
from mdm_orchestration.survivorship.households import _tokens


@dataclass(frozen=True)
class HouseholdBefore:
    """A household as it stood before the change: its id, address and number of members."""

    household_id: str
    address_key: str
    family_key: str
    member_count: int


@dataclass(frozen=True)
class HouseholdMove:
    joined: bool = False
    left: bool = False


def household_move(
    before: HouseholdBefore | None,
    address_key: str | None,
    family_key: str | None,
    at_new_address: Iterable[HouseholdBefore],
) -> HouseholdMove:
    """Whether a person's change put it with others in a household (``joined``) or took it out
    of a household of several (``left``). ``before``: its household before the change;
    ``address_key``/``family_key``: its keys after it; ``at_new_address``: the households at
    that address before the change. The household it now belongs to is the first there with
    a compatible family name (one shared part, as :func:`build_households` groups them)."""
    now = None
    if address_key and family_key:
        mine = _tokens(family_key)
        now = next(
            (h for h in at_new_address if _tokens(h.family_key) & mine),
            None,
        )
    same = before is not None and now is not None and now.household_id == before.household_id
    if same:
        return HouseholdMove()
    return HouseholdMove(
        joined=now is not None and now.member_count >= 1,
        left=before is not None and before.member_count > 1,
    )


def _granted(consents: Mapping[str, Any], purpose: str) -> bool:
    return (consents.get(purpose) or {}).get("granted") is True


def _consent_moves(rule: BusinessEventRule, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    purposes: Iterable[str] = rule.purposes or (set(old) | set(new))
    for p in purposes:
        before, after = _granted(old, p), _granted(new, p)
        if rule.consent == "given" and not before and after:
            return True
        if rule.consent == "withdrawn" and before and not after:
            return True
    return False


def business_events(
    config: EventsConfig,
    changed: Iterable[str],
    old_lifecycle: str | None,
    new_lifecycle: str | None,
    old_consents: Mapping[str, Any],
    new_consents: Mapping[str, Any],
    household: HouseholdMove | None = None,
) -> list[str]:
    """The names of the business events one ``updated`` change carries, in ``events.yaml``
    order (every condition a rule names must hold)."""
    move = household or HouseholdMove()
    what = set(changed)
    out: list[str] = []
    for name, rule in config.events.items():
        if rule.changed_any and not what & set(rule.changed_any):
            continue
        if rule.lifecycle_to and new_lifecycle not in rule.lifecycle_to:
            continue
        if rule.lifecycle_from and old_lifecycle not in rule.lifecycle_from:
            continue
        if (rule.lifecycle_to or rule.lifecycle_from) and old_lifecycle == new_lifecycle:
            continue
        if rule.consent and not _consent_moves(rule, old_consents, new_consents):
            continue
        if rule.household and not (move.joined if rule.household == "joined" else move.left):
            continue
        out.append(name)
    return out


__all__ = ["HouseholdBefore", "HouseholdMove", "business_events", "household_move"]
