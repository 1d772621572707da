"""The whole hub, stage by stage, on SQLite and on PostgreSQL, then matching beside splink.

N generated source records (``people = N / 2.1``, as match_scale.py) go through the hub's
public faces the way the assets call them: ``generate`` (the sample silos, once, shared by the
targets), then per target ``ingest`` (every landed file, in name order), ``cleanse``
(``cleanse_pending``), ``match`` (``train_models`` on the shipped labels, then
``rebuild_clusters``), ``golden`` (``consolidate``), ``households`` (``refresh_households``) and
``syndicate`` (every subscriber of the shipped subscriptions.yaml, into files under the run's own
MDM_HOME). Each stage is a fresh child process; the hub database carries the state between
them. Per stage: wall time and CPU time of the stage's work (after the child's imports), the
whole child's wall and CPU (``getrusage`` of the children, so any process it forks counts
too), and the child's peak RSS (VmHWM; the worker processes cleansing spawns above one batch
per source are given apart, their VmHWM summed). With PostgreSQL the server's own CPU is not in
the figures (it is another process); with SQLite the database works inside the child.

Then, unless ``--no-splink``: the persons among the first target's cleansed records (read back
from the hub), with the generator's ground truth, matched by ours (``accuracy.evaluate``: the
shipped labels only) and by splink (DuckDB, in the peers' virtualenv: ``peers.py
--splink-whole``, its model and threshold chosen on the training half, then predicting and
clustering every record), each in its own process; their times, the ratio, and pairwise
precision, recall and F1 on the same records.

SQLite: a fresh file under the work folder. PostgreSQL: a database of the run's own on
``MDM_TEST_PG_ADMIN_URL`` (default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``),
dropped afterwards.

    .venv/bin/python benchmarks/end_to_end.py 100000 [--targets sqlite,postgres] [--no-splink]
        [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The hub's stages after ``generate``, in the order they run on each target.
HUB_STAGES = ("ingest", "cleanse", "match", "golden", "households", "syndicate")
SEED = 2718


def _workers_peak_mb() -> dict[str, int]:
    """The peak RSS (VmHWM) of this process's live worker processes (cleansing spawns a pool
    above one batch per source), summed: an upper bound of what they held at once. VmHWM of
    this process alone leaves them out."""
    import multiprocessing

    total = count = 0
    for child in multiprocessing.active_children():
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
                count += 1
    return {"workers": count, "workers_peak_rss_mb": round(total / 1024)} if count else {}


def _peak_mb() -> int:
    """This process's own high-water mark (VmHWM; ru_maxrss would count a forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# --- one stage, in a child process ------------------------------------------------------------


def _generate(work: Path, records: int) -> dict[str, Any]:
    from mdm_orchestration.sample_data import generate

    summary = generate(work / "silos", people=max(1, round(records / 2.1)), seed=SEED)
    return {"people": summary.people, "organisations": summary.organisations, "rows": summary.rows}


def _ingest(engine: Any, config: Any, work: Path) -> dict[str, Any]:  # noqa: ANN401
    from mdm_orchestration.ingestion import ingest_file

    landing = work / "silos" / "landing"
    landed = loaded = files = 0
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        outcome = ingest_file(engine, config, path, landing)
        files += 1
        landed += outcome.rows_landed
        loaded += outcome.rows_loaded
    return {"files": files, "rows": landed, "loaded": loaded}


def _cleanse(engine: Any, config: Any, work: Path) -> dict[str, Any]:  # noqa: ANN401
    from mdm_orchestration.cleansing import cleanse_pending

    summary = cleanse_pending(engine, config)
    return {
        "rows": summary.versions,
        "cleansed": summary.cleansed,
        "quarantined": summary.quarantined,
    }


def _match(engine: Any, config: Any, work: Path) -> dict[str, Any]:  # noqa: ANN401
    from mdm_orchestration.matching import rebuild_clusters, train_models

    t0 = time.perf_counter()
    train_models(engine, config)
    train_s = time.perf_counter() - t0
    result = rebuild_clusters(engine, config)
    return {
        "rows": result.count("records"),
        "clusters": sum(
            int(s.get("clusters", 0)) for s in result.stats.values() if isinstance(s, dict)
        ),
        "train_s": round(train_s, 2),
    }


def _golden(engine: Any, config: Any, work: Path) -> dict[str, Any]:  # noqa: ANN401
    from mdm_orchestration.survivorship import consolidate

    result = consolidate(engine, config, "end_to_end")
    return {
        "rows": result.records,
        "golden_records": result.golden_records,
        "events": result.events,
    }


