"""Match a set of cleansed records into clusters: blocking, rules, model, clustering.

Pure: cleansed records, trained models and steward overrides in; a cluster per record, the
pairs for review and counts out. Persons and organisations are matched apart; each B2B contact
is linked to its organisation's cluster (through the source's own organisation key, else through
an employer name that names exactly one organisation cluster).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mdm_orchestration.config import MatchingConfig
from mdm_orchestration.hub.tables import ORGANISATION, PERSON, component_labels
from mdm_orchestration.matching.blocking import Candidates, block_pairs, candidate_pairs
from mdm_orchestration.matching.clustering import cluster_pairs
from mdm_orchestration.matching.explain import Explanation, explain_pair, with_engine_terms
from mdm_orchestration.matching.frequencies import Frequencies, field_values
from mdm_orchestration.matching.model import FIELDS, FieldColumns, MatchModel
from mdm_orchestration.matching.records import match_frame
from mdm_orchestration.matching.review_queue import REVIEW_ITEM_COLUMNS, max_pending, review_items
from mdm_orchestration.matching.rules import (
    Columns,
    apply_rules,
    contradicting,
    contradicting_organisation,
    corroborated,
    corroborated_organisation,
    different_valid_ids,
    distinct_names,
    same_values,
)


@dataclass
class ScoredPairs:
    """Scored pairs of one party type's records: positions into ``ids``."""

    party_type: str
    ids: np.ndarray
    left: np.ndarray
    right: np.ndarray
    scores: np.ndarray
    by_rule: np.ndarray

    def rows(self, floor: float) -> list[tuple[str, str, str, float, bool]]:
        """``(left id, right id, party, score, by rule)`` with the ids in order, for the pairs
        that score at least ``floor``."""
        keep = np.nonzero(self.scores >= floor)[0]
        a, b = self.ids[self.left[keep]], self.ids[self.right[keep]]
        return [
            (x, y, self.party_type, round(float(s), 4), bool(r))
            if x < y
            else (y, x, self.party_type, round(float(s), 4), bool(r))
            for x, y, s, r in zip(
                a.tolist(),
                b.tolist(),
                self.scores[keep].tolist(),
                self.by_rule[keep].tolist(),
                strict=True,
            )
        ]


@dataclass
class MatchResult:
    #: record_id, party_type, cluster_id, confidence, organisation_cluster_id
    clusters: pd.DataFrame
    #: left_id, right_id, party_type, score: pairs in the review band
    review: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)
    #: every pair scored, per party type (kept by the hub for incremental runs)
    pairs: list[ScoredPairs] = field(default_factory=list)


