"""Matching against the hub: labels, overrides, models, clusters and the review queue.

Everything here reads and writes the hub through SQLAlchemy Core; the decisions are made by the
pure modules next to it. Clusters are rebuilt in one transaction (a crash leaves the previous
clustering in place); incremental matching is a later step.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from mdm_orchestration.config import HubConfig, MatchingConfig
from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.models import (
    BlockingKey,
    CleansedRecord,
    ConsolidationQueue,
    Extract,
    GoldenXref,
    MatchCluster,
    MatchModelRow,
    MatchOverride,
    MatchPair,
    MatchRun,
    ReviewItem,
    SourceRecord,
    SourceRecordVersion,
    TrainingLabel,
    source_record_id,
)
from mdm_orchestration.hub.store import (
    as_utc,
    chunks,
    in_chunks,
    reconsolidation_lock,
    write_transaction,
)
from mdm_orchestration.matching.blocking import (
    ORGANISATION,
    PERSON,
    candidate_pairs,
    index_entries,
    key_hash,
)
from mdm_orchestration.matching.engine import (
    MatchResult,
    PartyMatch,
    ScoredPairs,
    assemble,
    cluster_scored,
    match_records,
    score_pairs,
)
from mdm_orchestration.matching.labels import DEFAULT_LABELS, training_set, uses_defaults
from mdm_orchestration.matching.model import (
    FIELDS,
    MODEL_VERSION,
    MatchModel,
    load_model,
    settings_digest,
    train_model,
)
from mdm_orchestration.matching.records import CLEANSED_COLUMNS, match_frame

CLEANSED = CleansedRecord.__table__
SOURCES = SourceRecord.__table__
LABELS = TrainingLabel.__table__
OVERRIDES = MatchOverride.__table__
MODELS = MatchModelRow.__table__
CLUSTERS = MatchCluster.__table__
REVIEW = ReviewItem.__table__
INDEX = BlockingKey.__table__
PAIRS = MatchPair.__table__
PAIR_COLUMNS = ("left_record_id", "right_record_id", "party_type", "score", "by_rule")
#: Scored pairs below this match probability are not kept: they join no component, and a
#: component that needs one (to cluster its members) has it scored again.
PAIR_FLOOR = 0.05
#: Kept scores and the blocking index are valid for the blocking keys and clustering rules of
#: this version (``match_runs.counts``); a hub built by an older one is rebuilt in full.
PAIRS_VERSION = 3
QUEUE = ConsolidationQueue.__table__
RUNS = MatchRun.__table__
EXTRACTS = Extract.__table__
VERSIONS = SourceRecordVersion.__table__
XREF = GoldenXref.__table__
LABEL_VALUES = ("match", "distinct", "unsure")
#: Each source record's current version, cleansed.
_CURRENT = CLEANSED.join(
    SOURCES,
    and_(
        SOURCES.c.current_extract_id == CLEANSED.c.extract_id,
        SOURCES.c.current_row_number == CLEANSED.c.row_number,
        # Redundant for a current version, but it lets the database find a record by its id.
        SOURCES.c.id == CLEANSED.c.source_record_id,
    ),
)
PARTY_TYPES = (PERSON, ORGANISATION)


def _now() -> datetime:
    return datetime.now(UTC)


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


def current_cleansed(conn: Connection, record_ids: list[str] | None = None) -> pd.DataFrame:
    """The cleansed form of each source record's current version."""
    query = select(*[CLEANSED.c[c] for c in CLEANSED_COLUMNS]).select_from(_CURRENT)
    if record_ids is None:
        rows = conn.execute(query.order_by(CLEANSED.c.source_record_id)).all()
    else:
        rows = []
        for chunk in chunks(sorted(set(record_ids))):
            rows += conn.execute(
                query.where(CLEANSED.c.source_record_id.in_(chunk)).order_by(
                    CLEANSED.c.source_record_id
                )
            ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(CLEANSED_COLUMNS), dtype=object)


# --- labels ----------------------------------------------------------------------------------


