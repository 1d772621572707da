"""Business events of a golden-record change (``events.yaml``): pure decisions, no I/O.

Derived for ``updated`` changes, where an old and a new version exist to compare: a created
record is announced as ``created`` with its values and consents, and a merge, split or
retirement by its own change event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mdm_orchestration.config.events import BusinessEventRule, EventsConfig


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
) -> list[str]:
    """The names of the business events one ``updated`` change carries, in ``events.yaml``
    order (every condition a rule names must hold)."""
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
        out.append(name)
    return out


__all__ = ["business_events"]
