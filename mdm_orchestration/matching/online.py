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
from mdm_orchestration.matching.frequencies import (
    INDEX_PREFIX,
    Frequencies,
    GroupedFrequencies,
    record_terms,
)
from mdm_orchestration.matching.frequency_store import (
    index_delta,
    stored_counts,
    term_keys,
    with_delta,
)
from mdm_orchestration.matching.model import MatchModel
from mdm_orchestration.matching.neighbourhood import block_members, neighbours_in, stored_index
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
    #: candidate record id -> its row in the scorer's records
    _position: dict[str, int] = field(default_factory=dict)
    #: the scorer that scored them (its explanations need no second one)
    _scorer: PairScorer | None = None
    #: the proposed record's row in the scorer's records
    _left: int = 0


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
    return match_many(conn, config, models, cleansed, [exclude])[0]


def match_many(
    conn: Connection,
    config: HubConfig,
    models: dict[str, MatchModel],
    cleansed: pd.DataFrame,
    excludes: list[frozenset[str]] | None = None,
) -> list[OnlineMatch]:
    """:func:`match_one` of each record of ``cleansed``, each answer the same as if it were
    asked alone (the hub is read once for all: their blocks, neighbours and term counts; each
    is scored against its own neighbours with its own values counted once more). ``excludes``:
    per record, as :func:`match_one`'s ``exclude``."""
    return match_many_of(conn, config, models, match_frame(cleansed), excludes)


def match_many_of(
    conn: Connection,
    config: HubConfig,
    models: dict[str, MatchModel],
    mine: pd.DataFrame,
    excludes: list[frozenset[str]] | None = None,
) -> list[OnlineMatch]:
    """:func:`match_many` of the proposed records' match frame (``match_frame``'s, or
    ``match_frame_of_values``' of records the service cleansed value by value)."""
    m = config.matching
    mine = mine.reset_index(drop=True)
    n = len(mine)
    excludes = excludes if excludes is not None else [frozenset()] * n
    out = [OnlineMatch([]) for _ in range(n)]
    proposed = [str(v) for v in mine["record_id"].tolist()]
    parties = [str(v) for v in mine["party_type"].tolist()]
    asked = [i for i in range(n) if parties[i] in models]
    if not asked:
        return out
    # Blocking keys per proposal, found through their positions (two proposals may carry the
    # same record id: an update asked twice).
    index: list[list[tuple[str, str, str]]] = [[] for _ in range(n)]
    for party in sorted({parties[i] for i in asked}):
        rows = [i for i in asked if parties[i] == party]
        frame = mine.iloc[rows].assign(record_id=[str(i) for i in rows])
        for at, name, h in index_entries(frame, party):
            index[int(at)].append((proposed[int(at)], name, h))
    blocks = {i: [(k, h) for _r, k, h in index[i] if not k.startswith(INDEX_PREFIX)] for i in asked}
    members = block_members(conn, {h for i in asked for _k, h in blocks[i]})
    near = {
        i: neighbours_in(
            members,
            set(blocks[i]),
            set(excludes[i]) | {proposed[i]},
            m.max_block_size,
            Counter(blocks[i]),
        )
        for i in asked
    }
    hub = current_cleansed(conn, sorted(set().union(*near.values())))
    if hub.empty:
        return out
    hub_frame = match_frame(hub)
    hub_ids = hub_frame["record_id"].tolist()
    row_of = {rid: k for k, rid in enumerate(hub_ids)}
    hub_party = hub_frame["party_type"].tolist()
    hub_terms: dict[str, list[tuple[str, str, str, str]]] = {}
    for term in record_terms(hub_frame):
        hub_terms.setdefault(term[0], []).append(term)
    stored_by: dict[str, list[tuple[str, str, str]]] = {}
    for entry in stored_index(conn, {proposed[i] for i in asked}):
        stored_by.setdefault(entry[0], []).append(entry)
    # Counted as if the proposed record replaced its stored version (an update of a record
    # the hub holds) or joined the hub (a new one).
    wanted: dict[int, tuple[list[int], set[tuple[str, str, str]], Counter]] = {}
    for i in asked:
        rows = [
            row_of[r] for r in sorted(near[i]) if r in row_of and hub_party[row_of[r]] == parties[i]
        ]
        if not rows:
            continue
        delta = index_delta(index[i], stored_by.get(proposed[i], []))
        own = [
            (proposed[i], parties[i], k, h) for _r, k, h in index[i] if k.startswith(INDEX_PREFIX)
        ]
        terms = own + [t for k in rows for t in hub_terms.get(hub_ids[k], [])]
        wanted[i] = (rows, term_keys(terms) | set(delta), delta)
    stored = stored_counts(conn, set().union(*(w[1] for w in wanted.values()))) if wanted else {}
    # One frame per party type: each proposal followed by its neighbours (a hub record near
    # two proposals is in it twice), scored in one pass, each group with its own counts.
    base = pd.concat([mine, hub_frame], ignore_index=True)
    for party in sorted({parties[i] for i in wanted}):
        group = [i for i in sorted(wanted) if parties[i] == party]
        take: list[int] = []
        spans = []
        for i in group:
            spans.append((len(take), len(take) + 1 + len(wanted[i][0])))
            take += [i, *(n + r for r in wanted[i][0])]
        freq = GroupedFrequencies(
            [
                (a, b, with_delta(stored, wanted[i][1], wanted[i][2]))
                for i, (a, b) in zip(group, spans, strict=True)
            ]
        )
        frame = base.iloc[take].reset_index(drop=True)
        matches = _score_groups(frame, spans, party, models[party], config, freq)
        for i, found in zip(group, matches, strict=True):
            out[i] = found
    return out