def steward_labels(conn: Connection) -> list[tuple[str, str, str, str]]:
    """(party_type, left, right, label) of every steward label, in a stable order."""
    rows = conn.execute(
        select(
            LABELS.c.party_type, LABELS.c.left_record_id, LABELS.c.right_record_id, LABELS.c.label
        ).order_by(LABELS.c.left_record_id, LABELS.c.right_record_id)
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def labels_digest(conn: Connection, party_type: str, suffice: int | None = None) -> str:
    """Changes whenever the labels a model of ``party_type`` would train on change."""
    labelled = [r for r in steward_labels(conn) if r[0] == party_type and r[3] != "unsure"]
    n_match = sum(r[3] == "match" for r in labelled)
    h = hashlib.sha256(f"model-version:{MODEL_VERSION}".encode())
    if uses_defaults(n_match, len(labelled) - n_match, suffice):
        h.update(hashlib.sha256(DEFAULT_LABELS.read_bytes()).digest())
    for row in labelled:
        h.update(json.dumps(row).encode())
    return h.hexdigest()


def training_pairs(
    conn: Connection, party_type: str, suffice: int | None = None
) -> tuple[list, list]:
    """The hub's own labelled pairs (their current cleansed values), with the shipped default
    pairs while the hub's own are fewer than ``suffice`` (see ``uses_defaults``)."""
    matches: list = []
    distinct: list = []
    labelled = [r for r in steward_labels(conn) if r[0] == party_type and r[3] != "unsure"]
    if labelled:
        ids = sorted({r[1] for r in labelled} | {r[2] for r in labelled})
        frame = match_frame(current_cleansed(conn, ids))
        rows = {
            rid: rec
            for rid, rec in zip(
                frame["record_id"], frame[list(FIELDS[party_type])].to_dict("records"), strict=True
            )
        }
        for _party, left, right, label in labelled:
            if left in rows and right in rows:  # an erased record drops out of training
                (matches if label == "match" else distinct).append((rows[left], rows[right]))
    n_match = sum(r[3] == "match" for r in labelled)
    if uses_defaults(n_match, len(labelled) - n_match, suffice):
        return training_set(party_type, matches, distinct, None)
    return matches, distinct


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
                labelled_at=_now(),
            )
        )
        conn.execute(
            update(REVIEW)
            .where(REVIEW.c.left_record_id == left, REVIEW.c.right_record_id == right)
            .values(status="done")
        )


def record_override(
    engine: Engine, left: str, right: str, kind: str, by: str, reason: str | None = None
) -> None:
    """A must-link (merge) or cannot-link (split); it replaces an earlier one for the pair."""
    if kind not in ("must_link", "cannot_link"):
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
                created_at=_now(),
            )
        )


def overrides(conn: Connection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    rows = conn.execute(
        select(OVERRIDES.c.left_record_id, OVERRIDES.c.right_record_id, OVERRIDES.c.kind)
    ).all()
    must = [(a, b) for a, b, k in rows if k == "must_link"]
    cannot = [(a, b) for a, b, k in rows if k == "cannot_link"]
    return must, cannot


# --- models ----------------------------------------------------------------------------------


@dataclass
class TrainSummary:
    retrained: dict[str, bool] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)


def latest_model_rows(conn: Connection) -> dict[str, Any]:
    out = {}
    for party in PARTY_TYPES:
        row = conn.execute(
            select(MODELS).where(MODELS.c.party_type == party).order_by(MODELS.c.id.desc()).limit(1)
        ).first()
        if row is not None:
            out[party] = row
    return out


def train_models(
    engine: Engine, config: HubConfig | None = None, *, force: bool = False
) -> TrainSummary:
    """Train a model per party type whose labels changed since its last model (or ``force``).
    ``config.matching.own_labels_suffice`` (without ``config``, its default) decides when the
    shipped defaults stop taking part."""
    suffice = (config.matching if config else MatchingConfig()).own_labels_suffice
    summary = TrainSummary()
    with engine.connect() as conn:
        latest = latest_model_rows(conn)
        todo = {}
        for party in PARTY_TYPES:
            digest = labels_digest(conn, party, suffice)
            if force or party not in latest or latest[party].labels_digest != digest:
                todo[party] = (digest, *training_pairs(conn, party, suffice))
    for party in PARTY_TYPES:
        if party not in todo:
            summary.retrained[party] = False
            summary.metrics[party] = dict(latest[party].metrics)
            summary.thresholds[party] = float(latest[party].threshold)
            continue
        digest, matches, distinct = todo[party]
        model = train_model(party, matches, distinct)
        settings = model.to_bytes()
        with write_transaction(engine) as conn:
            conn.execute(
                insert(MODELS).values(
                    party_type=party,
                    labels_digest=digest,
                    threshold=model.threshold,
                    settings=settings,
                    settings_sha256=settings_digest(settings),
                    metrics=model.metrics,
                    created_at=_now(),
                )
            )
        summary.retrained[party] = True
        summary.metrics[party] = model.metrics
        summary.thresholds[party] = model.threshold
    return summary