def _households(engine: Any, config: Any, work: Path) -> dict[str, Any]:  # noqa: ANN401
    from mdm_orchestration.survivorship import refresh_households

    return {k: int(v) for k, v in refresh_households(engine).items()}


def _syndicate(engine: Any, config: Any, work: Path) -> dict[str, Any]:  # noqa: ANN401
    from mdm_orchestration.syndication import syndicate

    delivered = {}
    for name in config.subscriptions.subscribers:
        delivered[name] = syndicate(engine, config, name, home=work / "home").delivered
    return {"rows": sum(delivered.values()), "messages": delivered}


def run_stage(stage: str, work: Path, url: str, records: int) -> None:
    """One stage in this (fresh) process; prints its figures as one JSON line."""
    t0, c0 = time.perf_counter(), time.process_time()
    if stage == "generate":
        counts = _generate(work, records)
    else:
        from mdm_orchestration.config import load_hub_config
        from mdm_orchestration.hub.store import create_hub_engine

        config = load_hub_config()
        engine = create_hub_engine(url)
        # Imports and the engine are the process's start-up, not the stage's work.
        t0, c0 = time.perf_counter(), time.process_time()
        counts = globals()[f"_{stage}"](engine, config, work)
        engine.dispose()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    counts.update(_workers_peak_mb())
    print(
        json.dumps(
            {
                "wall_s": round(seconds, 2),
                "cpu_s": round(cpu, 2),
                "peak_rss_mb": _peak_mb(),
                **counts,
            }
        )
    )


def run_ours(url: str, work: Path, out: Path) -> None:
    """Ours on the hub's persons with their truth; the same records exported for splink."""
    from benchmarks.accuracy import evaluate, export_for_peers, with_truth
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import current_cleansed

    engine = create_hub_engine(url)
    with engine.connect() as conn:
        cleansed = current_cleansed(conn)
    engine.dispose()
    cleansed = with_truth(cleansed, work / "silos" / "truth.csv")
    persons = cleansed[cleansed["party_type"] == "person"].reset_index(drop=True)
    del cleansed
    c0 = time.process_time()
    figures = evaluate("ours (hub's persons)", persons, None)
    cpu = time.process_time() - c0
    exported = export_for_peers(persons, "persons")
    shutil.move(exported, out)
    shutil.rmtree(exported.parent, ignore_errors=True)
    print(json.dumps({**figures, "cpu_s": round(cpu, 2), "peak_rss_mb": _peak_mb()}))


# --- the parent -------------------------------------------------------------------------------


