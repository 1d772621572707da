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

_SPLIT = re.compile(r"[\s\-]+")


def _tokens(family_key: str) -> set[str]:
    return {t for t in _SPLIT.split(family_key) if len(t) > 1} or {family_key}


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


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
    out = []
    for address_key in sorted(by_address):
        people = by_address[address_key]
        parent = list(range(len(people)))
        first_with: dict[str, int] = {}
        for i, (_g, tokens) in enumerate(people):
            for t in tokens:
                if t in first_with:
                    parent[_find(parent, i)] = _find(parent, first_with[t])
                else:
                    first_with[t] = i
        groups: dict[int, list[int]] = defaultdict(list)
        for i in range(len(people)):
            groups[_find(parent, i)].append(i)
        for idx in groups.values():
            token = min(t for i in idx for t in people[i][1])
            members = tuple(sorted(people[i][0] for i in idx))
            out.append(Household(household_id_for(address_key, token), address_key, token, members))
    return out
