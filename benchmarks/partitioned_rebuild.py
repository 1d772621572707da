"""The partitioned full rebuild beside the single-step one, on a hub of N generated records.

The hub is built as end_to_end.py builds it (``generate``, ``ingest``, ``cleanse``, each a
fresh child process), then trained (``train_models``, shipped labels). Then, each in a fresh
child process: the single-step ``rebuild_clusters``; the partitioned one as the job runs it:
``start`` (the run token), the P partition steps side by side (``stage_partition``, as the
multiprocess executor runs them with ``max_concurrent`` >= P), then ``finish`` (join, cluster,
write). Per step: wall and CPU time of its work (after the child's imports), the whole child's
wall and CPU (``wait4``: its own rusage, even for children running at once) and its peak RSS
(VmHWM). Last, whether both rebuilds wrote the same clusters, pairs and review items, and the
load average (another process's load shows there).

    .venv/bin/python benchmarks/partitioned_rebuild.py 100000 [--partitions 4]
        [--target sqlite|postgres] [--work DIR]

``--work DIR`` keeps the built hub (SQLite) and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.end_to_end import (  # noqa: E402
    _child,
    _drop_postgres,
    _peak_mb,
    _postgres_database,
    _stage,
)

#: What a full rebuild writes, digested to compare the two rebuilds (times left out).
OUTCOME = (
    "SELECT record_id, cluster_id, confidence, organisation_cluster_id FROM match_clusters "
    "ORDER BY record_id",
    "SELECT left_record_id, right_record_id, score, by_rule FROM match_pairs "
    "ORDER BY left_record_id, right_record_id",
    "SELECT left_record_id, right_record_id, score FROM review_queue WHERE status = 'pending' "
    "ORDER BY left_record_id, right_record_id",
)


def _digest(engine: Any) -> str:  # noqa: ANN401
    from sqlalchemy import text

    digest = hashlib.blake2b(digest_size=16)
    with engine.connect() as conn:
        for query in OUTCOME:
            for row in conn.execute(text(query)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def run_step(step: str, url: str, args: list[str]) -> None:
    """One step in this (fresh) process; prints its figures as one JSON line."""
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import (
        RebuildPartition,
        finish_partitioned_rebuild,
        rebuild_clusters,
        stage_partition,
        start_partitioned_rebuild,
        train_models,
    )

    config = load_hub_config()
    engine = create_hub_engine(url)
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {}
    if step == "train":
        train_models(engine, config)
    elif step == "single":
        out["records"] = rebuild_clusters(engine, config).count("records")
    elif step == "start":
        out["token"] = start_partitioned_rebuild(engine, int(args[0]))[0].token
    elif step == "partition":
        token, index, count = args[0], int(args[1]), int(args[2])
        out.update(stage_partition(engine, config, RebuildPartition(token, index, count)))
    elif step == "finish":
        out["records"] = finish_partitioned_rebuild(engine, config, args[0], int(args[1])).count(
            "records"
        )
    else:
        raise SystemExit(f"unknown step {step}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if step in ("single", "finish"):
        out["outcome"] = _digest(engine)
    engine.dispose()
    print(
        json.dumps(
            {"wall_s": round(seconds, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": _peak_mb(), **out}
        )
    )


def _argv(step: str, url: str, *args: object) -> list[str]:
    return [sys.executable, "-W", "ignore", __file__, "--step", step, url, *map(str, args)]


def _side_by_side(argvs: list[list[str]], env: dict[str, str], log: Path) -> list[dict[str, Any]]:
    """Children started at once; each one's figures with its own wall, CPU (``wait4``)."""
    started = time.perf_counter()
    with log.open("a") as err:
        procs = [
            subprocess.Popen(a, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
            for a in argvs
        ]
        out = []
        for proc in procs:
            stdout = proc.stdout.read() if proc.stdout else ""
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                raise RuntimeError(f"{proc.args[4:]} exited {proc.returncode}; see {log}")
            figures = json.loads([x for x in stdout.splitlines() if x.startswith("{")][-1])
            figures["process_wall_s"] = round(time.perf_counter() - started, 2)
            figures["process_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
            figures["load_1m"] = round(os.getloadavg()[0], 2)
            out.append(figures)
    return out


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        run_step(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=int, help="generated source records (people = N / 2.1)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--target", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--work", type=Path, help="work folder (default: a fresh temp folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mdm-bench-partitioned-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "stderr.log"
    env = {**os.environ, "MDM_HOME": str(work / "home")}
    handle = None
    if args.target == "sqlite":
        url = f"sqlite:///{work / 'hub.db'}"
    else:
        url, handle = _postgres_database()
    print(f"{args.records:,} records, {args.partitions} partitions, {args.target}; work {work}")
    try:
        ready = work / f"trained-{args.records}"
        if args.target == "postgres" or not ready.exists():
            if not (work / "silos").exists():
                _stage("generate", work, "", args.records, log)
            for stage in ("ingest", "cleanse"):
                f = _stage(stage, work, url, args.records, log)
                print(f"  {stage:<10} {f['wall_s']:>8.1f} s wall", flush=True)
            _child(_argv("train", url), env, log)
            if args.target == "sqlite":
                ready.touch()
        steps: dict[str, Any] = {"load_start": os.getloadavg()}
        steps["single"] = s = _child(_argv("single", url), env, log)
        _print("single step", s)
        steps["start"] = start = _child(_argv("start", url, args.partitions), env, log)
        token = start["token"]
        argvs = [_argv("partition", url, token, i, args.partitions) for i in range(args.partitions)]
        t0 = time.perf_counter()
        steps["partitions"] = parts = _side_by_side(argvs, env, log)
        steps["partitions_wall_s"] = round(time.perf_counter() - t0, 2)
        for i, p in enumerate(parts):
            _print(f"partition {i}", p, f"{p['pairs_staged']:,} pairs staged")
        steps["finish"] = f = _child(_argv("finish", url, token, args.partitions), env, log)
        _print("final step", f)
        total = start["process_wall_s"] + steps["partitions_wall_s"] + f["process_wall_s"]
        steps["partitioned_wall_s"] = round(total, 2)
        steps["same_outcome"] = s["outcome"] == f["outcome"]
        print(
            f"  partitioned: {total:.1f} s wall (partitions side by side "
            f"{steps['partitions_wall_s']:.1f} s); single step {s['process_wall_s']:.1f} s; "
            f"same clusters, pairs and review items: {steps['same_outcome']}; "
            f"load {os.getloadavg()[0]:.2f}"
        )
        print(json.dumps(steps))
    finally:
        if handle is not None:
            _drop_postgres(handle)


def _print(name: str, f: dict[str, Any], extra: str = "") -> None:
    print(
        f"  {name:<12} {f['wall_s']:>7.1f} s wall {f['cpu_s']:>7.1f} s CPU "
        f"(process {f['process_wall_s']:.1f} s / {f['process_cpu_s']:.1f} s CPU) "
        f"peak RSS {f['peak_rss_mb']:,} MB, load {f['load_1m']:.2f} {extra}",
        flush=True,
    )


if __name__ == "__main__":
    main()