def _score_groups(
    frame: pd.DataFrame,
    spans: list[tuple[int, int]],
    party: str,
    model: MatchModel,
    config: HubConfig,
    freq: Frequencies,
) -> list[OnlineMatch]:
    """For each span ``(start, stop)`` of ``frame``: its first record (a proposal) against each
    of the others (its neighbours: every one of them shares a block of at most max_block_size
    records with it, the giant blocks left out by their hub size as ``candidate_pairs`` leaves
    them out)."""
    m = config.matching
    left = np.concatenate([np.full(b - a - 1, a, dtype=np.int64) for a, b in spans])
    right = np.concatenate([np.arange(a + 1, b, dtype=np.int64) for a, b in spans])
    scorer = PairScorer(frame, party, model, m, freq)
    sizes = np.array([b - a - 1 for a, b in spans], dtype=np.int64)
    scored = scorer(left, right, np.cumsum(sizes)[:-1])
    threshold = match_threshold(config, model)
    ids = frame["record_id"].tolist()
    out = []
    at = 0
    for a, b in spans:
        k = slice(at, at + b - a - 1)
        at = k.stop
        scores, by_rule, mine = scored.scores[k], scored.by_rule[k], right[k]
        order = np.lexsort((mine, -scores))
        candidates = [
            Candidate(
                record_id=ids[int(mine[j])],
                score=round(float(scores[j]), 4),
                band=band_of(float(scores[j]), threshold, m.review_band[0]),
                by_rule=bool(by_rule[j]),
            )
            for j in order.tolist()
        ]
        out.append(OnlineMatch(candidates, {ids[j]: j for j in mine.tolist()}, scorer, a))
    return out


def explain_together(asks: list[tuple[OnlineMatch, list[str]]]) -> list[dict[str, Explanation]]:
    """Why each ``(match, record ids)``'s proposed record and those candidates score as they
    do, in one pass per scorer (the matches of one :func:`match_many` call share theirs)."""
    pairs: dict[int, list[tuple[int, int, str]]] = {}
    scorers: dict[int, PairScorer] = {}
    for n, (found, record_ids) in enumerate(asks):
        if found._scorer is None:
            continue
        scorers[id(found._scorer)] = found._scorer
        for rid in dict.fromkeys(record_ids):
            j = found._position.get(rid)
            if j is not None:
                pairs.setdefault(id(found._scorer), []).append((n, j, rid))
    out: list[dict[str, Explanation]] = [{} for _ in asks]
    for key, todo in pairs.items():
        left = np.array([asks[n][0]._left for n, _j, _r in todo], dtype=np.int64)
        right = np.array([j for _n, j, _r in todo], dtype=np.int64)
        for (n, _j, rid), why in zip(todo, scorers[key].explain_pairs(left, right), strict=True):
            out[n][rid] = why
    return out
