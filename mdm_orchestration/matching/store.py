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

import pandas as pd
from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, text, update

from mdm_orchestration.config import HubConfig, load_hub_config
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
from mdm_orchestration.matching.blocking import ORGANISATION, PERSON, index_entries
from mdm_orchestration.matching.engine import MatchResult, match_records
from mdm_orchestration.matching.labels import DEFAULT_LABELS, training_set, uses_defaults
from mdm_orchestration.matching.model import (
    FIELDS,
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
    if record_ids is not None:
        query = query.where(CLEANSED.c.source_record_id.in_(record_ids))
    rows = conn.execute(query.order_by(CLEANSED.c.source_record_id)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(CLEANSED_COLUMNS), dtype=object)


# --- labels ----------------------------------------------------------------------------------


def steward_labels(conn: Connection) -> list[tuple[str, str, str, str]]:
    """(party_type, left, right, label) of every steward label, in a stable order."""
    rows = conn.execute(
        select(LABELS.c.party_type, LABELS.c.left_record_id, LABELS.c.right_record_id,
               LABELS.c.label).order_by(LABELS.c.left_record_id, LABELS.c.right_record_id)
    ).all()  # fmt: skip
    return [tuple(r) for r in rows]  # type: ignore[misc]


def labels_digest(conn: Connection, party_type: str, suffice: int | None = None) -> str:
    """Changes whenever the labels a model of ``party_type`` would train on change."""
    labelled = [r for r in steward_labels(conn) if r[0] == party_type and r[3] != "unsure"]
    n_match = sum(r[3] == "match" for r in labelled)
    h = hashlib.sha256()
    if uses_defaults(n_match, len(labelled) - n_match, suffice):
        h.update(hashlib.sha256(DEFAULT_LABELS.read_bytes()).digest())
    for row in labelled:
        h.update(json.dumps(row).encode())
    return h.hexdigest()


def training_pairs(conn: Connection, party_type: str,
                   suffice: int | None = None) -> tuple[list, list]:  # fmt: skip
    """The hub's own labelled pairs (their current cleansed values), with the shipped default
    pairs while the hub's own are fewer than ``suffice`` (see ``uses_defaults``)."""
    matches: list = []
    distinct: list = []
    labelled = [r for r in steward_labels(conn) if r[0] == party_type and r[3] != "unsure"]
    if labelled:
        ids = sorted({r[1] for r in labelled} | {r[2] for r in labelled})
        frame = match_frame(current_cleansed(conn, ids))
        rows = {rid: rec for rid, rec in zip(frame["record_id"],
                frame[list(FIELDS[party_type])].to_dict("records"), strict=True)}  # fmt: skip
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
        conn.execute(delete(LABELS).where(LABELS.c.left_record_id == left,
                                          LABELS.c.right_record_id == right))  # fmt: skip
        conn.execute(insert(LABELS).values(party_type=party, left_record_id=left,
                                           right_record_id=right, label=label, labelled_by=by,
                                           labelled_at=_now()))  # fmt: skip
        conn.execute(update(REVIEW).where(REVIEW.c.left_record_id == left,
                                          REVIEW.c.right_record_id == right)
                     .values(status="done"))  # fmt: skip


def record_override(engine: Engine, left: str, right: str, kind: str, by: str,
                    reason: str | None = None) -> None:  # fmt: skip
    """A must-link (merge) or cannot-link (split); it replaces an earlier one for the pair."""
    if kind not in ("must_link", "cannot_link"):
        raise ValueError("kind must be must_link or cannot_link")
    if left == right:
        raise ValueError("a record cannot be linked to itself")
    left, right = ordered(left, right)
    with write_transaction(engine) as conn:
        conn.execute(delete(OVERRIDES).where(OVERRIDES.c.left_record_id == left,
                                             OVERRIDES.c.right_record_id == right))  # fmt: skip
        conn.execute(insert(OVERRIDES).values(left_record_id=left, right_record_id=right,
                                              kind=kind, reason=reason, created_by=by,
                                              created_at=_now()))  # fmt: skip


def overrides(conn: Connection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    rows = conn.execute(select(OVERRIDES.c.left_record_id, OVERRIDES.c.right_record_id,
                               OVERRIDES.c.kind)).all()  # fmt: skip
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


def train_models(engine: Engine, config: HubConfig | None = None, *,
                 force: bool = False) -> TrainSummary:  # fmt: skip
    """Train a model per party type whose labels changed since its last model (or ``force``).
    ``config.matching.own_labels_suffice`` decides when the shipped defaults stop taking part."""
    suffice = (config or load_hub_config()).matching.own_labels_suffice
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
            conn.execute(insert(MODELS).values(
                party_type=party, labels_digest=digest, threshold=model.threshold,
                settings=settings, settings_sha256=settings_digest(settings),
                metrics=model.metrics, created_at=_now(),
            ))  # fmt: skip
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


CLUSTER_COLUMNS = ("record_id", "party_type", "cluster_id", "confidence",
                   "organisation_cluster_id", "clustered_at", "extract_id", "row_number")  # fmt: skip
#: ``pg_advisory_xact_lock`` key of the transactions that rewrite clusters (one at a time).
MATCH_LOCK_KEY = 0x6D646D03


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MATCH_LOCK_KEY})