def _positions(records: pd.DataFrame, pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    where = {rid: i for i, rid in enumerate(records["record_id"].tolist())}
    return [(where[a], where[b]) for a, b in pairs if a in where and b in where and a != b]


@dataclass
class PairScores:
    scores: np.ndarray
    by_rule: np.ndarray
    weak: np.ndarray
    rule_counts: dict[str, int]
    #: rule name -> the pairs it matched (what ``rule_counts`` counts)
    rule_masks: dict[str, np.ndarray] = field(default_factory=dict)


class PairScorer:
    """Rules, the model, the frequency adjustments and the caps over index pairs of one party's
    records.

    Persons: an agreement on a common value (a given name thousands hold) is weighed down by its
    hub-wide count; a pair agreeing on nothing but the name is capped below the threshold unless
    the name is rare in the hub (``rare_name_records``); two valid national ids that differ are
    two people. Organisations: the name is never evidence on its own (a registration id, a
    domain, a phone or street plus postcode must agree); different countries, registration ids
    or legal-form families are two legal entities; names each holding a distinctive word the
    other lacks go to review."""

    def __init__(
        self,
        records: pd.DataFrame,
        party_type: str,
        model: MatchModel,
        config: MatchingConfig,
        frequencies: Frequencies | None = None,
    ) -> None:
        self.records, self.model, self.config = records, model, config
        #: the records' columns as arrays, read once for every rule and cap
        self.values = Columns(records)
        self.party_type = party_type
        # The compared fields as coded columns, not a dict per record (at 1M records those
        # dicts took gigabytes).
        self.columns = FieldColumns.of_frame(self.values, FIELDS[party_type])
        self.threshold = config.threshold if config.threshold is not None else model.threshold
        freq = frequencies if frequencies is not None else Frequencies.of_frame(records)
        if party_type == PERSON:
            self.counts = {
                f: freq.per_record(records, PERSON, f) for f in config.term_frequencies.weights
            }
            # A record without a full name has no name to be rare: never "rare".
            self.name_count = (
                self.counts["full_name"].copy()
                if "full_name" in self.counts
                else freq.per_record(records, PERSON, "full_name")
            )
            self.name_count[self.name_count == 0] = config.rare_name_records + 1
        else:
            tokens = np.empty(len(records), dtype=object)
            tokens[:] = field_values(records, "token")
            self.tokens = tokens
            self.token_counts = freq.per_record(records, ORGANISATION, "token")

    def adjustments(self, left: np.ndarray, right: np.ndarray) -> dict[str, np.ndarray]:
        """Named log-odds terms added to the model's score of each pair (explanations show
        them): ``frequency:<field>`` for agreements on common values, ``invalid_phone`` for the
        same digits of a phone that failed validation."""
        out: dict[str, np.ndarray] = {}
        if self.party_type == PERSON:
            out.update(self._frequency_terms(left, right))
        digits = same_values(self.values, "phone_digits", left, right)
        if digits.any() and self.config.invalid_phone_weight:
            out["invalid_phone"] = np.where(digits, self.config.invalid_phone_weight, 0.0)
        return out

    def _frequency_terms(self, left: np.ndarray, right: np.ndarray) -> dict[str, np.ndarray]:
        """``frequency:<field>``: the log-odds an agreement on a common value loses (see
        :class:`~mdm_orchestration.config.TermFrequencyConfig`): the full name in place of its
        parts when both agree, the town only where the postcode does not also agree, nothing
        for a pair that agrees on an identifying value."""
        tf = self.config.term_frequencies
        weighed = {f for f, w in tf.weights.items() if w > 0}
        needed = weighed | ({"given_key", "family"} if "full_name" in weighed else set())
        if "city" in weighed and "postcode" in weighed:
            needed.add("postcode")
        agree = {f: same_values(self.values, f, left, right) for f in needed - {"full_name"}}
        if "full_name" in weighed:
            both = agree["given_key"] & agree["family"]
            agree["full_name"] = both
            agree["given_key"] = agree["given_key"] & ~both
            agree["family"] = agree["family"] & ~both
        if "city" in weighed and "postcode" in weighed:
            agree["city"] = agree["city"] & ~agree["postcode"]
        lifted = np.zeros(len(left), dtype=bool)
        for name in tf.identifying:
            lifted |= same_values(self.values, name, left, right)
        out: dict[str, np.ndarray] = {}
        total = np.zeros(len(left), dtype=np.float64)
        for name, weight in tf.weights.items():
            if name not in weighed:
                continue
            mask = agree[name] & ~lifted
            if not mask.any():
                continue
            level = np.floor(np.log2(np.maximum(self.counts[name][left], 1)))
            penalty = np.minimum(weight * np.maximum(level - tf.reference(name), 0), tf.max_penalty)
            penalty = np.minimum(
                np.where(mask, penalty, 0.0), np.maximum(tf.max_total_penalty - total, 0.0)
            )
            total += penalty
            if penalty.any():
                out[f"frequency:{name}"] = -penalty
        return out

    def caps(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(weak, contradicted)``: pairs capped below the threshold (not enough evidence) and
        pairs that are two parties whatever the model says."""
        if self.party_type == PERSON:
            rare = (
                np.minimum(self.name_count[left], self.name_count[right])
                <= self.config.rare_name_records
            )
            weak = ~corroborated(self.values, left, right) & ~rare
            return weak, different_valid_ids(self.values, left, right)
        weak = ~corroborated_organisation(self.values, left, right)
        named = np.nonzero(~weak)[0]
        weak[named] = distinct_names(
            self.tokens,
            self.token_counts,
            left[named],
            right[named],
            self.config.organisation_name_agreement,
        ) & ~same_values(self.values, "national_id", left[named], right[named])
        return weak, contradicting_organisation(self.values, left, right)

    def __call__(
        self, left: np.ndarray, right: np.ndarray, groups: np.ndarray | None = None
    ) -> PairScores:
        """Scores of the pairs ``left[k], right[k]``. ``groups``: the positions where groups of
        pairs start after the first (``POST /v1/match``'s proposals of one batch): the model is
        asked group by group, so each group's scores are bit for bit those it gets alone (the
        model's last bits vary with how many pairs it scores at once)."""
        rule_masks = apply_rules(self.values, left, right, self.config.rules)
        weak, contradicted = self.caps(left, right)
        by_rule = np.zeros(len(left), dtype=bool)
        for name, mask in rule_masks.items():
            rule_masks[name] = mask & ~contradicted
            by_rule |= rule_masks[name]
        scores = np.ones(len(left), dtype=np.float32)
        todo = np.nonzero(~by_rule)[0]
        if len(todo):
            raw = self._model_scores(left[todo], right[todo], todo, groups)
            terms = self.adjustments(left[todo], right[todo])
            if terms:
                logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1))
                raw = 1.0 / (1.0 + np.exp(-(logit + sum(terms.values()))))
            scores[todo] = raw
        # Not enough evidence: left to a steward (just below the threshold); two parties: 0.
        weak &= ~by_rule
        scores[weak] = np.minimum(scores[weak], max(self.threshold - 0.01, 0.0))
        scores[contradicted] = 0.0
        return PairScores(
            scores, by_rule, weak, {k: int(m.sum()) for k, m in rule_masks.items()}, rule_masks
        )

    def _model_scores(
        self, left: np.ndarray, right: np.ndarray, at: np.ndarray, groups: np.ndarray | None
    ) -> np.ndarray:
        if groups is None or not len(groups):
            return self.model.score_indexed(self.columns, left, right).astype(np.float64)
        cuts = np.searchsorted(at, groups)
        parts = [
            self.model.score_indexed(self.columns, lo, hi).astype(np.float64)
            for lo, hi in zip(np.split(left, cuts), np.split(right, cuts), strict=True)
            if len(lo)
        ]
        return np.concatenate(parts)

    def explain(self, i: int, j: int) -> Explanation:
        """Why records ``i`` and ``j`` score as :meth:`__call__` scores them: the model's
        fields, the frequency adjustments, a rule, the caps."""
        return self.explain_pairs(np.array([i]), np.array([j]))[0]

    def explain_pairs(self, left: np.ndarray, right: np.ndarray) -> list[Explanation]:
        """:meth:`explain` of each pair, the caps, rules and adjustments computed once for all
        of them."""
        weak, contradicted = self.caps(left, right)
        masks = apply_rules(self.values, left, right, self.config.rules)
        terms = self.adjustments(left, right)
        out = []
        for k, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
            rules = [name for name, m in masks.items() if m[k]]
            out.append(
                with_engine_terms(
                    explain_pair(self.model, self.columns.row(i), self.columns.row(j)),
                    # a term only where it moves this pair (as when explained alone)
                    {name: float(v[k]) for name, v in terms.items() if v[k]},
                    weak=bool(weak[k]),
                    contradicted=bool(contradicted[k]),
                    rule=rules[0] if rules and not contradicted[k] else None,
                    threshold=self.threshold,
                )
            )
        return out


def explain_records(
    records: pd.DataFrame,
    party_type: str,
    model: MatchModel,
    config: MatchingConfig,
    frequencies: Frequencies,
    i: int,
    j: int,
) -> Explanation:
    """Why records ``i`` and ``j`` of ``records`` (a match frame of one party type) score as the
    engine scores them: the model's fields, the frequency adjustments, a rule, the caps."""
    return PairScorer(
        records.reset_index(drop=True), party_type, model, config, frequencies
    ).explain(i, j)


def _missing_pairs_in_components(
    n: int, left: np.ndarray, right: np.ndarray, linked: np.ndarray, max_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs inside each connected component of ``linked`` pairs that blocking did not produce.

    dedupe's clustering reads a missing pair as "completely different", so one person's five
    records, of which only some share a key, would be split apart; scoring the rest of the pairs
    inside each (small) component lets the clustering see them.
    """
    component = component_labels(n, left[linked], right[linked])
    # The linked records in the order a set of them iterates (the order the pairs were always
    # listed in), grouped by component in order of first appearance, ascending inside each.
    nodes = np.fromiter(set(left[linked].tolist()) | set(right[linked].tolist()), dtype=np.int64)
    group, _ = pd.factorize(component[nodes])
    size = np.bincount(group) if len(group) else np.zeros(0, dtype=np.int64)
    kept = (size[group] >= 3) & (size[group] <= max_size)
    extra_l, extra_r = block_pairs(group[kept], nodes[kept])
    el, er = extra_l.astype(np.int64), extra_r.astype(np.int64)
    # Drop the pairs blocking already produced (as int64 codes: a set of millions of tuples
    # would cost hundreds of megabytes). The few new pairs are sorted and the millions of
    # scored ones looked up in them (np.isin would sort all of them: seconds at 1M records).
    codes = el * n + er
    if not len(codes):
        return el, er
    order = np.argsort(codes, kind="stable")
    ranked = codes[order]
    scored = left.astype(np.int64) * n + right
    at = np.minimum(np.searchsorted(ranked, scored), len(ranked) - 1)
    found = np.zeros(len(ranked), dtype=bool)
    found[at[ranked[at] == scored]] = True
    new = np.empty(len(codes), dtype=bool)
    new[order] = ~found
    return el[new], er[new]


@dataclass
class PartyMatch:
    """One party type's clustering, plus every pair it scored (positions into the records)."""

    clusters: pd.DataFrame
    review: pd.DataFrame
    stats: dict[str, Any]
    left: np.ndarray
    right: np.ndarray
    scores: np.ndarray
    by_rule: np.ndarray


def match_party(
    records: pd.DataFrame,
    party_type: str,
    model: MatchModel,
    config: MatchingConfig,
    must_link: list[tuple[str, str]],
    cannot_link: list[tuple[str, str]],
    block_sizes: Mapping[tuple[str, str], int] | None = None,
    frequencies: Frequencies | None = None,
) -> PartyMatch:
    """Cluster the records of one party type. ``records`` from :func:`match_frame`;
    ``frequencies``: hub-wide value counts (default: ``records``' own, the whole hub in a full
    rebuild)."""
    records = records.reset_index(drop=True)
    cands = candidate_pairs(records, party_type, config.max_block_size, block_sizes)
    scorer = PairScorer(records, party_type, model, config, frequencies)
    scored = scorer(cands.left, cands.right)
    return cluster_candidates(
        records, party_type, model, config, cands, scored, scorer, must_link, cannot_link
    )


def cluster_candidates(
    records: pd.DataFrame,
    party_type: str,
    model: MatchModel,
    config: MatchingConfig,
    cands: Candidates,
    scored: PairScores,
    scorer: PairScorer,
    must_link: list[tuple[str, str]],
    cannot_link: list[tuple[str, str]],
) -> PartyMatch:
    """:func:`cluster_scored` over a party's scored candidate pairs, with the blocking's and
    the scoring's counts in its statistics: what :func:`match_party` does after scoring, and
    what the partitioned rebuild does with the pairs its partitions scored."""
    out = cluster_scored(
        records,
        party_type,
        model,
        config,
        cands.left,
        cands.right,
        scored.scores,
        scored.by_rule,
        must_link,
        cannot_link,
        scorer,
    )
    out.stats.update(
        {
            "candidate_pairs": len(cands),
            "pairs_by_blocking_key": cands.pairs_by_key,
            "giant_blocks_skipped": {k: v for k, v in cands.giant_blocks.items() if v},
            "rule_matches": scored.rule_counts,
            "model_scored_pairs": int((~scored.by_rule).sum()),
        }
    )
    out.stats["uncorroborated_pairs_capped"] += int(scored.weak.sum())
    return out


def score_pairs(
    records: pd.DataFrame,
    party_type: str,
    model: MatchModel,
    config: MatchingConfig,
    left: np.ndarray,
    right: np.ndarray,
    frequencies: Frequencies | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rules and model over the given pairs of ``records`` (positions): scores and by-rule."""
    scored = PairScorer(records, party_type, model, config, frequencies)(left, right)
    return scored.scores, scored.by_rule


def cluster_scored(
    records: pd.DataFrame,
    party_type: str,
    model: MatchModel,
    config: MatchingConfig,
    left: np.ndarray,
    right: np.ndarray,
    scores: np.ndarray,
    by_rule: np.ndarray,
    must_link: list[tuple[str, str]],
    cannot_link: list[tuple[str, str]],
    scorer: PairScorer | None = None,
    frequencies: Frequencies | None = None,
    review_limit: int | None = None,
) -> PartyMatch:
    """From scored pairs to clusters: score the missing pairs inside each component, keep
    contradicting pairs apart, cluster, and pick the pairs for review. ``records`` (positions
    0..n-1) are whole components of the match graph; the incremental path passes the pairs it
    kept from earlier runs and re-scores only those it has not."""
    scorer = scorer or PairScorer(records, party_type, model, config, frequencies)
    n = len(records)
    threshold = scorer.threshold
    extra_l, extra_r = _missing_pairs_in_components(
        n, left, right, scores >= threshold, config.max_cluster_size * 4
    )
    extra = scorer(extra_l, extra_r)
    left = np.concatenate([left, extra_l])
    right = np.concatenate([right, extra_r])
    scores = np.concatenate([scores, extra.scores])
    by_rule = np.concatenate([by_rule, extra.by_rule])
    # Pairs that contradict each other (birth dates, national ids) are never clustered together,
    # even through a third record that resembles both; steward cannot-links join them.
    linked = scores >= threshold
    if party_type == PERSON:
        contra = contradicting(records, left[~linked], right[~linked], config.birth_year_gap)
    else:
        contra = contradicting_organisation(records, left[~linked], right[~linked])
    cannot = _positions(records, cannot_link) + list(
        zip(left[~linked][contra].tolist(), right[~linked][contra].tolist(), strict=True)
    )
    # A pair agreeing on nothing but the name is no evidence for the clustering either: at its
    # capped score (just below the threshold) average linkage would let many such pairs carry a
    # group over the line (at 1M generated records: pairwise precision 0.957 -> 0.971).
    evidence = scores
    below = np.nonzero(~linked & ~by_rule)[0]
    if len(below):
        weak = below[scorer.caps(left[below], right[below])[0]]
        evidence = scores.copy()
        evidence[weak] = 0.0
    clustering = cluster_pairs(
        n,
        left,
        right,
        evidence,
        threshold,
        must_link=_positions(records, must_link),
        cannot_link=cannot,
    )
    ids = records["record_id"].to_numpy(object)
    root = pd.Series(ids).groupby(clustering.cluster_of).transform("min").to_numpy(object)
    clusters = pd.DataFrame(
        {
            "record_id": ids,
            "party_type": party_type,
            "cluster_id": root,
            "confidence": np.round(clustering.confidence, 4),
        }
    )
    low, high = config.review_band
    band = (scores >= low) & (scores < high) & ~by_rule
    review = review_items(
        ids,
        left,
        right,
        scores,
        by_rule,
        clustering.cluster_of,
        config.review_band,
        threshold,
        max_items=review_limit
        if review_limit is not None
        else max_pending(n, config.review_max_share),
        party_type=party_type,
    )
    sizes = Counter(Counter(clustering.cluster_of.tolist()).values())
    stats = {
        "records": n,
        "component_pairs_added": len(extra_l),
        "contradicting_pairs_kept_apart": int(contra.sum()),
        "uncorroborated_pairs_capped": int(extra.weak.sum()),
        "pairs_at_or_above_threshold": int((scores >= threshold).sum()),
        "threshold": float(threshold),
        "clusters": int(clustering.cluster_of.max() + 1) if n else 0,
        "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
        "largest_cluster": max(sizes) if sizes else 0,
        "review_pairs": int(band.sum()),
        "review_items": len(review),
    }
    return PartyMatch(clusters, review, stats, left, right, scores, by_rule)


#: The columns of the match frame that :func:`assemble` reads (the organisation links).
LINK_COLUMNS = ["record_id", "party_type", "organisation_record_id", "employer", "company"]


def party_frames(cleansed: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The :data:`LINK_COLUMNS` of the match frame of cleansed records, and its records of
    each party type (positions from 0, only the party types present), as
    :func:`match_records` matches them. The rest of the whole match frame is not kept: the
    party frames hold the same values (at 1M records its other columns were some 250 MB)."""
    frame = match_frame(cleansed)
    subs = {}
    for party in (PERSON, ORGANISATION):
        sub = frame[frame["party_type"] == party].reset_index(drop=True)
        if not sub.empty:
            subs[party] = sub
    return frame[LINK_COLUMNS].copy(), subs


def match_records(
    cleansed: pd.DataFrame,
    models: dict[str, MatchModel],
    config: MatchingConfig,
    must_link: list[tuple[str, str]] = (),  # type: ignore[assignment]
    cannot_link: list[tuple[str, str]] = (),  # type: ignore[assignment]
    block_sizes: Mapping[tuple[str, str], int] | None = None,
    known_organisations: pd.DataFrame | None = None,
) -> MatchResult:
    """Cluster cleansed records (one current record per source record).

    For incremental matching, ``block_sizes`` (see
    :func:`~mdm_orchestration.matching.blocking.candidate_pairs`) and ``known_organisations``
    (``record_id``, ``company``, ``cluster_id`` of organisations outside ``cleansed``, which
    contacts may link to) describe the rest of the hub."""
    frame, subs = party_frames(cleansed)
    parts = {
        party: (
            sub,
            match_party(
                sub, party, models[party], config, list(must_link), list(cannot_link), block_sizes
            ),
        )
        for party, sub in subs.items()
    }
    return assemble(frame, parts, known_organisations)


def assemble(
    frame: pd.DataFrame,
    parts: dict[str, tuple[pd.DataFrame, PartyMatch]],
    known_organisations: pd.DataFrame | None = None,
) -> MatchResult:
    """One result from the party types' clusterings (``frame``: their records, a match frame),
    with each contact linked to its organisation's cluster."""
    columns = ["record_id", "party_type", "cluster_id", "confidence"]
    clusters = (
        pd.concat([m.clusters for _s, m in parts.values()], ignore_index=True)
        if parts
        else pd.DataFrame(columns=columns)
    )
    clusters["organisation_cluster_id"] = _organisation_links(frame, clusters, known_organisations)
    review = (
        pd.concat([m.review for _s, m in parts.values()], ignore_index=True)
        if parts
        else pd.DataFrame(columns=["party_type", *REVIEW_ITEM_COLUMNS])
    )
    stats: dict[str, Any] = {party: m.stats for party, (_s, m) in parts.items()}
    stats["contacts_linked_to_organisations"] = int(
        clusters["organisation_cluster_id"].notna().sum()
    )
    # The ids copied out of the party's frame: a view would keep all of its columns alive
    # for as long as the result (the whole write).
    pairs = [
        ScoredPairs(
            party,
            sub["record_id"].to_numpy(object, copy=True),
            m.left,
            m.right,
            m.scores,
            m.by_rule,
        )
        for party, (sub, m) in parts.items()
    ]
    return MatchResult(clusters=clusters, review=review, stats=stats, pairs=pairs)


def _organisation_links(
    frame: pd.DataFrame, clusters: pd.DataFrame, known: pd.DataFrame | None = None
) -> list[str | None]:
    cluster_of = dict(zip(clusters["record_id"], clusters["cluster_id"], strict=True))
    orgs = frame[frame["party_type"] == ORGANISATION]
    by_name: dict[str, set[str]] = {}
    for rid, key in zip(orgs["record_id"], orgs["company"], strict=True):
        if key:
            by_name.setdefault(key, set()).add(cluster_of[rid])
    if known is not None:
        for rid, key, cluster in zip(
            known["record_id"], known["company"], known["cluster_id"], strict=True
        ):
            if rid in cluster_of:
                continue
            cluster_of[rid] = cluster
            if key:
                by_name.setdefault(key, set()).add(cluster)
    out: list[str | None] = []
    # Plain dicts: a pandas lookup per record took seconds at 100k records.
    org_record_of = dict(zip(frame["record_id"], frame["organisation_record_id"], strict=True))
    employer_of = dict(zip(frame["record_id"], frame["employer"], strict=True))
    for rid, party in zip(clusters["record_id"], clusters["party_type"], strict=True):
        link = None
        if party == PERSON:
            org_record = org_record_of[rid]
            if org_record and org_record in cluster_of:
                link = cluster_of[org_record]
            else:
                employer = employer_of[rid]
                named = by_name.get(employer) if employer else None
                if named and len(named) == 1:
                    link = next(iter(named))
        out.append(link)
    return out
