"""Sample-silo generator throughput: source records per second and peak memory.

.venv/bin/python benchmarks/generate.py --people 500000     # about 1M source records
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from mdm_orchestration.sample_data import generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu0 = time.perf_counter(), time.process_time()
        summary = generate(Path(tmp), people=args.people, seed=args.seed)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{summary.rows} source records ({summary.people} people, {summary.organisations} "
        f"organisations, {size / 1e6:.0f} MB) in {seconds:.1f} s wall, {cpu:.1f} s CPU: "
        f"{summary.rows / seconds:.0f} records/s; peak RSS {peak:.0f} MB"
    )
    for source, n in summary.rows_per_source.items():
        print(f"  {source:<10} {n:>9}")


if __name__ == "__main__":
    main()