def _cleansed_upto(conn: Connection) -> datetime | None:
    return conn.execute(select(func.max(EXTRACTS.c.cleansed_at))).scalar_one()


def _versions_of(conn: Connection, record_ids: list[str] | None) -> dict[str, tuple[int, int]]:
    """Each record's current cleansed version (extract id, row number)."""
    query = select(CLEANSED.c.source_record_id, CLEANSED.c.extract_id,
                   CLEANSED.c.row_number).select_from(_CURRENT)  # fmt: skip
    if record_ids is None:
        return {r: (e, n) for r, e, n in conn.execute(query)}
    out = {}
    for chunk in chunks(record_ids):
        rows = conn.execute(query.where(CLEANSED.c.source_record_id.in_(chunk)))
        out.update({r: (e, n) for r, e, n in rows})
    return out


def _cluster_rows(result: MatchResult, versions: dict[str, tuple[int, int]],
                  now: datetime) -> list[tuple[Any, ...]]:  # fmt: skip
    c = result.clusters
    return [(r, p, k, float(s), o, now, *versions[r]) for r, p, k, s, o in zip(
        c["record_id"], c["party_type"], c["cluster_id"], c["confidence"],
        c["organisation_cluster_id"], strict=True)]  # fmt: skip


def _review_rows(conn: Connection, result: MatchResult, judged: set[tuple[str, str]],
                 now: datetime, among: set[str] | None = None) -> list[tuple[Any, ...]]:  # fmt: skip
    """New pending review items: the result's uncertain pairs not judged or reviewed before
    (``among``: the records an incremental run re-matched, whose pairs are the only candidates)."""
    query = select(REVIEW.c.left_record_id, REVIEW.c.right_record_id)
    if among is None:
        done = {tuple(r) for r in conn.execute(query)}
    else:
        done = set()
        for cond in in_chunks(REVIEW.c.left_record_id, sorted(among)):
            done.update(tuple(r) for r in conn.execute(query.where(cond)))
    return [
        (p, a, b, float(s), "pending", now)
        for a, b, p, s in zip(result.review["left_id"], result.review["right_id"],
                              result.review["party_type"], result.review["score"], strict=True)
        if (a, b) not in judged and (a, b) not in done
    ]  # fmt: skip