class NoModel(LookupError):
    """match_clusters needs a trained model: materialise match_model first."""


def load_models(conn: Connection) -> dict[str, MatchModel]:
    """The newest model per party type, verified against the digest the hub recorded."""
    models = {}
    for party, row in latest_model_rows(conn).items():
        if settings_digest(row.settings) != row.settings_sha256:
            raise NoModel(f"the stored {party} model does not match its recorded digest")
        models[party] = load_model(row.settings)
    missing = set(PARTY_TYPES) - set(models)
    if missing:
        raise NoModel(f"no trained model for {sorted(missing)}: materialise match_model first")
    return models


# --- clusters and review ---------------------------------------------------------------------


CLUSTER_COLUMNS = (
    "record_id",
    "party_type",
    "cluster_id",
    "confidence",
    "organisation_cluster_id",
    "clustered_at",
    "extract_id",
    "row_number",
)
#: ``pg_advisory_xact_lock`` key of the transactions that rewrite clusters (one at a time).
MATCH_LOCK_KEY = 0x6D646D03


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MATCH_LOCK_KEY})


def _cleansed_upto(conn: Connection) -> datetime | None:
    return conn.execute(select(func.max(EXTRACTS.c.cleansed_at))).scalar_one()


def _versions_of(conn: Connection, record_ids: list[str] | None) -> dict[str, tuple[int, int]]:
    """Each record's current cleansed version (extract id, row number)."""
    query = select(
        CLEANSED.c.source_record_id, CLEANSED.c.extract_id, CLEANSED.c.row_number
    ).select_from(_CURRENT)
    if record_ids is None:
        return {r: (e, n) for r, e, n in conn.execute(query)}
    out = {}
    for chunk in chunks(record_ids):
        rows = conn.execute(query.where(CLEANSED.c.source_record_id.in_(chunk)))
        out.update({r: (e, n) for r, e, n in rows})
    return out


def _cluster_rows(
    result: MatchResult, versions: dict[str, tuple[int, int]], now: datetime
) -> list[tuple[Any, ...]]:
    c = result.clusters
    return [
        (r, p, k, float(s), o, now, *versions[r])
        for r, p, k, s, o in zip(
            c["record_id"],
            c["party_type"],
            c["cluster_id"],
            c["confidence"],
            c["organisation_cluster_id"],
            strict=True,
        )
    ]


def _review_rows(
    conn: Connection,
    result: MatchResult,
    judged: set[tuple[str, str]],
    now: datetime,
    among: set[str] | None = None,
) -> list[tuple[Any, ...]]:
    """New pending review items: the result's uncertain pairs not judged or reviewed before
    (``among``: the records an incremental run re-matched, whose pairs are the only candidates)."""
    query = select(REVIEW.c.left_record_id, REVIEW.c.right_record_id)
    if among is None:
        done = {ordered(*r) for r in conn.execute(query)}
    else:
        done = set()
        for side in (REVIEW.c.left_record_id, REVIEW.c.right_record_id):
            for cond in in_chunks(side, sorted(among)):
                done.update(ordered(*r) for r in conn.execute(query.where(cond)))
    judged = {ordered(*p) for p in judged}
    out = []
    for a, b, p, s in zip(
        result.review["left_id"],
        result.review["right_id"],
        result.review["party_type"],
        result.review["score"],
        strict=True,
    ):
        pair = ordered(a, b)
        if pair not in judged and pair not in done:
            done.add(pair)
            out.append((p, *pair, float(s), "pending", now))
    return out


def _index_rows(cleansed: pd.DataFrame) -> list[tuple[str, str, str]]:
    frame = match_frame(cleansed)
    rows: list[tuple[str, str, str]] = []
    for party in PARTY_TYPES:
        sub = frame[frame["party_type"] == party]
        if not sub.empty:
            rows += index_entries(sub, party)
    return rows


def _write_pairs(
    conn: Connection,
    pairs: list[ScoredPairs],
    start: dict[str, int] | None = None,
    batch: int = 200_000,
) -> int:
    """Keep the scored pairs at or above ``PAIR_FLOOR`` (from ``start[party]`` on), a batch of
    rows at a time."""
    written = 0
    for sp in pairs:
        first = (start or {}).get(sp.party_type, 0)
        for lo in range(first, len(sp.left), batch):
            part = ScoredPairs(
                sp.party_type,
                sp.ids,
                sp.left[lo : lo + batch],
                sp.right[lo : lo + batch],
                sp.scores[lo : lo + batch],
                sp.by_rule[lo : lo + batch],
            )
            rows = part.rows(PAIR_FLOOR)
            bulk_insert(conn, "match_pairs", PAIR_COLUMNS, rows)
            written += len(rows)
    return written


