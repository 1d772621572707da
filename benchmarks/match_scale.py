"""Matching at scale: wall time and peak memory of match_records for N generated records.

For each size, one process generates and cleanses the silos and saves the cleansed records as
Parquet; a fresh process then loads them, trains on the shipped labels and matches (blocking,
rules, dedupe scoring, clustering), so the peak RSS printed belongs to matching alone.

    .venv/bin/python benchmarks/match_scale.py 10000 100000 1000000

``--data DIR`` keeps the prepared records in ``DIR/cleansed-<N>.parquet`` and reuses them on the
next run (preparing a million records takes longer than matching them); ``--run FILE`` matches
one prepared file.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare(records: int, out: Path) -> None:
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.sample_data import generate
    from mdm_orchestration.sample_data.offline import cleansed_frame

    work = Path(tempfile.mkdtemp(prefix="mdm-bench-scale-"))
    generate(work, people=max(1, round(records / 2.1)), seed=2718)
    frame = cleansed_frame(work / "landing", load_hub_config(), date(2026, 11, 23))
    frame["consents"] = frame["consents"].map(json.dumps)
    frame["quality_flags"] = frame["quality_flags"].map(json.dumps)
    frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(out)


def run(path: Path) -> None:
    import pandas as pd

    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.matching.engine import match_records
    from mdm_orchestration.matching.labels import load_default_labels
    from mdm_orchestration.matching.model import train_model
    from mdm_orchestration.matching.records import CLEANSED_COLUMNS

    # The columns the hub reads for matching (matching.current_cleansed), as Python objects.
    frame = pd.read_parquet(path, columns=list(CLEANSED_COLUMNS))
    for column in frame.columns:
        values = frame[column]
        frame[column] = pd.Series([None if pd.isna(v) else v for v in values], dtype=object)
    t0 = time.perf_counter()
    c0 = time.process_time()
    models = {
        p: train_model(p, [tuple(x) for x in s["match"]], [tuple(x) for x in s["distinct"]])
        for p, s in load_default_labels().items()
    }
    t1 = time.perf_counter()
    c1 = time.process_time()
    result = match_records(frame, models, load_hub_config().matching)
    t2 = time.perf_counter()
    c2 = time.process_time()
    persons = result.stats["person"]
    print(
        json.dumps(
            {
                "records": len(frame),
                "train_s": round(t1 - t0, 1),
                "match_s": round(t2 - t1, 1),
                "match_cpu_s": round(c2 - c1, 1),
                "train_cpu_s": round(c1 - c0, 1),
                "candidate_pairs": persons["candidate_pairs"]
                + result.stats.get("organisation", {}).get("candidate_pairs", 0),
                "clusters": persons["clusters"]
                + result.stats.get("organisation", {}).get("clusters", 0),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--run":
        run(Path(sys.argv[2]))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--prepare":
        prepare(int(sys.argv[2]), Path(sys.argv[3]))
        return
    args = sys.argv[1:]
    data = None
    if "--data" in args:
        i = args.index("--data")
        data = Path(args[i + 1])
        del args[i : i + 2]
        data.mkdir(parents=True, exist_ok=True)
    for size in [int(a) for a in args] or [10_000, 100_000]:
        if data is not None:
            path = data / f"cleansed-{size}.parquet"
        else:
            path = Path(tempfile.mkdtemp(prefix="mdm-bench-scale-")) / "cleansed.parquet"
        p0 = time.perf_counter()
        reused = path.exists()
        if not reused:
            subprocess.run(
                [sys.executable, __file__, "--prepare", str(size), str(path)], check=True
            )
        prep = time.perf_counter() - p0
        out = subprocess.run(
            [sys.executable, "-W", "ignore", __file__, "--run", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        prepared = f"reused {path}" if reused else f"generate + cleanse {prep:.0f} s"
        print(
            f"{size:>9,} generated -> {figures['records']:>9,} records: match {figures['match_s']} s "
            f"({figures['match_cpu_s']} s CPU; train {figures['train_s']} s), "
            f"{figures['candidate_pairs']:,} candidate pairs, "
            f"{figures['clusters']:,} clusters, peak RSS {figures['peak_rss_mb']:,} MB "
            f"({prepared}; load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
