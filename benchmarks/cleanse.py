"""Cleansing throughput: records per second and peak memory for N generated records.

Generates silos for about N / 2.1 people (all five layouts, realistic repetition of cities,
streets, names and domains), reads every extract with the ingestion readers, then times only
``cleanse_batches`` over all rows in chunks of --chunk on --workers processes (what the
``cleansed_records`` asset runs per extract, without the database). With --hub it also times the whole hub path on SQLite
(``cleanse_pending``: read versions, cleanse, write records and quarantine) for --hub-records.

    .venv/bin/python benchmarks/cleanse.py --records 1000000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per CPU, at most 4")
    parser.add_argument("--hub", action="store_true", help="also time cleanse_pending on SQLite")
    parser.add_argument("--hub-records", type=int, default=100_000)
    args = parser.parse_args()

    from mdm_orchestration.cleansing import cleanse_batches, cleanse_pending, resolve_workers
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.sample_data import generate
    from mdm_orchestration.sample_data.offline import landing_versions

    config = load_hub_config()
    work = Path(tempfile.mkdtemp(prefix="mdm-bench-cleanse-"))
    t0 = time.perf_counter()
    generate(work, people=max(1, round(args.records / 2.1)), seed=7)
    t1 = time.perf_counter()
    frames = landing_versions(work / "landing", config)
    total = sum(len(f) for f in frames.values())
    t2 = time.perf_counter()
    print(f"generated {total:,} records in {t1 - t0:.1f} s; read in {t2 - t1:.1f} s")
    print(f"peak RSS before cleansing: {peak_mb():,.0f} MB")

    cleansed = quarantined = 0
    workers = resolve_workers(args.workers)
    started = time.perf_counter()
    for name, frame in frames.items():
        s0 = time.perf_counter()
        chunks = (frame.iloc[i : i + args.chunk] for i in range(0, len(frame), args.chunk))
        for result in cleanse_batches(
            chunks, config.sources[name], config.quality, date(2026, 11, 23), workers
        ):
            cleansed += len(result.records)
            quarantined += len(result.quarantine)
        print(f"  {name:<10} {len(frame):>9,} records {time.perf_counter() - s0:7.1f} s")
    seconds = time.perf_counter() - started
    print(
        f"cleanse_batches ({workers} worker(s)): {total:,} records in {seconds:.1f} s = "
        f"{total / seconds:,.0f} records/s ({cleansed:,} cleansed, {quarantined:,} quarantined); "
        f"peak RSS of this process {peak_mb():,.0f} MB"
    )

    if args.hub:
        from mdm_orchestration.hub.store import create_hub_engine
        from mdm_orchestration.ingestion import ingest_file

        hub_dir = Path(tempfile.mkdtemp(prefix="mdm-bench-hub-"))
        generate(hub_dir, people=max(1, round(args.hub_records / 2.1)), seed=8)
        engine = create_hub_engine(f"sqlite:///{hub_dir / 'hub.db'}")
        for path in sorted(p for p in (hub_dir / "landing").rglob("*") if p.is_file()):
            ingest_file(engine, config, path, hub_dir / "landing")
        c0, h0 = cpu_seconds(), time.perf_counter()
        summary = cleanse_pending(engine, config, chunk_rows=args.chunk)
        h, c = time.perf_counter() - h0, cpu_seconds() - c0
        print(
            f"cleanse_pending on SQLite: {summary.versions:,} versions in {h:.1f} s = "
            f"{summary.versions / h:,.0f} records/s (read, cleanse, write); {c:.1f} s CPU in this "
            f"process (workers' not counted); peak RSS {peak_mb():,.0f} MB"
        )
        r0 = time.perf_counter()
        again = cleanse_pending(engine, config)
        print(
            f"re-run with nothing new: {again.versions} versions in {time.perf_counter() - r0:.3f} s"
        )


if __name__ == "__main__":
    main()
