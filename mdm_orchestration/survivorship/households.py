"""Households: persons at the same normalised address with a compatible family name.

Compatible means the same family name, or sharing one part of a double-barrelled one (``Garcia``
and ``Garcia Lopez``, ``Smith`` and ``Smith-Jones``), so a married name joined to the family's
still counts. Lodgers and flatmates with other names at one address form their own households.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mdm_orchestration.hub.tables import component_labels

_SPLIT = re.compile(r"[\s\-]+")


def _tokens(family_key: str) -> set[str]:
    return {t for t in _SPLIT.split(family_key) if len(t) > 1} or {family_key}


@dataclass(frozen=True)
class Household:
    household_id: str
    address_key: str
    family_key: str  # the family-name part its members share (the smallest, for a stable id)
    members: tuple[str, ...]  # golden ids, sorted


def household_id_for(address_key: str, family_token: str) -> str:
    digest = hashlib.sha256(f"{address_key}\x1f{family_token}".encode()).hexdigest()
    return f"H{digest[:15]}"


def build_households(persons: Iterable[tuple[str, str | None, str | None]]) -> list[Household]:
    """``persons`` are (golden id, address key, family key). Persons lacking either key have no
    household. A household's id depends only on its address and family name, so it is stable
    while members come and go."""
    by_address: dict[str, list[tuple[str, set[str]]]] = defaultdict(list)
    for golden_id, address_key, family_key in persons:
        if address_key and family_key:
            by_address[address_key].append((golden_id, _tokens(family_key)))
    # One graph over every address: a person is joined to the first person at the same
    # address sharing a family-name part; each connected component is a household.
    people = [(a, g, tokens) for a in sorted(by_address) for g, tokens in by_address[a]]
    left: list[int] = []
    right: list[int] = []
    first_with: dict[tuple[str, str], int] = {}
    for i, (address_key, _g, tokens) in enumerate(people):
        for t in tokens:
            j = first_with.setdefault((address_key, t), i)
            if j != i:
                left.append(i)
                right.append(j)
    # Components in order of their first person: addresses sorted, then as listed.
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(component_labels(len(people), left, right).tolist()):
        groups[label].append(i)
    out = []
    for idx in groups.values():
        address_key = people[idx[0]][0]
        token = min(t for i in idx for t in people[i][2])
        members = tuple(sorted(people[i][1] for i in idx))
        out.append(Household(household_id_for(address_key, token), address_key, token, members))
    return out
