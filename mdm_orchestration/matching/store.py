"""Matching against the hub: labels, overrides, models, clusters and the review queue.

Everything here reads and writes the hub through SQLAlchemy Core; the decisions are made by the
pure modules next to it. Clusters are rebuilt in one transaction (a crash leaves the previous
clustering in place); incremental matching is a later step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from mdm_orchestration.config import HubConfig
from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.models import (
    CleansedRecord,
    MatchCluster,
    MatchModelRow,
    MatchOverride,
    ReviewItem,
    SourceRecord,
    TrainingLabel,
    source_record_id,
)
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.matching.blocking import ORGANISATION, PERSON
from mdm_orchestration.matching.engine import MatchResult, match_records
from mdm_orchestration.matching.labels import DEFAULT_LABELS, load_default_labels
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
LABEL_VALUES = ("match", "distinct", "unsure")
#: Each source record's current version, cleansed.
_CURRENT = CLEANSED.join(
    SOURCES,
    and_(
        SOURCES.c.current_extract_id == CLEANSED.c.extract_id,
        SOURCES.c.current_row_number == CLEANSED.c.row_number,
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


def labels_digest(conn: Connection, party_type: str) -> str:
    """Changes whenever the labels a model of ``party_type`` would train on change."""
    h = hashlib.sha256(hashlib.sha256(DEFAULT_LABELS.read_bytes()).digest())
    for row in steward_labels(conn):
        if row[0] == party_type and row[3] != "unsure":
            h.update(json.dumps(row).encode())
    return h.hexdigest()


def training_pairs(conn: Connection, party_type: str) -> tuple[list, list]:
    """Shipped default pairs plus steward-labelled pairs (their current cleansed values)."""
    defaults = load_default_labels()[party_type]
    matches = [tuple(p) for p in defaults["match"]]
    distinct = [tuple(p) for p in defaults["distinct"]]
    labelled = [r for r in steward_labels(conn) if r[0] == party_type and r[3] != "unsure"]
    if labelled:
        ids = sorted({r[1] for r in labelled} | {r[2] for r in labelled})
        frame = match_frame(current_cleansed(conn, ids))
        rows = {rid: rec for rid, rec in zip(frame["record_id"],
                frame[list(FIELDS[party_type])].to_dict("records"), strict=True)}  # fmt: skip
        for _party, left, right, label in labelled:
            if left in rows and right in rows:  # an erased record drops out of training
                (matches if label == "match" else distinct).append((rows[left], rows[right]))
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


def train_models(engine: Engine, *, force: bool = False) -> TrainSummary:
    """Train a model per party type whose labels changed since its last model (or ``force``)."""
    summary = TrainSummary()
    with engine.connect() as conn:
        latest = latest_model_rows(conn)
        todo = {}
        for party in PARTY_TYPES:
            digest = labels_digest(conn, party)
            if force or party not in latest or latest[party].labels_digest != digest:
                todo[party] = (digest, *training_pairs(conn, party))
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


def rebuild_clusters(engine: Engine, config: HubConfig) -> MatchResult:
    """Cluster every current source record; replace the clustering and the pending review
    items in one transaction. Pairs a steward already judged do not come back for review."""
    with engine.connect() as conn:
        models = load_models(conn)
        cleansed = current_cleansed(conn)
        must, cannot = overrides(conn)
        judged = {(a, b) for _p, a, b, _l in steward_labels(conn)} | set(must) | set(cannot)
    result = match_records(cleansed, models, config.matching, must, cannot)
    now = _now()
    with write_transaction(engine) as conn:
        conn.execute(delete(CLUSTERS))
        c = result.clusters
        bulk_insert(conn, "match_clusters",
                    ("record_id", "party_type", "cluster_id", "confidence",
                     "organisation_cluster_id", "clustered_at"),
                    [(r, p, k, float(s), o, now) for r, p, k, s, o in zip(
                        c["record_id"], c["party_type"], c["cluster_id"], c["confidence"],
                        c["organisation_cluster_id"], strict=True)])  # fmt: skip
        conn.execute(delete(REVIEW).where(REVIEW.c.status == "pending"))
        done = {tuple(r) for r in conn.execute(
            select(REVIEW.c.left_record_id, REVIEW.c.right_record_id))}  # fmt: skip
        review = [
            (p, a, b, float(s), "pending", now)
            for a, b, p, s in zip(result.review["left_id"], result.review["right_id"],
                                  result.review["party_type"], result.review["score"], strict=True)
            if (a, b) not in judged and (a, b) not in done
        ]  # fmt: skip
        bulk_insert(conn, "review_queue", ("party_type", "left_record_id", "right_record_id",
                                           "score", "status", "created_at"), review)  # fmt: skip
    result.stats["review_queue"] = len(review)
    return result


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
    """Whether the clustering is stale: no clusters yet, labels changed since the last model,
    or a steward label or override came after the last clustering."""
    clustered_at = conn.execute(select(func.max(CLUSTERS.c.clustered_at))).scalar_one()
    if clustered_at is None:
        return conn.execute(select(func.count()).select_from(_CURRENT)).scalar_one() > 0
    latest = latest_model_rows(conn)
    for party in PARTY_TYPES:
        if party not in latest or latest[party].labels_digest != labels_digest(conn, party):
            return True
    newest = [
        conn.execute(select(func.max(LABELS.c.labelled_at))).scalar_one(),
        conn.execute(select(func.max(OVERRIDES.c.created_at))).scalar_one(),
    ]
    stamp = clustered_at if clustered_at.tzinfo else clustered_at.replace(tzinfo=UTC)
    return any(t is not None and (t if t.tzinfo else t.replace(tzinfo=UTC)) > stamp for t in newest)
