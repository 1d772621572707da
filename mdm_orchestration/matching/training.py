"""The model registry: a model per party type trained on the labels, stored with their digest,
and loaded back verified against the digest of its settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from mdm_orchestration.config import HubConfig, MatchingConfig
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import MODELS, PARTY_TYPES, utcnow
from mdm_orchestration.matching.labels import DEFAULT_LABELS, training_set, uses_defaults
from mdm_orchestration.matching.model import (
    FIELDS,
    MODEL_VERSION,
    MatchModel,
    ModelSignatureError,
    is_signed,
    load_model,
    model_key,
    settings_digest,
    train_model,
)
from mdm_orchestration.matching.records import match_frame
from mdm_orchestration.matching.steward import StewardLabel, current_cleansed, steward_labels


def _training_labels(conn: Connection, party_type: str) -> list[StewardLabel]:
    """The steward labels a model of ``party_type`` trains on (``unsure`` teaches nothing)."""
    return [
        lb for lb in steward_labels(conn) if lb.party_type == party_type and lb.label != "unsure"
    ]


def labels_digest(conn: Connection, party_type: str, suffice: int | None = None) -> str:
    """Changes whenever the labels a model of ``party_type`` would train on change."""
    labelled = _training_labels(conn, party_type)
    n_match = sum(lb.label == "match" for lb in labelled)
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
    labelled = _training_labels(conn, party_type)
    if labelled:
        ids = sorted(
            {lb.left_record_id for lb in labelled} | {lb.right_record_id for lb in labelled}
        )
        frame = match_frame(current_cleansed(conn, ids))
        rows = dict(
            zip(frame["record_id"], frame[list(FIELDS[party_type])].to_dict("records"), strict=True)
        )
        for lb in labelled:
            left, right = lb.left_record_id, lb.right_record_id
            if left in rows and right in rows:  # an erased record drops out of training
                (matches if lb.label == "match" else distinct).append((rows[left], rows[right]))
    n_match = sum(lb.label == "match" for lb in labelled)
    if uses_defaults(n_match, len(labelled) - n_match, suffice):
        return training_set(party_type, matches, distinct, None)
    return matches, distinct


@dataclass
class TrainSummary:
    retrained: dict[str, bool] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    #: Party types retrained because their stored model was unsigned or failed its signature
    #: check (a hub upgraded from before signing, or a model altered in the database).
    unsigned: dict[str, bool] = field(default_factory=dict)


def latest_model_rows(conn: Connection) -> dict[str, Any]:
    out = {}
    for party in PARTY_TYPES:
        row = conn.execute(
            select(MODELS).where(MODELS.c.party_type == party).order_by(MODELS.c.id.desc()).limit(1)
        ).first()
        if row is not None:
            out[party] = row
    return out


def model_ids(conn: Connection) -> dict[str, int]:
    """The id of the newest model per party type (a run records the models it used): the ids
    alone (the service asks on every match; the rows carry each model's whole pickle)."""
    newest = (
        select(MODELS.c.party_type, func.max(MODELS.c.id))
        .where(MODELS.c.party_type.in_(PARTY_TYPES))
        .group_by(MODELS.c.party_type)
    )
    found = dict(conn.execute(newest).all())
    return {p: int(found[p]) for p in PARTY_TYPES if p in found}


def train_models(
    engine: Engine, config: HubConfig | None = None, *, force: bool = False
) -> TrainSummary:
    """Train a model per party type whose labels changed since its last model (or ``force``).
    ``config.matching.own_labels_suffice`` (without ``config``, its default) decides when the
    shipped defaults stop taking part."""
    suffice = (config.matching if config else MatchingConfig()).own_labels_suffice
    summary = TrainSummary()
    key = model_key()
    with engine.connect() as conn:
        latest = latest_model_rows(conn)
        todo = {}
        for party in PARTY_TYPES:
            digest = labels_digest(conn, party, suffice)
            # A stored model the hub cannot vouch for is never loaded: it is replaced by one
            # trained on the labels (checked by its HMAC alone, nothing is unpickled here).
            summary.unsigned[party] = party in latest and not is_signed(
                latest[party].settings, party, key
            )
            if (
                force
                or party not in latest
                or summary.unsigned[party]
                or latest[party].labels_digest != digest
            ):
                todo[party] = (digest, *training_pairs(conn, party, suffice))
    for party in PARTY_TYPES:
        if party not in todo:
            summary.retrained[party] = False
            summary.metrics[party] = dict(latest[party].metrics)
            summary.thresholds[party] = float(latest[party].threshold)
            continue
        digest, matches, distinct = todo[party]
        model = train_model(party, matches, distinct)
        settings = model.to_bytes(key)
        with write_transaction(engine) as conn:
            conn.execute(
                insert(MODELS).values(
                    party_type=party,
                    labels_digest=digest,
                    threshold=model.threshold,
                    settings=settings,
                    settings_sha256=settings_digest(settings),
                    metrics=model.metrics,
                    created_at=utcnow(),
                )
            )
        summary.retrained[party] = True
        summary.metrics[party] = model.metrics
        summary.thresholds[party] = model.threshold
    return summary


class NoModel(LookupError):
    """match_clusters needs a trained model: materialise match_model first."""


class ModelRefused(NoModel):
    """The newest stored model is unsigned, altered or signed with another key: not loaded."""


def load_models(conn: Connection) -> dict[str, MatchModel]:
    """The newest model per party type, verified against the digest the hub recorded and
    against its signature (before it is unpickled): :class:`ModelRefused` otherwise."""
    models = {}
    key = None
    for party, row in latest_model_rows(conn).items():
        if settings_digest(row.settings) != row.settings_sha256:
            raise ModelRefused(
                f"the stored {party} model (match_models id {row.id}) does not match its "
                "recorded digest; it was not loaded; retrain it with `mdm match --force`"
            )
        key = key or model_key()
        try:
            models[party] = load_model(row.settings, key, party_type=party)
        except ModelSignatureError as exc:
            raise ModelRefused(
                f"the stored {party} model (match_models id {row.id}): {exc}"
            ) from None
    missing = set(PARTY_TYPES) - set(models)
    if missing:
        raise NoModel(f"no trained model for {sorted(missing)}: materialise match_model first")
    return models


def thresholds(models: dict[str, MatchModel], config: HubConfig) -> dict[str, float]:
    """The clustering threshold per party type: the configured one, else the model's."""
    t = config.matching.threshold
    return {p: float(t if t is not None else m.threshold) for p, m in models.items()}