def _index_rows(cleansed: pd.DataFrame) -> list[tuple[str, str, str]]:
    frame = match_frame(cleansed)
    rows: list[tuple[str, str, str]] = []
    for party in PARTY_TYPES:
        sub = frame[frame["party_type"] == party]
        if not sub.empty:
            rows += index_entries(sub, party)
    return rows


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
    index = _index_rows(cleansed)
    now = _now()
    with write_transaction(engine) as conn:
        _lock(conn)
        conn.execute(delete(CLUSTERS))
        bulk_insert(conn, "match_clusters", CLUSTER_COLUMNS, _cluster_rows(result, versions, now))
        conn.execute(delete(INDEX))
        bulk_insert(conn, "blocking_index", ("record_id", "key_name", "key_hash"), index)
        conn.execute(delete(REVIEW).where(REVIEW.c.status == "pending"))
        review = _review_rows(conn, result, judged, now)
        bulk_insert(conn, "review_queue", ("party_type", "left_record_id", "right_record_id",
                                           "score", "status", "created_at"), review)  # fmt: skip
        # Every record (and every record that had a golden record) is consolidated again.
        conn.execute(delete(QUEUE))
        conn.execute(QUEUE.insert().from_select(
            ["record_id"], select(CLUSTERS.c.record_id).union(select(XREF.c.record_id))))  # fmt: skip
        counts = {"records": len(result.clusters), "arrived": len(result.clusters),
                  "removed": 0, "clusters_touched": int(result.clusters["cluster_id"].nunique())
                  if len(result.clusters) else 0, **{f"{p}_model": i for p, i in model_ids.items()}}  # fmt: skip
        conn.execute(RUNS.insert().values(mode="full", cleansed_upto=upto, counts=counts,
                                          finished_at=_now()))  # fmt: skip
    result.stats["review_queue"] = len(review)
    result.stats["run"] = counts
    return result


@dataclass
class IncrementalResult:
    counts: dict[str, int]
    review_queue: int = 0


def _changed_since(conn: Connection, since: datetime | None) -> tuple[list[str], list[str]]:
    """Records whose current cleansed version differs from the one clustered (new or changed),
    and clustered records with no current cleansed version any more (removed), among the
    records of extracts cleansed after ``since``."""
    extracts = select(EXTRACTS.c.id).where(EXTRACTS.c.cleansed_at.is_not(None))
    if since is not None:
        extracts = extracts.where(EXTRACTS.c.cleansed_at > since)
    touched = sorted(conn.execute(select(VERSIONS.c.source_record_id).distinct()
                                  .where(VERSIONS.c.extract_id.in_(extracts))).scalars())  # fmt: skip
    current = _versions_of(conn, touched)
    clustered: dict[str, tuple[int, int]] = {}
    for chunk in chunks(touched):
        rows = conn.execute(select(CLUSTERS.c.record_id, CLUSTERS.c.extract_id,
                                   CLUSTERS.c.row_number).where(CLUSTERS.c.record_id.in_(chunk)))  # fmt: skip
        clustered.update({r: (e, n) for r, e, n in rows})
    changed = [r for r in touched if r in current and clustered.get(r) != current[r]]
    removed = [r for r in touched if r in clustered and r not in current]
    return changed, removed


def _neighbours(conn: Connection, keys: set[tuple[str, str]], exclude: set[str],
                max_block: int, extra: Counter) -> set[str]:  # fmt: skip
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


def _block_sizes(conn: Connection, keys: set[tuple[str, str]], exclude: set[str],
                 extra: Counter) -> dict[tuple[str, str], int]:  # fmt: skip
    """Hub size of each block in ``keys``: index rows, minus ``exclude``'s, plus ``extra``."""
    counts: Counter = Counter()
    for cond in in_chunks(INDEX.c.key_hash, sorted({h for _n, h in keys})):
        counts.update(dict(conn.execute(select(INDEX.c.key_hash, func.count())
                                        .where(cond).group_by(INDEX.c.key_hash)).all()))  # fmt: skip
    for cond in in_chunks(INDEX.c.record_id, sorted(exclude)):
        for (h,) in conn.execute(select(INDEX.c.key_hash).where(cond)):
            counts[h] -= 1
    return {(n, h): counts[h] + extra[(n, h)] for n, h in keys}