def _child(argv: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """A child process's last JSON line, with its whole wall and CPU time (its descendants'
    too) measured from here; its stderr goes to ``log``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("a") as err:
        done = subprocess.run(
            argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True, check=False
        )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{argv[2:4]} exited {done.returncode}; see {log}")
    figures = json.loads([x for x in done.stdout.splitlines() if x.startswith("{")][-1])
    figures["process_wall_s"] = round(wall, 2)
    figures["process_cpu_s"] = round(
        after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2
    )
    figures["load_1m"] = round(os.getloadavg()[0], 2)
    return figures


def _stage(stage: str, work: Path, url: str, records: int, log: Path) -> dict[str, Any]:
    env = {**os.environ, "MDM_HOME": str(work / "home")}
    argv = [
        sys.executable,
        "-W",
        "ignore",
        __file__,
        "--stage",
        stage,
        str(work),
        url,
        str(records),
    ]
    return _child(argv, env, log)


def _line(target: str, stage: str, f: dict[str, Any]) -> str:
    rows = f.get("rows")
    rate = f" {rows / f['wall_s']:>9,.0f} rows/s" if rows and f["wall_s"] else " " * 16
    return (
        f"{target:<9} {stage:<11} wall {f['wall_s']:>8.1f} s  CPU {f['cpu_s']:>8.1f} s  "
        f"(process {f['process_wall_s']:.1f} s wall, {f['process_cpu_s']:.1f} s CPU)  "
        f"peak RSS {f['peak_rss_mb']:>6,} MB {rate}  load {f['load_1m']:.1f}"
        + (
            f"  (+ {f['workers']} worker processes, peak RSS {f['workers_peak_rss_mb']:,} MB "
            "summed; their CPU only in the process figure)"
            if f.get("workers")
            else ""
        )
    )


def _postgres_database() -> tuple[str, Any]:
    import sqlalchemy as sa

    from benchmarks.ingest import PG_ADMIN

    name = f"mdm_e2e_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", (admin, name)


def _drop_postgres(handle: Any) -> None:  # noqa: ANN401
    import sqlalchemy as sa

    admin, name = handle
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def compare(url: str, work: Path, log: Path) -> dict[str, Any]:
    """Ours and splink on the same persons (the hub's cleansed records, with their truth)."""
    from benchmarks.accuracy import peers_python

    export = work / "persons.csv"
    env = {**os.environ, "MDM_HOME": str(work / "home")}
    ours = _child(
        [sys.executable, "-W", "ignore", __file__, "--ours", url, str(work), str(export)], env, log
    )
    peers = [str(peers_python()), "-W", "ignore", str(ROOT / "benchmarks" / "peers.py")]
    splink = _child([*peers, "--splink-whole", f"csv:{export}"], env, log)
    export.unlink()
    ours_s = ours["train_seconds"] + ours["seconds"]
    splink_s = splink["fit_seconds"] + splink["predict_seconds"]
    print(
        f"\nmatching side by side on {ours['records']:,} persons (the hub's cleansed records "
        f"with the generator's truth):\n"
        f"  ours    train {ours['train_seconds']:.1f} s + match {ours['seconds']:.1f} s = "
        f"{ours_s:.1f} s (process CPU {ours['process_cpu_s']:.1f} s), peak RSS "
        f"{ours['peak_rss_mb']:,} MB; P {ours['precision']:.4f} R {ours['recall']:.4f} "
        f"F1 {ours['f1']:.4f}  load {ours['load_1m']:.1f}\n"
        f"  {splink['peer']:<7} fit on the training half {splink['fit_seconds']:.1f} s + "
        f"predict and cluster all {splink['predict_seconds']:.1f} s = {splink_s:.1f} s "
        f"(process CPU {splink['process_cpu_s']:.1f} s), peak RSS {splink['peak_rss_mb']:,} MB; "
        f"P {splink['precision']:.4f} R {splink['recall']:.4f} F1 {splink['f1']:.4f} "
        f"(test half: F1 {splink['test_f1']:.4f})  load {splink['load_1m']:.1f}\n"
        f"  ours / splink: {ours_s / splink_s:.2f} (train+match vs fit+predict), "
        f"{ours['seconds'] / splink['predict_seconds']:.2f} (match vs predict+cluster); "
        f"F1 {ours['f1']:.4f} vs {splink['f1']:.4f}",
        flush=True,
    )
    return {
        "ours": ours,
        "splink": splink,
        "time_ratio": round(ours_s / splink_s, 3),
        "match_time_ratio": round(ours["seconds"] / splink["predict_seconds"], 3),
    }


def main() -> None:
    if sys.argv[1:2] == ["--stage"]:
        stage, work, url, records = sys.argv[2:6]
        run_stage(stage, Path(work), url, int(records))
        return
    if sys.argv[1:2] == ["--ours"]:
        run_ours(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=int, help="generated source records (people = N / 2.1)")
    parser.add_argument("--targets", default="sqlite,postgres")
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument("--work", type=Path, help="work folder (default: a fresh temp folder)")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    if unknown := set(targets) - {"sqlite", "postgres"}:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    work = args.work or Path(tempfile.mkdtemp(prefix="mdm-bench-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "stderr.log"
    started = time.perf_counter()
    print(f"{args.records:,} records requested; work {work}; stderr of the stages in {log}")
    summary: dict[str, Any] = {"records": args.records, "targets": {}}
    g = _stage("generate", work, "", args.records, log)
    summary["generate"] = g
    print(_line("(both)", "generate", g), f"{g['people']:,} people, {g['rows']:,} rows", flush=True)
    for target in targets:
        handle = None
        if target == "sqlite":
            url = f"sqlite:///{work / 'sqlite' / 'hub.db'}"
            (work / "sqlite").mkdir(exist_ok=True)
        else:
            url, handle = _postgres_database()
        # Each target syndicates into a home of its own (the silos are shared).
        tw = work / target
        tw.mkdir(exist_ok=True)
        (tw / "silos").symlink_to(work / "silos")
        try:
            figures = {}
            for stage in HUB_STAGES:
                figures[stage] = f = _stage(stage, tw, url, args.records, log)
                print(_line(target, stage, f), flush=True)
            summary["targets"][target] = figures
            # On the SQLite hub once every target has run (its file stays); on PostgreSQL
            # before its database is dropped when it is the only target.
            if not args.no_splink and targets == ["postgres"]:
                summary["splink"] = compare(url, tw, log)
        finally:
            if handle is not None:
                _drop_postgres(handle)
    if not args.no_splink and "sqlite" in targets:
        summary["splink"] = compare(f"sqlite:///{work / 'sqlite' / 'hub.db'}", work / "sqlite", log)
    summary["whole_run_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
