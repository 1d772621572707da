"""Matching one proposed record against the hub, writing nothing (``POST /v1/match``, the
write gate): dedupe's ``Gazetteer`` idea on our own index.

The proposed record's blocking keys are looked up in the persisted index (giant blocks left out
as the batch path leaves them out), the records found are scored against it by the same scorer
the incremental run uses (rules, the stored model, the hub-wide frequencies, the caps), and each
candidate explains itself field by field. So a record that the batch matcher would pair with a
hub record gets the same score here, up to the frequency of its own values (counted once more).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from mdm_orchestration.config import HubConfig
from mdm_orchestration.matching.blocking import index_entries
from mdm_orchestration.matching.engine import PairScorer
from mdm_orchestration.matching.explain import Explanation
from mdm_orchestration.matching.frequencies import INDEX_PREFIX
from mdm_orchestration.matching.frequency_store import hub_frequencies, index_delta
from mdm_orchestration.matching.model import MatchModel
from mdm_orchestration.matching.neighbourhood import neighbours, stored_index
from mdm_orchestration.matching.records import match_frame
from mdm_orchestration.matching.steward import current_cleansed

AUTO, REVIEW, NONE = "auto", "review", "none"


@dataclass(frozen=True)
class Candidate:
    """A hub record the proposed one may be: its score and band."""

    record_id: str
    score: float
    band: str
    by_rule: bool


@dataclass
class OnlineMatch:
    """The candidates of one proposed record, best first, and what explains them."""

    candidates: list[Candidate]
    _position: dict[str, int] = field(default_factory=dict)
    #: the scorer that scored them (its explanations need no second one)
    _scorer: PairScorer | None = None

    def explain(self, record_id: str) -> Explanation | None:
        """Why the proposed record and candidate ``record_id`` score as they do."""
        j = self._position.get(record_id)
        if j is None or self._scorer is None:
            return None
        return self._scorer.explain(0, j)


def band_of(score: float, threshold: float, review_low: float) -> str:
    """``auto`` at or above the clustering threshold (the batch matcher would cluster the two),
    ``review`` from the review band's lower bound up to it, ``none`` below."""
    if score >= threshold:
        return AUTO
    if score >= review_low:
        return REVIEW
    return NONE


def match_threshold(config: HubConfig, model: MatchModel) -> float:
    """The clustering threshold: the configured one, else the model's."""
    t = config.matching.threshold
    return float(t if t is not None else model.threshold)


def match_one(
    conn: Connection,
    config: HubConfig,
    models: dict[str, MatchModel],
    cleansed: pd.DataFrame,
    *,
    exclude: frozenset[str] = frozenset(),
) -> OnlineMatch:
    """Candidates for the one cleansed record in ``cleansed`` (a frame of cleansing's record
    columns), best first. Records in ``exclude`` (the proposed record's own id, when it is an
    update) are left out. Reads only."""
    m = config.matching
    proposed = str(cleansed["source_record_id"].iloc[0])
    party = str(cleansed["party_type"].iloc[0])
    if party not in models:
        return OnlineMatch([])
    mine = match_frame(cleansed)
    index = index_entries(mine, party)
    blocks = [(n, h) for _r, n, h in index if not n.startswith(INDEX_PREFIX)]
    extra = Counter(blocks)
    keys = set(blocks)
    gone = set(exclude) | {proposed}
    near = neighbours(conn, keys, gone, m.max_block_size, extra) if keys else set()
    if not near:
        return OnlineMatch([])
    hub = current_cleansed(conn, sorted(near))
    hub = hub[hub["party_type"] == party].reset_index(drop=True)
    if hub.empty:
        return OnlineMatch([])
    around = pd.concat([mine, match_frame(hub)], ignore_index=True)
    # Counted as if the proposed record replaced its stored version (an update of a record
    # the hub holds) or joined the hub (a new one).
    freq = hub_frequencies(conn, around, index_delta(index, stored_index(conn, {proposed})))
    # Every record of ``around`` shares a block of at most max_block_size records with the
    # proposed one (``neighbours`` left the giant blocks out, by their hub size, as
    # ``candidate_pairs`` would): the candidate pairs are (0, each of them).
    right = np.arange(1, len(around), dtype=np.int64)
    left = np.zeros(len(right), dtype=np.int64)
    if not len(left):
        return OnlineMatch([])
    model = models[party]
    scorer = PairScorer(around, party, model, m, freq)
    scored = scorer(left, right)
    scores, by_rule = scored.scores, scored.by_rule
    threshold = match_threshold(config, model)
    order = np.lexsort((right, -scores))
    ids = around["record_id"].tolist()
    candidates = [
        Candidate(
            record_id=ids[int(right[k])],
            score=round(float(scores[k]), 4),
            band=band_of(float(scores[k]), threshold, m.review_band[0]),
            by_rule=bool(by_rule[k]),
        )
        for k in order.tolist()
    ]
    position = {ids[int(j)]: int(j) for j in right.tolist()}
    return OnlineMatch(candidates, position, scorer)
