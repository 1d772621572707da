"""What the incremental path reads around the records that changed: what changed, their blocks
in the persisted index, the kept pairs and clusters that link them to the rest of the hub."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import NamedTuple

import pandas as pd
from sqlalchemy import Connection, func, select

from mdm_orchestration.hub.tables import (
    CLEANSED,
    CLUSTERS,
    CURRENT_CLEANSED,
    EXTRACTS,
    INDEX,
    ORGANISATION,
    PAIRS,
    VERSIONS,
    chunks,
    in_chunks,
)
from mdm_orchestration.matching.blocking import key_hash
from mdm_orchestration.matching.writes import PAIR_COLUMNS, StoredCluster, versions_of


class KeptPair(NamedTuple):
    left_record_id: str
    right_record_id: str
    party_type: str
    score: float
    by_rule: bool


def changed_since(conn: Connection, since: datetime | None) -> tuple[list[str], list[str]]:
    """Records whose current cleansed version differs from the one clustered (new or changed),
    and clustered records with no current cleansed version any more (removed), among the
    records of extracts cleansed after ``since``."""
    extracts = select(EXTRACTS.c.id).where(EXTRACTS.c.cleansed_at.is_not(None))
    if since is not None:
        extracts = extracts.where(EXTRACTS.c.cleansed_at > since)
    touched = sorted(
        conn.execute(
            select(VERSIONS.c.source_record_id)
            .distinct()
            .where(VERSIONS.c.extract_id.in_(extracts))
        ).scalars()
    )
    current = versions_of(conn, touched)
    clustered: dict[str, tuple[int, int]] = {}
    for chunk in chunks(touched):
        rows = conn.execute(
            select(CLUSTERS.c.record_id, CLUSTERS.c.extract_id, CLUSTERS.c.row_number).where(
                CLUSTERS.c.record_id.in_(chunk)
            )
        )
        clustered.update({r: (e, n) for r, e, n in rows})
    changed = [r for r in touched if r in current and clustered.get(r) != current[r]]
    removed = [r for r in touched if r in clustered and r not in current]
    return changed, removed


def neighbours(
    conn: Connection, keys: set[tuple[str, str]], exclude: set[str], max_block: int, extra: Counter
) -> set[str]:
    """Records in the index sharing one of ``keys`` (giant blocks left out: a block's hub size
    counts ``extra``, the keys of records about to be indexed, instead of ``exclude``'s)."""
    return neighbours_in(
        block_members(conn, {h for _n, h in keys}), keys, exclude, max_block, extra
    )


def block_members(conn: Connection, hashes: set[str]) -> dict[str, set[str]]:
    """The records in the index under each key hash of ``hashes`` (absent: none)."""
    members: dict[str, set[str]] = {}
    for cond in in_chunks(INDEX.c.key_hash, sorted(hashes)):
        for h, rid in conn.execute(select(INDEX.c.key_hash, INDEX.c.record_id).where(cond)):
            members.setdefault(h, set()).add(rid)
    return members


def neighbours_in(
    members: dict[str, set[str]],
    keys: set[tuple[str, str]],
    exclude: set[str],
    max_block: int,
    extra: Counter,
) -> set[str]:
    """:func:`neighbours` from the :func:`block_members` of (at least) ``keys``' hashes."""
    found: set[str] = set()
    for name, h in keys:
        m = members.get(h, set()) - exclude
        if len(m) + extra[(name, h)] <= max_block:
            found |= m
    return found


def block_sizes(
    conn: Connection, keys: set[tuple[str, str]], exclude: set[str], extra: Counter
) -> dict[tuple[str, str], int]:
    """Hub size of each block in ``keys``: index rows, minus ``exclude``'s, plus ``extra``."""
    counts: Counter = Counter()
    for cond in in_chunks(INDEX.c.key_hash, sorted({h for _n, h in keys})):
        counts.update(
            dict(
                conn.execute(
                    select(INDEX.c.key_hash, func.count()).where(cond).group_by(INDEX.c.key_hash)
                ).all()
            )
        )
    for cond in in_chunks(INDEX.c.record_id, sorted(exclude)):
        for (h,) in conn.execute(select(INDEX.c.key_hash).where(cond)):
            counts[h] -= 1
    return {(n, h): counts[h] + extra[(n, h)] for n, h in keys}


def clusters_members(conn: Connection, record_ids: set[str]) -> set[str]:
    """Every member of the clusters of ``record_ids``."""
    ids = sorted(record_ids)
    clusters: set[str] = set()
    for chunk in chunks(ids):
        clusters.update(
            conn.execute(
                select(CLUSTERS.c.cluster_id).where(CLUSTERS.c.record_id.in_(chunk))
            ).scalars()
        )
    out = set(record_ids)
    cl = sorted(clusters)
    for chunk in chunks(cl):
        out.update(
            conn.execute(
                select(CLUSTERS.c.record_id).where(CLUSTERS.c.cluster_id.in_(chunk))
            ).scalars()
        )
        # Contacts linked to these organisation clusters are re-linked with them.
        out.update(
            conn.execute(
                select(CLUSTERS.c.record_id).where(CLUSTERS.c.organisation_cluster_id.in_(chunk))
            ).scalars()
        )
    return out


def known_organisations(conn: Connection, frame: pd.DataFrame, exclude: set[str]) -> pd.DataFrame:
    """Organisations outside ``exclude`` that the contacts in ``frame`` may link to: the ones
    their sources name, and the ones whose name is a contact's employer (found through the
    blocking index's ``company`` keys, not by reading every organisation)."""
    wanted = {o for o in frame["organisation_record_id"].tolist() if isinstance(o, str)}
    hashes = sorted(
        {key_hash("company", e) for e in frame["employer"].tolist() if isinstance(e, str) and e}
    )
    for cond in in_chunks(INDEX.c.key_hash, hashes):
        wanted.update(conn.execute(select(INDEX.c.record_id).where(cond)).scalars())
    rows = []
    for chunk in chunks(sorted(wanted - exclude)):
        rows += conn.execute(
            select(CLEANSED.c.source_record_id, CLEANSED.c.company_key, CLUSTERS.c.cluster_id)
            .select_from(
                CURRENT_CLEANSED.join(CLUSTERS, CLUSTERS.c.record_id == CLEANSED.c.source_record_id)
            )
            .where(CLEANSED.c.party_type == ORGANISATION, CLEANSED.c.source_record_id.in_(chunk))
        ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["record_id", "company", "cluster_id"], dtype=object
    )


def stored_links(
    conn: Connection, ids: set[str], skip: set[str], thresholds: dict[str, float]
) -> set[str]:
    """Records linked to ``ids`` by a kept pair at or above its party's threshold (pairs
    touching ``skip``, whose scores are stale, left out)."""
    out: set[str] = set()
    floor = min(thresholds.values())
    for side, other in (
        (PAIRS.c.left_record_id, PAIRS.c.right_record_id),
        (PAIRS.c.right_record_id, PAIRS.c.left_record_id),
    ):
        query = select(other, PAIRS.c.party_type, PAIRS.c.score)
        for cond in in_chunks(side, sorted(ids)):
            for b, party, score in conn.execute(query.where(cond, PAIRS.c.score >= floor)):
                if score >= thresholds[party] and b not in skip:
                    out.add(b)
    return out - skip


def stored_pairs(conn: Connection, region: set[str], skip: set[str]) -> list[KeptPair]:
    """Kept pairs with both records in ``region`` and neither in ``skip``."""
    out = []
    query = select(*[PAIRS.c[c] for c in PAIR_COLUMNS])
    for cond in in_chunks(PAIRS.c.left_record_id, sorted(region)):
        for a, b, party, score, rule in conn.execute(query.where(cond)):
            if b in region and a not in skip and b not in skip:
                out.append(KeptPair(a, b, party, float(score), bool(rule)))
    return out


def stored_clusters(conn: Connection, record_ids: set[str]) -> dict[str, StoredCluster]:
    """The cluster rows of ``record_ids`` as stored."""
    out = {}
    query = select(
        CLUSTERS.c.record_id,
        CLUSTERS.c.party_type,
        CLUSTERS.c.cluster_id,
        CLUSTERS.c.confidence,
        CLUSTERS.c.organisation_cluster_id,
        CLUSTERS.c.extract_id,
        CLUSTERS.c.row_number,
    )
    for cond in in_chunks(CLUSTERS.c.record_id, sorted(record_ids)):
        for rid, *stored in conn.execute(query.where(cond)):
            out[rid] = StoredCluster(*stored)
    return out


def stored_index(conn: Connection, record_ids: set[str]) -> set[tuple[str, str, str]]:
    """The stored blocking keys ``(record_id, key_name, key_hash)`` of ``record_ids``."""
    out: set[tuple[str, str, str]] = set()
    query = select(INDEX.c.record_id, INDEX.c.key_name, INDEX.c.key_hash)
    for cond in in_chunks(INDEX.c.record_id, sorted(record_ids)):
        out.update((r, n, h) for r, n, h in conn.execute(query.where(cond)))
    return out
