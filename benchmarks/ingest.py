"""Ingest throughput: rows per second and peak memory for one large extract, SQLite and PostgreSQL.

The extract has the billing layout (``;``-separated CSV). Its rows come from generated silos,
cycled with fresh keys up to --rows, so values are realistic and every key is distinct. Each
target is measured in a fresh process, so that peak RSS belongs to that target alone.

    .venv/bin/python benchmarks/ingest.py --rows 1000000
    .venv/bin/python benchmarks/ingest.py --rows 1000000 --keep /tmp/extract   # build once, reuse

Each line also gives the load average around the run: the machine is shared, and its speed
varies about 2x from minute to minute.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "MDM_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def build_extract(rows: int, landing: Path) -> Path:
    from mdm_orchestration.sample_data import generate

    seed_dir = landing.parent / "seed"
    generate(seed_dir, people=20000, seed=1)
    with (seed_dir / "landing/billing/customers_20260105.csv").open(
        encoding="utf-8", newline=""
    ) as fh:
        reader = csv.reader(fh, delimiter=";")
        header = next(reader)
        base = [r for r in reader if len(r) == len(header) and r[0].strip()]
    out = landing / "billing/bench.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\n")
        writer.writerow(header)
        for i in range(rows):
            row = list(base[i % len(base)])
            row[0] = f"B{i:09d}"
            writer.writerow(row)
    return out


def worker(target: str, url: str, file: Path) -> None:
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.ingestion import ingest_file

    engine = create_hub_engine(url)
    config = load_hub_config(ROOT / "mdm_orchestration" / "defaults")
    started = time.perf_counter()
    cpu0 = time.process_time()
    outcome = ingest_file(engine, config, file, file.parent.parent)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "target": target,
                "rows": outcome.rows_landed,
                "loaded": outcome.rows_loaded,
                "seconds": round(seconds, 1),
                "cpu_seconds": round(cpu, 1),
                "rows_per_second": round(outcome.rows_landed / seconds),
                "peak_rss_mb": round(peak_mb),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--targets", default="sqlite,postgres")
    parser.add_argument(
        "--keep",
        type=Path,
        help="build the extract in this folder, or reuse the one built there with the same --rows",
    )
    parser.add_argument("--worker", nargs=3, metavar=("TARGET", "URL", "FILE"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], Path(args.worker[2]))
        return

    import sqlalchemy as sa

    with tempfile.TemporaryDirectory() as tmp:
        landing = (args.keep / f"{args.rows}" if args.keep else Path(tmp)) / "landing"
        t0 = time.perf_counter()
        file = landing / "billing/bench.csv"
        if not file.exists():
            file = build_extract(args.rows, landing)
        print(
            f"extract: {args.rows} rows, {file.stat().st_size / 1e6:.0f} MB, ready in {time.perf_counter() - t0:.0f} s"
        )
        for target in args.targets.split(","):
            db_name = None
            if target == "sqlite":
                url = f"sqlite:///{tmp}/hub.db"
            else:
                db_name = f"mdm_bench_{uuid.uuid4().hex[:8]}"
                admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
                url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
            try:
                load_before = os.getloadavg()[0]
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", target, url, str(file)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{target:<9} {result['rows']:>9} rows in {result['seconds']:>6} s "
                    f"({result['rows_per_second']:>7} rows/s, {result['cpu_seconds']} s CPU), "
                    f"peak RSS {result['peak_rss_mb']} MB; load average {load_before:.1f} -> "
                    f"{os.getloadavg()[0]:.1f}"
                )
            finally:
                if db_name:
                    with admin.connect() as conn:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