def _clusters_members(conn: Connection, record_ids: set[str]) -> set[str]:
    """Every member of the clusters of ``record_ids``."""
    ids = sorted(record_ids)
    clusters: set[str] = set()
    for chunk in chunks(ids):
        clusters.update(conn.execute(select(CLUSTERS.c.cluster_id)
                                     .where(CLUSTERS.c.record_id.in_(chunk))).scalars())  # fmt: skip
    out = set(record_ids)
    cl = sorted(clusters)
    for chunk in chunks(cl):
        out.update(conn.execute(select(CLUSTERS.c.record_id)
                                .where(CLUSTERS.c.cluster_id.in_(chunk))).scalars())  # fmt: skip
        # Contacts linked to these organisation clusters are re-linked with them.
        out.update(conn.execute(select(CLUSTERS.c.record_id)
                                .where(CLUSTERS.c.organisation_cluster_id.in_(chunk))).scalars())  # fmt: skip
    return out


def _known_organisations(conn: Connection, exclude: set[str]) -> pd.DataFrame:
    rows = conn.execute(
        select(CLEANSED.c.source_record_id, CLEANSED.c.company_key, CLUSTERS.c.cluster_id)
        .select_from(_CURRENT.join(CLUSTERS, CLUSTERS.c.record_id == CLEANSED.c.source_record_id))
        .where(CLEANSED.c.party_type == ORGANISATION)
    ).all()  # fmt: skip
    keep = [(r, k, c) for r, k, c in rows if r not in exclude]
    return pd.DataFrame(keep, columns=["record_id", "company", "cluster_id"], dtype=object)


def match_incremental(engine: Engine, config: HubConfig) -> IncrementalResult:
    """Match only what changed since the last run: the new and changed records, against the
    records they share a blocking key with (the persisted index), re-clustering the clusters
    those belong to; records that left are taken out. One transaction writes the clusters,
    the index, the review items and the consolidation queue."""
    with reconsolidation_lock(engine):
        return _match_incremental(engine, config)


