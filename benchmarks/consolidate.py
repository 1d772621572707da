"""Golden records at scale: wall time and peak memory of consolidation on a hub of N records.

For each size, one process builds a SQLite hub the way the assets do (generate, ingest, cleanse,
train on the shipped labels, cluster); a fresh process then consolidates it three times: the
first time (every golden record created), again with nothing new (a no-op), and after a steward
merge of two golden records (after a full rebuild of the clusters, which queues every record);
then it rebuilds the households. Each step's wall time is printed with the process's CPU time
beside it (the machine may be shared); the peak RSS printed belongs to the consolidating
process alone.

    .venv/bin/python benchmarks/consolidate.py 10000 100000
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare(records: int, work: Path) -> dict[str, float]:
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.ingestion import ingest_file
    from mdm_orchestration.matching import rebuild_clusters, train_models
    from mdm_orchestration.sample_data import generate

    config = load_hub_config()
    t0 = time.perf_counter()
    generate(work, people=max(1, round(records / 2.1)), seed=2718)
    engine = create_hub_engine(f"sqlite:///{work / 'hub.db'}")
    t1 = time.perf_counter()
    for path in sorted(p for p in (work / "landing").rglob("*") if p.is_file()):
        ingest_file(engine, config, path, work / "landing")
    t2 = time.perf_counter()
    cleanse_pending(engine, config)
    t3 = time.perf_counter()
    train_models(engine)
    rebuild_clusters(engine, config)
    t4 = time.perf_counter()
    engine.dispose()
    return {"generate_s": t1 - t0, "ingest_s": t2 - t1, "cleanse_s": t3 - t2, "match_s": t4 - t3}


def run(work: Path) -> None:
    from sqlalchemy import text

    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import rebuild_clusters, record_override
    from mdm_orchestration.survivorship import consolidate, rebuild_households

    config = load_hub_config()
    engine = create_hub_engine(f"sqlite:///{work / 'hub.db'}")
    t0, c0 = time.perf_counter(), time.process_time()
    first = consolidate(engine, config, "first")
    t1, c1 = time.perf_counter(), time.process_time()
    again = consolidate(engine, config, "again")
    t2, c2 = time.perf_counter(), time.process_time()
    households = rebuild_households(engine)
    t3 = time.perf_counter()
    with engine.connect() as conn:
        (a,), (b,) = conn.execute(
            text(
                "SELECT min(record_id) FROM golden_xref GROUP BY golden_id ORDER BY golden_id LIMIT 2"
            )
        ).all()
    record_override(engine, a, b, "must_link", "bench")
    rebuild_clusters(engine, config)
    t4, c4 = time.perf_counter(), time.process_time()
    merged = consolidate(engine, config, "merge")
    t5, c5 = time.perf_counter(), time.process_time()
    print(
        json.dumps(
            {
                "records": first.records,
                "golden_records": first.golden_records,
                "first_s": round(t1 - t0, 1),
                "first_cpu_s": round(c1 - c0, 1),
                "first_events": first.events,
                "noop_s": round(t2 - t1, 1),
                "noop_cpu_s": round(c2 - c1, 1),
                "noop_events": again.events,
                "households_s": round(t3 - t2, 1),
                "households": households["households"],
                "merge_s": round(t5 - t4, 1),
                "merge_cpu_s": round(c5 - c4, 1),
                "merge_counts": merged.counts,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--run":
        run(Path(sys.argv[2]))
        return
    for size in [int(a) for a in sys.argv[1:]] or [10_000, 100_000]:
        work = Path(tempfile.mkdtemp(prefix="mdm-bench-golden-"))
        prep = prepare(size, work)
        out = subprocess.run(
            [sys.executable, "-W", "ignore", __file__, "--run", str(work)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        f = json.loads(out.strip().splitlines()[-1])
        print(
            f"{size:>9,} generated -> {f['records']:,} records, {f['golden_records']:,} golden: "
            f"first consolidation {f['first_s']} s ({f['first_cpu_s']} s CPU, "
            f"{f['first_events']:,} events), rerun {f['noop_s']} s ({f['noop_cpu_s']} s CPU, "
            f"{f['noop_events']} events), households {f['households_s']} s, after a merge and "
            f"a full rebuild {f['merge_s']} s ({f['merge_cpu_s']} s CPU) {f['merge_counts']}, "
            "peak RSS "
            f"{f['peak_rss_mb']:,} MB (prep: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in prep.items())
            + ")",
            flush=True,
        )


if __name__ == "__main__":
    main()