def _model_ids(conn: Connection) -> dict[str, int]:
    return {p: int(r.id) for p, r in latest_model_rows(conn).items()}


def rebuild_clusters(engine: Engine, config: HubConfig) -> MatchResult:
    """Cluster every current source record; replace the clustering, the blocking index and the
    pending review items in one transaction, and queue every record for consolidation. Pairs a
    steward already judged do not come back for review."""
    with reconsolidation_lock(engine):
        return _rebuild_clusters(engine, config)


def _rebuild_clusters(engine: Engine, config: HubConfig) -> MatchResult:
    with engine.connect() as conn, conn.begin():
        models = load_models(conn)
        model_ids = _model_ids(conn)
        upto = _cleansed_upto(conn)
        cleansed = current_cleansed(conn)
        versions = _versions_of(conn, None)
        must, cannot = overrides(conn)
        judged = {(a, b) for _p, a, b, _l in steward_labels(conn)} | set(must) | set(cannot)
    result = match_records(cleansed, models, config.matching, must, cannot)
    index = sorted(_index_rows(cleansed))  # in primary-key order: appends, not page splits
    now = _now()
    with write_transaction(engine) as conn:
        _lock(conn)
        conn.execute(delete(CLUSTERS))
        bulk_insert(conn, "match_clusters", CLUSTER_COLUMNS, _cluster_rows(result, versions, now))
        conn.execute(delete(INDEX))
        bulk_insert(conn, "blocking_index", ("record_id", "key_name", "key_hash"), index)
        conn.execute(delete(PAIRS))
        _write_pairs(conn, result.pairs)
        conn.execute(delete(REVIEW).where(REVIEW.c.status == "pending"))
        review = _review_rows(conn, result, judged, now)
        bulk_insert(
            conn,
            "review_queue",
            ("party_type", "left_record_id", "right_record_id", "score", "status", "created_at"),
            review,
        )
        # Every record (and every record that had a golden record) is consolidated again.
        conn.execute(delete(QUEUE))
        conn.execute(
            QUEUE.insert().from_select(
                ["record_id"], select(CLUSTERS.c.record_id).union(select(XREF.c.record_id))
            )
        )
        counts = {
            "records": len(result.clusters),
            "arrived": len(result.clusters),
            "removed": 0,
            "clusters_touched": int(result.clusters["cluster_id"].nunique())
            if len(result.clusters)
            else 0,
            "pairs_version": PAIRS_VERSION,
            **{f"{p}_model": i for p, i in model_ids.items()},
        }
        conn.execute(
            RUNS.insert().values(mode="full", cleansed_upto=upto, counts=counts, finished_at=_now())
        )
    result.stats["review_queue"] = len(review)
    result.stats["run"] = counts
    return result


@dataclass
class IncrementalResult:
    counts: dict[str, int]
    review_queue: int = 0
    #: the records the run re-clustered or took out (what its checks look at)
    scope: set[str] = field(default_factory=set)


def _changed_since(conn: Connection, since: datetime | None) -> tuple[list[str], list[str]]:
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
    current = _versions_of(conn, touched)
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


def _neighbours(
    conn: Connection, keys: set[tuple[str, str]], exclude: set[str], max_block: int, extra: Counter
) -> set[str]:
    """Records in the index sharing one of ``keys`` (giant blocks left out: a block's hub size
    counts ``extra``, the keys of records about to be indexed, instead of ``exclude``'s)."""
    members: dict[str, set[str]] = {}
    for cond in in_chunks(INDEX.c.key_hash, sorted({h for _n, h in keys})):
        for h, rid in conn.execute(select(INDEX.c.key_hash, INDEX.c.record_id).where(cond)):
            if rid not in exclude:
                members.setdefault(h, set()).add(rid)
    found: set[str] = set()
    for name, h in keys:
        m = members.get(h, set())
        if len(m) + extra[(name, h)] <= max_block:
            found |= m
    return found


def _block_sizes(
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


def _clusters_members(conn: Connection, record_ids: set[str]) -> set[str]:
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


def _known_organisations(conn: Connection, frame: pd.DataFrame, exclude: set[str]) -> pd.DataFrame:
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
                _CURRENT.join(CLUSTERS, CLUSTERS.c.record_id == CLEANSED.c.source_record_id)
            )
            .where(CLEANSED.c.party_type == ORGANISATION, CLEANSED.c.source_record_id.in_(chunk))
        ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["record_id", "company", "cluster_id"], dtype=object
    )


