"""What stewards say: labels (match / distinct / unsure), overrides (must-link / cannot-link),
the review queue, and the record references they use (``source:key``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    TypeDecorator,
    delete,
    func,
    insert,
    select,
    update,
)

from mdm_orchestration.config import MatchingConfig
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import (
    CLEANSED,
    CURRENT_CLEANSED,
    LABELS,
    OVERRIDE_REMOVALS,
    OVERRIDES,
    PERSON,
    REVIEW,
    SOURCES,
    VERSIONS,
    chunks,
    utcnow,
)
from mdm_orchestration.matching.explain import Explanation
from mdm_orchestration.matching.model import MatchModel
from mdm_orchestration.matching.records import CLEANSED_COLUMNS, match_frame

LABEL_VALUES = ("match", "distinct", "unsure")
OVERRIDE_KINDS = ("must_link", "cannot_link")


class StewardLabel(NamedTuple):
    party_type: str
    left_record_id: str
    right_record_id: str
    label: str


def ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


class UnknownRecord(LookupError):
    """A ``source:key`` that the hub does not hold."""


def resolve_record(conn: Connection, reference: str) -> str:
    """``source:key`` (or a 32-character record id) -> the source record id, checked."""
    if ":" in reference:
        source, key = reference.split(":", 1)
        rid = source_record_id(source, key)
    else:
        rid = reference
    found = conn.execute(select(SOURCES.c.id).where(SOURCES.c.id == rid)).first()
    if found is None:
        raise UnknownRecord(f"no source record {reference!r} in the hub")
    return rid


#: Rows fetched at a time when :func:`current_cleansed` reads every record.
_FETCH_ROWS = 20_000


def _shared_strings(values: np.ndarray) -> np.ndarray:
    """``values`` (strings and ``None``) with one object per distinct string: equal strings
    become the same object (``factorize`` hashes them in C; a missing value stays ``None``)."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    # The missing values' code (-1) picks the None appended last.
    return np.append(np.asarray(distinct, dtype=object), None)[codes]


def _text_column(name: str) -> bool:
    """Whether ``name`` holds text (``Text``, and SQLModel's ``AutoString``, a decorated
    ``String``)."""
    kind = CLEANSED.c[name].type
    return isinstance(kind.impl if isinstance(kind, TypeDecorator) else kind, String)


def _frame_of_all(conn: Connection, query: Select) -> pd.DataFrame:
    """Every row of ``query`` as a frame of ``CLEANSED_COLUMNS`` (object dtype), read a batch
    at a time into column arrays, never a list or an array of every row.

    The database hands back a new string object for every value, although most columns repeat
    a few values (sources, party types, countries, towns, given names, phonetic keys): each
    text column keeps one object per distinct string (at 85k records a fifth of the frame's
    memory). Each batch's repeats are dropped as it arrives, before the next is fetched, so
    the memory they took is reused by the next batch: kept until the end (as once), the
    strings that survive are scattered over memory the allocator cannot hand back (at 1M
    records RSS stayed some 1.2 GB above what the frame holds). The values are equal to the
    database's, so every consumer computes the same."""
    result = conn.execute(query)
    text = [_text_column(name) for name in CLEANSED_COLUMNS]
    pieces: list[list[np.ndarray]] = [[] for _ in CLEANSED_COLUMNS]
    for batch in iter(lambda: result.fetchmany(_FETCH_ROWS), []):
        # Rows as plain tuples first: numpy probes a Row for keys, at 6 us a value.
        rows = np.array([tuple(row) for row in batch], dtype=object)
        del batch
        for i, piece in enumerate(pieces):
            values = rows[:, i]
            piece.append(_shared_strings(values) if text[i] else values.copy())
        del rows
    if not pieces[0]:
        return pd.DataFrame([], columns=list(CLEANSED_COLUMNS), dtype=object)
    columns = {}
    for i, name in enumerate(CLEANSED_COLUMNS):
        values = np.concatenate(pieces[i]) if len(pieces[i]) > 1 else pieces[i][0]
        pieces[i] = []
        # Shared across batches too (a town's name is in every batch).
        columns[name] = _shared_strings(values) if text[i] else values
    return pd.DataFrame(columns, dtype=object)


