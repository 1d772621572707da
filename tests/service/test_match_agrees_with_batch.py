"""``POST /v1/match`` agrees with the batch matcher on the same pairs: a hub record's own values,
sent in its source's layout (so that the record itself is left out), put the golden record of
its best batch partner on top, in the band of the batch pair's score."""

from __future__ import annotations

import json

import sqlalchemy as sa

from mdm_orchestration.config import load_hub_config
from mdm_orchestration.matching import band_of, load_models, match_threshold
from tests.conftest import CONFIG_DIR
from tests.service.test_api_unit import bearer


def batch_best_partners(
    engine: sa.Engine, party: str, threshold: float, low: float, n: int
) -> list[tuple[str, str, float]]:
    """``(record, its best partner, score)``: ``n`` records whose best batch pair is at or
    above the threshold and ``n`` whose best is in the review band, spread over the scores."""
    with engine.connect() as conn:
        pairs = conn.execute(
            sa.text(
                "SELECT left_record_id, right_record_id, score FROM match_pairs "
                "WHERE party_type = :p"
            ),
            {"p": party},
        ).all()
    best: dict[str, tuple[str, float]] = {}
    for a, b, s in pairs:
        for x, y in ((a, b), (b, a)):
            if x not in best or s > best[x][1]:
                best[x] = (y, float(s))
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][1], kv[0]))
    out = []
    for lo, hi in ((threshold, 2.0), (low, threshold)):
        stratum = [(r, p, s) for r, (p, s) in ranked if lo <= s < hi]
        step = max(1, len(stratum) // n)
        out += stratum[::step][:n]
    return out


def raw_of(engine: sa.Engine, record_id: str) -> tuple[str, dict]:
    with engine.connect() as conn:
        source, raw = conn.execute(
            sa.text(
                "SELECT s.source, v.raw FROM source_records s JOIN source_record_versions v ON "
                "v.extract_id = s.current_extract_id AND v.row_number = s.current_row_number "
                "WHERE s.id = :r"
            ),
            {"r": record_id},
        ).one()
    return source, json.loads(raw) if isinstance(raw, str) else raw


def check_agreement(client, hub_engine: sa.Engine, api_key: str) -> None:  # type: ignore[no-untyped-def]
    """The comparison, through any HTTP client (in-process here; a real server in
    test_http.py)."""
    config = load_hub_config(CONFIG_DIR)
    with hub_engine.connect() as conn:
        models = load_models(conn)
        golden_of = dict(
            conn.execute(sa.text("SELECT record_id, golden_id FROM golden_xref")).all()
        )
    compared = agreed = 0
    bands: set[str] = set()
    misses = []
    for party in ("person", "organisation"):
        threshold = match_threshold(config, models[party])
        low = config.matching.review_band[0]
        for record, partner, score in batch_best_partners(hub_engine, party, threshold, low, 5):
            expected = (golden_of[partner], band_of(score, threshold, low))
            bands.add(expected[1])
            source, raw = raw_of(hub_engine, record)
            r = client.post(f"/v1/match?source={source}", headers=bearer(api_key), json=raw)
            assert r.status_code == 200, r.text
            candidates = r.json()["candidates"]
            got = (candidates[0]["golden_id"], candidates[0]["band"]) if candidates else None
            compared += 1
            if got == expected:
                agreed += 1
            else:
                misses.append((record, expected, got, score, candidates[:2]))
    assert compared >= 10 and bands == {"auto", "review"}
    assert agreed == compared, misses


def test_match_agrees_with_the_batch_matcher(client, hub_engine, api_key):
    check_agreement(client, hub_engine, api_key)