def match_incremental(engine: Engine, config: HubConfig) -> IncrementalResult:
    """Match only what changed since the last run. The new and changed records are scored
    against the records they share a blocking key with (the persisted index); the pairs kept
    from earlier runs stand for everything else. The region re-clustered is every whole
    component of the match graph (pairs at or above the threshold, must-links) that holds a
    changed or removed record, so it clusters exactly as a full run would. One transaction
    writes the clusters, the index, the kept pairs, the review items and the consolidation
    queue."""
    with reconsolidation_lock(engine):
        return _match_incremental(engine, config)


@dataclass
class _Plan:
    result: MatchResult
    index: list[tuple[str, str, str]]
    versions: dict[str, tuple[int, int]]
    region: set[str]
    neighbours: set[str]
    new_pairs: list[ScoredPairs]
    completed: list[ScoredPairs]
    judged: set[tuple[str, str]]
    #: record -> (party, cluster, confidence, organisation cluster, extract, row) as stored
    old_clusters: dict[str, tuple[Any, ...]]
    #: the stored blocking keys of the changed and removed records
    old_index: set[tuple[str, str, str]]


def _match_incremental(engine: Engine, config: HubConfig) -> IncrementalResult:
    with engine.connect() as conn, conn.begin():
        last = conn.execute(select(RUNS).order_by(RUNS.c.id.desc()).limit(1)).first()
        upto = _cleansed_upto(conn)
        changed, removed = _changed_since(conn, last.cleansed_upto if last else None)
        counts = {
            "arrived": len(changed),
            "removed": len(removed),
            "records": 0,
            "clusters_touched": 0,
            "neighbours": 0,
            "pairs_scored": 0,
        }
        plan = _plan(conn, config, changed, removed) if changed or removed else None
        if plan is not None:
            counts["neighbours"] = len(plan.neighbours)
            counts["records"] = len(plan.region)
            counts["clusters_touched"] = int(plan.result.clusters["cluster_id"].nunique())
            counts["pairs_scored"] = sum(len(p.left) for p in plan.new_pairs + plan.completed)
    now = _now()
    review: list[tuple[Any, ...]] = []
    with write_transaction(engine) as conn:
        _lock(conn)
        latest = conn.execute(select(func.max(RUNS.c.id))).scalar_one()
        if latest != (last.id if last else None):
            raise ConcurrentMatch("another matching run committed meanwhile; run again")
        if plan is not None:
            gone = sorted(set(changed) | set(removed))
            # Only rows that changed are written: most of a region clusters as before, and a
            # changed record keeps most of its blocking keys.
            rows = _cluster_rows(plan.result, plan.versions, now)
            rewrite = [r for r in rows if plan.old_clusters.get(r[0]) != _stored_form(r)]
            moved = {
                r[0]
                for r in rewrite
                if _golden_relevant(plan.old_clusters.get(r[0]))
                != _golden_relevant(_stored_form(r))
            }
            stale = [r[0] for r in rewrite if r[0] in plan.old_clusters]
            stale += [r for r in removed if r in plan.old_clusters]
            for chunk in chunks(sorted(stale)):
                conn.execute(delete(CLUSTERS).where(CLUSTERS.c.record_id.in_(chunk)))
            bulk_insert(conn, "match_clusters", CLUSTER_COLUMNS, rewrite)
            for chunk in chunks(gone):
                # Found through the pair indexes (one per side), then deleted by id: a filter
                # on status would lead the database to scan every pending item.
                for side in (REVIEW.c.left_record_id, REVIEW.c.right_record_id):
                    ids = [
                        i
                        for i, status in conn.execute(
                            select(REVIEW.c.id, REVIEW.c.status).where(side.in_(chunk))
                        )
                        if status == "pending"
                    ]
                    if ids:
                        conn.execute(delete(REVIEW).where(REVIEW.c.id.in_(ids)))
                conn.execute(delete(PAIRS).where(PAIRS.c.left_record_id.in_(chunk)))
                conn.execute(delete(PAIRS).where(PAIRS.c.right_record_id.in_(chunk)))
            new_index = set(plan.index)
            dropped = [{"r": r, "n": n} for r, n, _h in plan.old_index - new_index]
            if dropped:
                conn.execute(
                    delete(INDEX).where(
                        INDEX.c.record_id == bindparam("r"), INDEX.c.key_name == bindparam("n")
                    ),
                    dropped,
                )
            bulk_insert(
                conn,
                "blocking_index",
                ("record_id", "key_name", "key_hash"),
                sorted(new_index - plan.old_index),
            )
            _write_pairs(conn, plan.new_pairs + plan.completed)
            # An earlier item for a pair shares one of its records with it: one side suffices
            # (the changed record's, whose items are few), read from both columns.
            fresh = set(changed)
            among = {
                a if a in fresh or b not in fresh else b
                for a, b in zip(
                    plan.result.review["left_id"], plan.result.review["right_id"], strict=True
                )
            }
            review = _review_rows(conn, plan.result, plan.judged, now, among=among)
            bulk_insert(
                conn,
                "review_queue",
                (
                    "party_type",
                    "left_record_id",
                    "right_record_id",
                    "score",
                    "status",
                    "created_at",
                ),
                review,
            )
            # Golden records follow clusters, organisation links and record contents: a record
            # whose row changed only in confidence need not be consolidated again.
            queued = set(conn.execute(select(QUEUE.c.record_id)).scalars())
            todo = (moved | set(changed) | set(removed)) - queued
            bulk_insert(conn, "consolidation_queue", ("record_id",), [(r,) for r in sorted(todo)])
            counts["clusters_rewritten"] = len(rewrite)
            counts["queued"] = len(todo)
        conn.execute(
            RUNS.insert().values(
                mode="incremental",
                cleansed_upto=upto,
                counts={**counts, **_model_ids(conn)},
                finished_at=_now(),
            )
        )
    scope = plan.region | set(removed) if plan is not None else set()
    return IncrementalResult(counts, len(review), scope)