def _match_incremental(engine: Engine, config: HubConfig) -> IncrementalResult:
    with engine.connect() as conn, conn.begin():
        last = conn.execute(select(RUNS).order_by(RUNS.c.id.desc()).limit(1)).first()
        upto = _cleansed_upto(conn)
        changed, removed = _changed_since(conn, last.cleansed_upto if last else None)
        counts = {"arrived": len(changed), "removed": len(removed), "records": 0,
                  "clusters_touched": 0, "neighbours": 0}  # fmt: skip
        if not changed and not removed:
            result, index, versions, affected = None, [], {}, set()
        else:
            models = load_models(conn)
            new = current_cleansed(conn, changed)
            index = _index_rows(new)
            gone = set(changed) | set(removed)
            keys = {(name, h) for _r, name, h in index}
            neighbours = _neighbours(conn, keys, gone, config.matching.max_block_size,
                                     Counter((n, h) for _r, n, h in index))  # fmt: skip
            affected = _clusters_members(conn, neighbours | gone) - set(removed)
            affected |= set(changed)
            cleansed = current_cleansed(conn, sorted(affected))
            affected = set(cleansed["source_record_id"])
            all_keys = {(n, h) for _r, n, h in _index_rows(cleansed)}
            block_sizes = _block_sizes(conn, all_keys, gone,
                                       Counter((n, h) for _r, n, h in index))  # fmt: skip
            must, cannot = overrides(conn)
            judged = {(a, b) for _p, a, b, _l in steward_labels(conn)} | set(must) | set(cannot)
            known = _known_organisations(conn, affected | set(removed))
            versions = _versions_of(conn, sorted(affected))
            counts["neighbours"] = len(neighbours)
            result = match_records(cleansed, models, config.matching, must, cannot,
                                   block_sizes=block_sizes, known_organisations=known)  # fmt: skip
            counts["records"] = len(affected)
            counts["clusters_touched"] = int(result.clusters["cluster_id"].nunique())
    now = _now()
    review: list[tuple[Any, ...]] = []
    with write_transaction(engine) as conn:
        _lock(conn)
        latest = conn.execute(select(func.max(RUNS.c.id))).scalar_one()
        if latest != (last.id if last else None):
            raise ConcurrentMatch("another matching run committed meanwhile; run again")
        if result is not None:
            touched = sorted(affected | set(removed))
            for chunk in chunks(touched):
                conn.execute(delete(CLUSTERS).where(CLUSTERS.c.record_id.in_(chunk)))
                # Found through the pair indexes (one per side), then deleted by id: a filter
                # on status would lead the database to scan every pending item.
                for side in (REVIEW.c.left_record_id, REVIEW.c.right_record_id):
                    ids = [i for i, status in conn.execute(
                        select(REVIEW.c.id, REVIEW.c.status).where(side.in_(chunk)))
                        if status == "pending"]  # fmt: skip
                    if ids:
                        conn.execute(delete(REVIEW).where(REVIEW.c.id.in_(ids)))
            for chunk in chunks(sorted(set(changed) | set(removed))):
                conn.execute(delete(INDEX).where(INDEX.c.record_id.in_(chunk)))
            bulk_insert(conn, "match_clusters", CLUSTER_COLUMNS,
                        _cluster_rows(result, versions, now))  # fmt: skip
            bulk_insert(conn, "blocking_index", ("record_id", "key_name", "key_hash"), index)
            review = _review_rows(conn, result, judged, now, among=affected)
            bulk_insert(conn, "review_queue", ("party_type", "left_record_id", "right_record_id",
                                               "score", "status", "created_at"), review)  # fmt: skip
            queued = set(conn.execute(select(QUEUE.c.record_id)).scalars())
            bulk_insert(conn, "consolidation_queue", ("record_id",),
                        [(r,) for r in touched if r not in queued])  # fmt: skip
        conn.execute(RUNS.insert().values(mode="incremental", cleansed_upto=upto,
                                          counts={**counts, **_model_ids(conn)},
                                          finished_at=_now()))  # fmt: skip
    return IncrementalResult(counts, len(review))


class ConcurrentMatch(RuntimeError):
    """Another matching run committed while this one was reading: nothing was written."""


def needs_full_rematch(conn: Connection) -> bool:
    """A full rebuild is due: never matched, a model newer than the last full run, or steward
    labels or overrides newer than the last run."""
    last_full = conn.execute(select(RUNS).where(RUNS.c.mode == "full")
                             .order_by(RUNS.c.id.desc()).limit(1)).first()  # fmt: skip
    if last_full is None:
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


def cluster_state(engine: Engine, config: HubConfig) -> ClusterState:
    """What the asset checks verify: every current record in exactly one cluster, no giant."""
    with engine.connect() as conn:
        # Records to cluster: source records whose current version was cleansed (one whose
        # current version is quarantined has nothing to match on).
        records = conn.execute(select(func.count()).select_from(_CURRENT)).scalar_one()
        clustered, distinct = conn.execute(
            select(func.count(), func.count(CLUSTERS.c.record_id.distinct())).select_from(
                CLUSTERS.join(SOURCES, SOURCES.c.id == CLUSTERS.c.record_id)
            )
        ).one()
        big = conn.execute(
            select(CLUSTERS.c.cluster_id, func.count())
            .group_by(CLUSTERS.c.cluster_id)
            .having(func.count() > config.matching.max_cluster_size)
        ).all()
    return ClusterState(int(records), int(clustered), int(distinct), {k: int(n) for k, n in big})


def pending_review(conn: Connection, limit: int) -> list[Any]:
    """Pending pairs, the most uncertain first."""
    return conn.execute(
        select(REVIEW).where(REVIEW.c.status == "pending")
        .order_by(func.abs(REVIEW.c.score - 0.5), REVIEW.c.id).limit(limit)
    ).all()  # fmt: skip


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
