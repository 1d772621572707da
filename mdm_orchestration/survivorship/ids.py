"""Stable golden ids across re-runs, retrains, merges and splits.

The rules (a golden id survives re-runs and retrains and is never reused):
- a golden id follows the new cluster that holds most of its old members (a tie goes to the
  cluster holding the smallest of those record ids);
- when several golden ids land on one cluster, the oldest survives and the others are recorded
  as merged into it;
- a cluster that no golden id follows gets a new id: ``created`` if none of its records had one,
  ``split`` from the golden records its records came from otherwise;
- a golden id none of whose records is left is retired;
- ids are minted from a counter that only grows, so an id is never reused.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field


def golden_id_for(seq: int) -> str:
    return f"G{seq:010d}"


def seq_of(golden_id: str) -> int:
    return int(golden_id[1:])


@dataclass
class Assignment:
    #: cluster id -> the golden id it becomes
    golden_of_cluster: dict[str, str] = field(default_factory=dict)
    #: new golden id -> the earlier golden ids its records came from (empty: created)
    minted: dict[str, list[str]] = field(default_factory=dict)
    #: golden id -> the golden id it was merged into
    merged: dict[str, str] = field(default_factory=dict)
    #: golden ids with no record left
    retired: list[str] = field(default_factory=list)
    next_seq: int = 1


def assign_golden_ids(
    clusters: Mapping[str, list[str]],
    previous: Mapping[str, str],
    active: list[str],
    next_seq: int,
) -> Assignment:
    """Golden ids for ``clusters`` (cluster id -> its record ids).

    ``previous`` maps record ids to the golden id they had; ``active`` lists the golden ids that
    are active now (ids sort by age, oldest first); ``next_seq`` is the next unused counter value.
    """
    out = Assignment()
    parts: dict[str, Counter[str]] = defaultdict(Counter)
    smallest: dict[tuple[str, str], str] = {}
    for cluster, records in clusters.items():
        for rid in records:
            g = previous.get(rid)
            if g is None:
                continue
            parts[g][cluster] += 1
            key = (g, cluster)
            if key not in smallest or rid < smallest[key]:
                smallest[key] = rid
    claims: dict[str, list[str]] = defaultdict(list)
    for g in sorted(set(active) | set(parts)):
        counts = parts.get(g)
        if not counts:
            out.retired.append(g)
            continue
        home = min(counts, key=lambda c: (-counts[c], smallest[(g, c)]))
        claims[home].append(g)
    for cluster, goldens in claims.items():
        survivor = min(goldens, key=seq_of)
        out.golden_of_cluster[cluster] = survivor
        for g in goldens:
            if g != survivor:
                out.merged[g] = survivor
    unclaimed = [c for c in clusters if c not in out.golden_of_cluster]
    unclaimed.sort(key=lambda c: min(clusters[c]))
    for cluster in unclaimed:
        gid = golden_id_for(next_seq)
        next_seq += 1
        out.golden_of_cluster[cluster] = gid
        out.minted[gid] = sorted({previous[r] for r in clusters[cluster] if r in previous})
    out.next_seq = next_seq
    return out