def current_cleansed(conn: Connection, record_ids: list[str] | None = None) -> pd.DataFrame:
    """The cleansed form of each source record's current version."""
    query = select(*[CLEANSED.c[c] for c in CLEANSED_COLUMNS]).select_from(CURRENT_CLEANSED)
    if record_ids is None:
        return _frame_of_all(conn, query.order_by(CLEANSED.c.source_record_id))
    rows = []
    for chunk in chunks(sorted(set(record_ids))):
        rows += conn.execute(
            query.where(CLEANSED.c.source_record_id.in_(chunk)).order_by(
                CLEANSED.c.source_record_id
            )
        ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(CLEANSED_COLUMNS), dtype=object)


def version_hashes(conn: Connection, record_ids: list[str]) -> dict[str, str]:
    """Each record's current version's content hash (``raw_hash``): a reload of an unchanged
    row gives a new version with the same hash."""
    query = (
        select(SOURCES.c.id, VERSIONS.c.raw_hash)
        .select_from(SOURCES)
        .join(
            VERSIONS,
            (VERSIONS.c.extract_id == SOURCES.c.current_extract_id)
            & (VERSIONS.c.row_number == SOURCES.c.current_row_number),
        )
    )
    out: dict[str, str] = {}
    for chunk in chunks(sorted(set(record_ids))):
        out.update(dict(conn.execute(query.where(SOURCES.c.id.in_(chunk))).all()))
    return out


def records_digest(left: str, right: str, hashes: dict[str, str]) -> str:
    """What a steward's verdict on the pair was about: both records' current contents."""
    left, right = ordered(left, right)
    text = f"{left}:{hashes.get(left, '')}\x1f{right}:{hashes.get(right, '')}"
    return hashlib.sha256(text.encode()).hexdigest()


# --- labels -----------------------------------------------------------------------------------


def steward_labels(conn: Connection) -> list[StewardLabel]:
    """Every steward label, in a stable order."""
    rows = conn.execute(
        select(
            LABELS.c.party_type, LABELS.c.left_record_id, LABELS.c.right_record_id, LABELS.c.label
        ).order_by(LABELS.c.left_record_id, LABELS.c.right_record_id)
    ).all()
    return [StewardLabel(*r) for r in rows]


def record_label(engine: Engine, left: str, right: str, label: str, by: str) -> None:
    """Store a steward's verdict (the latest wins) and close the pair's review item."""
    if label not in LABEL_VALUES:
        raise ValueError(f"label must be one of {LABEL_VALUES}")
    left, right = ordered(left, right)
    with write_transaction(engine) as conn:
        party = (
            conn.execute(
                select(CLEANSED.c.party_type).where(CLEANSED.c.source_record_id == left).limit(1)
            ).scalar_one_or_none()
            or PERSON
        )
        conn.execute(
            delete(LABELS).where(LABELS.c.left_record_id == left, LABELS.c.right_record_id == right)
        )
        conn.execute(
            insert(LABELS).values(
                party_type=party,
                left_record_id=left,
                right_record_id=right,
                label=label,
                labelled_by=by,
                labelled_at=utcnow(),
            )
        )
        # The verdict is on the records as they are now: the item comes back only when one of
        # them changes after this.
        digest = records_digest(left, right, version_hashes(conn, [left, right]))
        conn.execute(
            update(REVIEW)
            .where(REVIEW.c.left_record_id == left, REVIEW.c.right_record_id == right)
            .values(status="done", records_digest=digest)
        )


# --- overrides --------------------------------------------------------------------------------


def record_override(
    engine: Engine, left: str, right: str, kind: str, by: str, reason: str | None = None
) -> None:
    """A must-link (merge) or cannot-link (split); it replaces an earlier one for the pair."""
    if kind not in OVERRIDE_KINDS:
        raise ValueError("kind must be must_link or cannot_link")
    if left == right:
        raise ValueError("a record cannot be linked to itself")
    left, right = ordered(left, right)
    with write_transaction(engine) as conn:
        conn.execute(
            delete(OVERRIDES).where(
                OVERRIDES.c.left_record_id == left, OVERRIDES.c.right_record_id == right
            )
        )
        conn.execute(
            insert(OVERRIDES).values(
                left_record_id=left,
                right_record_id=right,
                kind=kind,
                reason=reason,
                created_by=by,
                created_at=utcnow(),
            )
        )


