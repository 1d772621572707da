"""The hub's term frequencies (``term_frequencies``): read for the values a run scores, replaced
by a full rebuild, changed by each incremental run and erasure. See ``frequencies.py``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Connection, bindparam, delete, select, update

from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.tables import INDEX, ORGANISATION, PERSON, TERM_FREQUENCIES, in_chunks
from mdm_orchestration.matching.frequencies import (
    INDEX_PREFIX,
    Counts,
    Frequencies,
    field_of,
    record_terms,
)

TF = TERM_FREQUENCIES


def party_of(field: str) -> str:
    return ORGANISATION if field == "token" else PERSON


def index_delta(
    new: Iterable[tuple[str, str, str]], old: Iterable[tuple[str, str, str]]
) -> Counter:
    """Count changes from blocking-index entries ``(record_id, key_name, key_hash)``: the
    ``tf_*`` entries the changed records have now (``new``) and had (``old``)."""
    delta: Counter = Counter()
    for sign, entries in ((1, new), (-1, old)):
        for _rid, name, key in entries:
            if name.startswith(INDEX_PREFIX):
                field = field_of(name)
                delta[(party_of(field), field, key)] += sign
    return Counter({k: v for k, v in delta.items() if v})


def stored_counts(conn: Connection, keys: Iterable[tuple[str, str, str]]) -> dict:
    """The stored counts of ``keys`` (party, field, value key); absent keys are left out.

    Looked up by the whole primary key, a (party, field) at a time: a lookup by the value key
    alone cannot use the primary key (party and field come first), so it read the whole table
    for every request of the service and every incremental run, a cost that grew with the hub."""
    by_field: dict[tuple[str, str], set[str]] = {}
    for party, field, key in keys:
        by_field.setdefault((party, field), set()).add(key)
    out: dict[tuple[str, str, str], int] = {}
    for (party, field), values in sorted(by_field.items()):
        query = select(TF.c.value_key, TF.c.count).where(
            TF.c.party_type == party, TF.c.field == field
        )
        for cond in in_chunks(TF.c.value_key, sorted(values)):
            for key, count in conn.execute(query.where(cond)):
                out[(party, field, key)] = int(count)
    return out


def hub_frequencies(conn: Connection, frame: pd.DataFrame, delta: Counts) -> Frequencies:
    """Hub-wide counts of the values ``frame``'s records hold, with ``delta`` (this run's
    changes, not yet written) applied."""
    keys = term_keys(record_terms(frame)) | set(delta)
    return with_delta(stored_counts(conn, keys), keys, delta)


def term_keys(terms: Iterable[tuple[str, str, str, str]]) -> set[tuple[str, str, str]]:
    """The count keys ``(party, field, value key)`` of :func:`record_terms` entries."""
    return {(party, field_of(name), key) for _rid, party, name, key in terms}


def with_delta(stored: Counts, keys: Iterable[tuple[str, str, str]], delta: Counts) -> Frequencies:
    """The counts of ``keys`` among ``stored`` ones (:func:`stored_counts` of at least those
    keys), with ``delta`` applied."""
    counts = Counter({k: stored[k] for k in keys if k in stored})
    counts.update(dict(delta))
    return Frequencies(counts)


def records_holding(conn: Connection, keys: Iterable[tuple[str, str, str]]) -> set[str]:
    """Records whose blocking-index ``tf_*`` entries hold one of ``keys``' values."""
    out: set[str] = set()
    hashes = sorted({k[2] for k in keys})
    for cond in in_chunks(INDEX.c.key_hash, hashes):
        for rid, name in conn.execute(select(INDEX.c.record_id, INDEX.c.key_name).where(cond)):
            if name.startswith(INDEX_PREFIX):
                out.add(rid)
    return out


def apply_delta(conn: Connection, delta: Counts) -> None:
    """Add ``delta`` to the stored counts (rows reaching 0 are removed)."""
    if not delta:
        return
    stored = stored_counts(conn, delta)
    changed = [
        {"p": p, "f": f, "k": k, "c": stored[(p, f, k)] + d}
        for (p, f, k), d in delta.items()
        if (p, f, k) in stored and stored[(p, f, k)] + d > 0
    ]
    gone = [
        {"p": p, "f": f, "k": k}
        for (p, f, k), d in delta.items()
        if (p, f, k) in stored and stored[(p, f, k)] + d <= 0
    ]
    new = [(p, f, k, d) for (p, f, k), d in delta.items() if (p, f, k) not in stored and d > 0]
    where = (
        (TF.c.party_type == bindparam("p"))
        & (TF.c.field == bindparam("f"))
        & (TF.c.value_key == bindparam("k"))
    )
    if changed:
        conn.execute(update(TF).where(where).values(count=bindparam("c")), changed)
    if gone:
        conn.execute(delete(TF).where(where), gone)
    bulk_insert(conn, "term_frequencies", ("party_type", "field", "value_key", "count"), new)


def replace_counts(conn: Connection, counts: Counts) -> None:
    """The full rebuild's counts, replacing every stored one."""
    conn.execute(delete(TF))
    rows = sorted((p, f, k, c) for (p, f, k), c in counts.items() if c > 0)
    bulk_insert(conn, "term_frequencies", ("party_type", "field", "value_key", "count"), rows)


def forget_records(conn: Connection, record_ids: list[str]) -> None:
    """Take records about to be deleted (erasure) out of the counts, from their ``tf_*``
    blocking-index entries."""
    entries = []
    for cond in in_chunks(INDEX.c.record_id, record_ids):
        entries += conn.execute(
            select(INDEX.c.record_id, INDEX.c.key_name, INDEX.c.key_hash).where(cond)
        ).all()
    apply_delta(conn, index_delta([], [tuple(e) for e in entries]))


def all_counts(conn: Connection) -> dict[tuple[str, str, str], int]:
    """Every stored count (tests and checks compare them with a recount)."""
    query = select(TF.c.party_type, TF.c.field, TF.c.value_key, TF.c.count)
    return {(p, f, k): int(c) for p, f, k, c in conn.execute(query)}
