"""Labelled pairs: the shipped default set, and how it is produced reproducibly.

The default set comes from generated silos with ground truth: candidate pairs found by our own
blocking, labelled by the truth (match when both records belong to one person or organisation),
sampled evenly, plus synthesised traps the generator does not make on its own (a father and son
sharing a name, an address and a home phone, with different birth dates). Records in the file
are comparison fields only, so a fresh install can train without any hub data.

    python -m mdm_orchestration.matching.labels   # rewrites default_labels.json
"""

from __future__ import annotations

import json
import random
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.tables import ORGANISATION, PERSON
from mdm_orchestration.matching.blocking import candidate_pairs
from mdm_orchestration.matching.model import FIELDS
from mdm_orchestration.matching.records import match_frame

DEFAULT_LABELS = Path(__file__).with_name("default_labels.json")
SEED = 20261123
PEOPLE = 4000
PER_LABEL = {PERSON: 1200, ORGANISATION: 300}
TRAPS = 150

Labels = dict[str, dict[str, list[list[dict[str, Any]]]]]


def load_default_labels(path: Path = DEFAULT_LABELS) -> Labels:
    """``{party_type: {"match": [[a, b], ...], "distinct": [...]}}``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {party: data[party] for party in (PERSON, ORGANISATION)}


def uses_defaults(own_match: int, own_distinct: int, suffice: int | None) -> bool:
    """Whether a model trains on the shipped defaults as well as the hub's own labels: until
    the hub's own labels of that party type number ``suffice`` (at least 10 of each kind), the
    defaults carry the model; after that they would only dilute what the stewards taught it
    about their own silos."""
    if suffice is None:
        return True
    return own_match + own_distinct < suffice or min(own_match, own_distinct) < 10


def training_set(
    party_type: str, own_match: list, own_distinct: list, suffice: int | None
) -> tuple[list, list]:
    """Match and distinct pairs a model of ``party_type`` trains on (see :func:`uses_defaults`)."""
    matches, distinct = list(own_match), list(own_distinct)
    if uses_defaults(len(own_match), len(own_distinct), suffice):
        defaults = load_default_labels()[party_type]
        matches = [tuple(p) for p in defaults["match"]] + matches
        distinct = [tuple(p) for p in defaults["distinct"]] + distinct
    return matches, distinct


def _father_and_son(row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    son = dict(row)
    year = int(row["birth"][:4]) + rng.randint(22, 38) if row.get("birth") else None
    son["birth"] = f"{year}{row['birth'][4:]}" if year else None
    son["suffix"] = "jr"
    son["email"] = None
    son["national_id"] = None
    son["middle_initial"] = None if rng.random() < 0.5 else row.get("middle_initial")
    return son


def build_default_labels(
    config: HubConfig | None = None, people: int = PEOPLE, seed: int = SEED
) -> Labels:
    """Generate silos, cleanse them in memory, block, and label candidate pairs by the truth."""
    from mdm_orchestration.sample_data import generate
    from mdm_orchestration.sample_data.offline import cleansed_frame

    config = config or load_hub_config()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="mdm-labels-") as tmp:
        out = Path(tmp)
        generate(out, people=people, seed=seed)
        cleansed = cleansed_frame(out / "landing", config, date(2026, 11, 23))
        truth = pd.read_csv(out / "truth.csv", dtype=str)
    entity = dict(
        zip(zip(truth["source"], truth["source_key"], strict=True), truth["entity_id"], strict=True)
    )
    cleansed["entity"] = [
        entity.get((s, k)) for s, k in zip(cleansed["source"], cleansed["source_key"], strict=True)
    ]
    cleansed = cleansed[cleansed["entity"].notna()].reset_index(drop=True)
    frame = match_frame(cleansed)
    frame["entity"] = cleansed["entity"].to_numpy()
    labels: Labels = {}
    for party in (PERSON, ORGANISATION):
        sub = frame[frame["party_type"] == party].reset_index(drop=True)
        fields = FIELDS[party]
        rows = sub[list(fields)].to_dict("records")
        ent = sub["entity"].tolist()
        cands = candidate_pairs(sub, party, config.matching.max_block_size)
        pairs = list(zip(cands.left.tolist(), cands.right.tolist(), strict=True))
        same = [p for p in pairs if ent[p[0]] == ent[p[1]]]
        other = [p for p in pairs if ent[p[0]] != ent[p[1]]]
        n = PER_LABEL[party]
        same = rng.sample(same, min(n, len(same)))
        other = rng.sample(other, min(n, len(other)))
        # Few organisations collide on a blocking key: top up with random distinct pairs.
        while len(other) < min(n, len(same)) and len(rows) > 1:
            a, b = sorted(rng.sample(range(len(rows)), 2))
            if ent[a] != ent[b]:
                other.append((a, b))
        matches = [[rows[a], rows[b]] for a, b in same]
        distinct = [[rows[a], rows[b]] for a, b in other]
        if party == PERSON:
            for i in rng.sample(range(len(rows)), min(TRAPS, len(rows))):
                if rows[i].get("given") and rows[i].get("birth"):
                    distinct.append([rows[i], _father_and_son(rows[i], rng)])
        labels[party] = {"match": matches, "distinct": distinct}
    return labels


def write_default_labels(path: Path = DEFAULT_LABELS) -> Labels:
    labels = build_default_labels()
    body = {
        "generated_by": "python -m mdm_orchestration.matching.labels",
        "seed": SEED,
        "people": PEOPLE,
        **labels,
    }
    path.write_text(
        json.dumps(body, ensure_ascii=False, sort_keys=True, indent=None) + "\n", encoding="utf-8"
    )
    return labels


if __name__ == "__main__":
    written = write_default_labels()
    for party, sets in written.items():
        print(f"{party}: {len(sets['match'])} match, {len(sets['distinct'])} distinct")