def remove_override(
    engine: Engine, left: str, right: str, kind: str, by: str, reason: str | None = None
) -> bool:
    """Take back a must-link or cannot-link (an undone split or merge): the link is kept in
    ``match_override_removals`` (as it was, and who removed it, when, why), and the next
    matching run is a full rebuild. False when there was no such link."""
    return bool(remove_overrides(engine, [(left, right)], kind, by, reason))


def remove_overrides(
    engine: Engine,
    pairs: Iterable[tuple[str, str]],
    kind: str,
    by: str,
    reason: str | None = None,
) -> list[tuple[str, str]]:
    """:func:`remove_override` for several links in one transaction (an undone split takes
    back all of its cannot-links or none). Returns the pairs that were there to remove."""
    if kind not in OVERRIDE_KINDS:
        raise ValueError("kind must be must_link or cannot_link")
    removed = []
    with write_transaction(engine) as conn:
        now = utcnow()
        for a, b in pairs:
            left, right = ordered(a, b)
            pair = (
                OVERRIDES.c.left_record_id == left,
                OVERRIDES.c.right_record_id == right,
                OVERRIDES.c.kind == kind,
            )
            row = conn.execute(select(OVERRIDES).where(*pair)).first()
            if row is None:
                continue
            conn.execute(
                insert(OVERRIDE_REMOVALS).values(
                    left_record_id=left,
                    right_record_id=right,
                    kind=kind,
                    reason=row.reason,
                    created_by=row.created_by,
                    created_at=row.created_at,
                    removed_by=by,
                    removed_at=now,
                    removed_reason=reason,
                )
            )
            conn.execute(delete(OVERRIDES).where(*pair))
            removed.append((a, b))
    return removed


def overrides(conn: Connection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(must-links, cannot-links) as record id pairs."""
    rows = conn.execute(
        select(OVERRIDES.c.left_record_id, OVERRIDES.c.right_record_id, OVERRIDES.c.kind)
    ).all()
    must = [(a, b) for a, b, k in rows if k == "must_link"]
    cannot = [(a, b) for a, b, k in rows if k == "cannot_link"]
    return must, cannot


def judged_pairs(
    conn: Connection, must: list[tuple[str, str]], cannot: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Pairs a steward already decided (a label or an override): they do not come back for
    review."""
    labelled = {(lb.left_record_id, lb.right_record_id) for lb in steward_labels(conn)}
    return labelled | set(must) | set(cannot)


# --- review queue -----------------------------------------------------------------------------


def pending_review(conn: Connection, limit: int) -> list[Any]:
    """Pending items, the highest priority (uncertainty x records affected) first; items
    raised without a priority after them, the most uncertain first."""
    return conn.execute(
        select(REVIEW)
        .where(REVIEW.c.status == "pending")
        .order_by(
            REVIEW.c.priority.desc().nulls_last(), func.abs(REVIEW.c.score - 0.5), REVIEW.c.id
        )
        .limit(limit)
    ).all()


def review_queue_size(engine: Engine) -> int:
    """How many review items are pending."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(REVIEW).where(REVIEW.c.status == "pending")
            ).scalar_one()
        )


def explain_item(
    conn: Connection,
    left: str,
    right: str,
    models: dict[str, MatchModel],
    config: MatchingConfig | None = None,
) -> Explanation | None:
    """Why the engine scores a pair as it does, from the two records' current cleansed
    versions (recomputed, so it always describes what the steward sees) and the hub-wide value
    counts: the model's fields, the frequency adjustments, a rule, the caps. None when a record
    left the hub or the two are of different party types."""
    from mdm_orchestration.matching.engine import explain_records
    from mdm_orchestration.matching.frequency_store import hub_frequencies

    frame = match_frame(current_cleansed(conn, [left, right]))
    ids = frame["record_id"].tolist()
    if left not in ids or right not in ids:
        return None
    party = frame["party_type"].iloc[0]
    if frame["party_type"].nunique() != 1 or party not in models:
        return None
    freq = hub_frequencies(conn, frame, {})
    return explain_records(
        frame,
        party,
        models[party],
        config or MatchingConfig(),
        freq,
        ids.index(left),
        ids.index(right),
    )