def _stored_form(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``CLUSTER_COLUMNS`` row as ``_Plan.old_clusters`` holds it (no record id, no time)."""
    return (*row[1:5], *row[6:])


def _golden_relevant(stored: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """What of a cluster row golden records depend on: cluster, organisation link, version."""
    return None if stored is None else (stored[1], *stored[3:])


def _thresholds(models: dict[str, MatchModel], config: HubConfig) -> dict[str, float]:
    t = config.matching.threshold
    return {p: float(t if t is not None else m.threshold) for p, m in models.items()}


def _plan(conn: Connection, config: HubConfig, changed: list[str], removed: list[str]) -> _Plan:
    m = config.matching
    models = load_models(conn)
    thresholds = _thresholds(models, config)
    gone = set(changed) | set(removed)
    fresh = set(changed)
    # 1. Score the changed records against the records sharing a blocking key with them.
    index = _index_rows(current_cleansed(conn, changed))
    extra = Counter((n, h) for _r, n, h in index)
    keys = {(n, h) for _r, n, h in index}
    neighbours = _neighbours(conn, keys, gone, m.max_block_size, extra)
    block_sizes = _block_sizes(conn, keys, gone, extra)
    around = match_frame(current_cleansed(conn, sorted(neighbours | fresh)))
    new_pairs = []
    for party in PARTY_TYPES:
        sub = around[around["party_type"] == party].reset_index(drop=True)
        if sub.empty:
            continue
        cands = candidate_pairs(sub, party, m.max_block_size, block_sizes)
        mine = sub["record_id"].isin(fresh).to_numpy()
        keep = mine[cands.left] | mine[cands.right]
        left, right = cands.left[keep], cands.right[keep]
        scores, by_rule = score_pairs(sub, party, models[party], m, left, right)
        new_pairs.append(
            ScoredPairs(party, sub["record_id"].to_numpy(object), left, right, scores, by_rule)
        )
    # 2. The region: every component of the match graph holding a changed or removed record.
    must, cannot = overrides(conn)
    linked: dict[str, set[str]] = {}
    for sp in new_pairs:
        up = sp.scores >= thresholds[sp.party_type]
        for a, b in zip(sp.ids[sp.left[up]].tolist(), sp.ids[sp.right[up]].tolist(), strict=True):
            linked.setdefault(a, set()).add(b)
            linked.setdefault(b, set()).add(a)
    for a, b in must:
        linked.setdefault(a, set()).add(b)
        linked.setdefault(b, set()).add(a)
    seeds = fresh | _stored_links(conn, gone, set(), thresholds) | _clusters_members(conn, gone)
    region: set[str] = set()
    frontier = seeds - set(removed)
    while frontier:
        region |= frontier
        found = _stored_links(conn, frontier, gone, thresholds)
        found |= _clusters_members(conn, frontier)
        for r in frontier:
            found |= linked.get(r, set())
        frontier = found - region - set(removed)
    # 3. Re-cluster the region from the kept pairs and the new ones.
    frame = match_frame(current_cleansed(conn, sorted(region)))
    region = set(frame["record_id"])
    kept = _stored_pairs(conn, region, gone)
    parts: dict[str, tuple[pd.DataFrame, PartyMatch]] = {}
    completed = []
    for party in PARTY_TYPES:
        sub = frame[frame["party_type"] == party].reset_index(drop=True)
        if sub.empty:
            continue
        pos = {rid: i for i, rid in enumerate(sub["record_id"].tolist())}
        rows = [
            (pos[a], pos[b], s, r) for a, b, p, s, r in kept if p == party and a in pos and b in pos
        ]
        for sp in new_pairs:
            if sp.party_type != party:
                continue
            for a, b, s, r in zip(
                sp.ids[sp.left].tolist(),
                sp.ids[sp.right].tolist(),
                sp.scores.tolist(),
                sp.by_rule.tolist(),
                strict=True,
            ):
                if a in pos and b in pos:
                    rows.append((pos[a], pos[b], s, r))
        rows = [(min(a, b), max(a, b), s, r) for a, b, s, r in rows]
        left = np.array([r[0] for r in rows], dtype=np.int64)
        right = np.array([r[1] for r in rows], dtype=np.int64)
        scores = np.array([r[2] for r in rows], dtype=np.float32)
        by_rule = np.array([r[3] for r in rows], dtype=bool)
        pm = cluster_scored(
            sub, party, models[party], m, left, right, scores, by_rule, must, cannot
        )
        parts[party] = (sub, pm)
        n = len(rows)
        completed.append(
            ScoredPairs(
                party,
                sub["record_id"].to_numpy(object),
                pm.left[n:],
                pm.right[n:],
                pm.scores[n:],
                pm.by_rule[n:],
            )
        )
    result = assemble(frame, parts, _known_organisations(conn, frame, region | set(removed)))
    # Review candidates: the uncertain pairs scored in this run (inside the region or not).
    # Every other uncertain pair was scored, and offered for review, by the run that scored it.
    low, high = m.review_band
    review = []
    for sp in new_pairs + completed:
        band = (sp.scores >= low) & (sp.scores < high) & ~sp.by_rule
        review.append(
            pd.DataFrame(
                {
                    "left_id": sp.ids[sp.left[band]],
                    "right_id": sp.ids[sp.right[band]],
                    "party_type": sp.party_type,
                    "score": np.round(sp.scores[band], 4),
                }
            )
        )
    result.review = pd.concat(review, ignore_index=True) if review else result.review.iloc[:0]
    judged = {(a, b) for _p, a, b, _l in steward_labels(conn)} | set(must) | set(cannot)
    old_clusters = {}
    for cond in in_chunks(CLUSTERS.c.record_id, sorted(region | set(removed))):
        old_clusters.update(
            {
                r[0]: tuple(r[1:])
                for r in conn.execute(
                    select(
                        CLUSTERS.c.record_id,
                        CLUSTERS.c.party_type,
                        CLUSTERS.c.cluster_id,
                        CLUSTERS.c.confidence,
                        CLUSTERS.c.organisation_cluster_id,
                        CLUSTERS.c.extract_id,
                        CLUSTERS.c.row_number,
                    ).where(cond)
                )
            }
        )
    old_index: set[tuple[str, str, str]] = set()
    for cond in in_chunks(INDEX.c.record_id, sorted(gone)):
        old_index.update(
            tuple(r)
            for r in conn.execute(  # type: ignore[misc]
                select(INDEX.c.record_id, INDEX.c.key_name, INDEX.c.key_hash).where(cond)
            )
        )
    return _Plan(
        result,
        index,
        _versions_of(conn, sorted(region)),
        region,
        neighbours,
        new_pairs,
        completed,
        judged,
        old_clusters,
        old_index,
    )


def _stored_links(
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


def _stored_pairs(
    conn: Connection, region: set[str], skip: set[str]
) -> list[tuple[str, str, str, float, bool]]:
    """Kept pairs with both records in ``region`` and neither in ``skip``."""
    out = []
    query = select(*[PAIRS.c[c] for c in PAIR_COLUMNS])
    for cond in in_chunks(PAIRS.c.left_record_id, sorted(region)):
        for a, b, party, score, rule in conn.execute(query.where(cond)):
            if b in region and a not in skip and b not in skip:
                out.append((a, b, party, float(score), bool(rule)))
    return out


class ConcurrentMatch(RuntimeError):
    """Another matching run committed while this one was reading: nothing was written."""


def needs_full_rematch(conn: Connection) -> bool:
    """A full rebuild is due: never matched, a model newer than the last full run, steward
    labels or overrides newer than the last run, or kept pair scores from an older version."""
    last_full = conn.execute(
        select(RUNS).where(RUNS.c.mode == "full").order_by(RUNS.c.id.desc()).limit(1)
    ).first()
    if last_full is None or last_full.counts.get("pairs_version") != PAIRS_VERSION:
        return True
    models = _model_ids(conn)
    if any(last_full.counts.get(f"{p}_model") != i for p, i in models.items()):
        return True
    last_run = conn.execute(select(func.max(RUNS.c.finished_at))).scalar_one()
    newest = [
        conn.execute(select(func.max(LABELS.c.labelled_at))).scalar_one(),
        conn.execute(select(func.max(OVERRIDES.c.created_at))).scalar_one(),
    ]
    stamp = as_utc(last_run)
    return any(t is not None and as_utc(t) > stamp for t in newest)


@dataclass
class ClusterState:
    records: int
    clustered: int
    distinct_records: int
    oversized: dict[str, int]  # cluster id -> size, above max_cluster_size


def cluster_state(engine: Engine, config: HubConfig, scope: set[str] | None = None) -> ClusterState:
    """What the asset checks verify: every current record in exactly one cluster, no giant;
    over the whole hub, or over ``scope`` (the records an incremental run re-clustered or took
    out, and their clusters)."""
    with engine.connect() as conn:
        # Records to cluster: source records whose current version was cleansed (one whose
        # current version is quarantined has nothing to match on).
        count_current = select(func.count()).select_from(_CURRENT)
        count_clustered = select(
            func.count(), func.count(CLUSTERS.c.record_id.distinct())
        ).select_from(CLUSTERS.join(SOURCES, SOURCES.c.id == CLUSTERS.c.record_id))
        sizes = select(CLUSTERS.c.cluster_id, func.count()).group_by(CLUSTERS.c.cluster_id)
        if scope is None:
            records = conn.execute(count_current).scalar_one()
            clustered, distinct = conn.execute(count_clustered).one()
            big = conn.execute(sizes.having(func.count() > config.matching.max_cluster_size)).all()
        else:
            records = clustered = distinct = 0
            clusters: set[str] = set()
            for chunk in chunks(sorted(scope)):
                records += conn.execute(
                    count_current.where(CLEANSED.c.source_record_id.in_(chunk))
                ).scalar_one()
                n, d = conn.execute(count_clustered.where(CLUSTERS.c.record_id.in_(chunk))).one()
                clustered, distinct = clustered + n, distinct + d
                clusters.update(
                    conn.execute(
                        select(CLUSTERS.c.cluster_id).where(CLUSTERS.c.record_id.in_(chunk))
                    ).scalars()
                )
            big = []
            for chunk in chunks(sorted(clusters)):
                big += conn.execute(
                    sizes.where(CLUSTERS.c.cluster_id.in_(chunk)).having(
                        func.count() > config.matching.max_cluster_size
                    )
                ).all()
    return ClusterState(int(records), int(clustered), int(distinct), {k: int(n) for k, n in big})


def pending_review(conn: Connection, limit: int) -> list[Any]:
    """Pending pairs, the most uncertain first."""
    return conn.execute(
        select(REVIEW)
        .where(REVIEW.c.status == "pending")
        .order_by(func.abs(REVIEW.c.score - 0.5), REVIEW.c.id)
        .limit(limit)
    ).all()


def needs_rematch(conn: Connection) -> bool:
    """Whether the clustering is stale: a full rebuild is due (see :func:`needs_full_rematch`)
    or extracts were cleansed after the last matching run."""
    if needs_full_rematch(conn):
        return conn.execute(select(func.count()).select_from(_CURRENT)).scalar_one() > 0 or (
            conn.execute(select(func.count()).select_from(CLUSTERS)).scalar_one() > 0
        )
    last = conn.execute(select(RUNS.c.cleansed_upto).order_by(RUNS.c.id.desc()).limit(1)).scalar()
    newest = _cleansed_upto(conn)
    if newest is None:
        return False
    return last is None or as_utc(newest) > as_utc(last)
