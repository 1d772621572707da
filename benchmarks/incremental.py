"""Incremental reconsolidation: the cost of absorbing 1,000 new records, by hub size, against a
full rebuild; and the latency from a file drop to its change events with the daemon running.

For each size N, one process builds a SQLite hub from generated silos (ingest, cleanse, train on
the shipped labels, cluster, consolidate), holding back the billing delta extract. A fresh
process then absorbs a 1,000-row cut of that extract (ingest, cleanse, incremental match,
consolidation of what changed) and prints time per phase and peak RSS; another fresh process
rebuilds the same hub in full (recluster and re-survive everything) for the ratio.

    .venv/bin/python benchmarks/incremental.py 10000 100000 1000000
    .venv/bin/python benchmarks/incremental.py --latency       # dagster-daemon, default sensors
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from mdm_orchestration.config import HubConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NEW_ROWS = 1000


def _rss() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def master_timed(
    engine: Engine, config: HubConfig, landing: Path, run: str, t: dict[str, float]
) -> None:
    """Build the hub as the assets do: ingest every file under ``landing`` in name order,
    cleanse, train and match, consolidate as run ``run``; each phase's end time goes in ``t``
    (``ingest``, ``cleanse``, ``match``, ``consolidate``)."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.ingestion import ingest_file
    from mdm_orchestration.matching import rebuild_clusters, train_models
    from mdm_orchestration.survivorship import consolidate

    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        ingest_file(engine, config, path, landing)
    t["ingest"] = time.perf_counter()
    cleanse_pending(engine, config)
    t["cleanse"] = time.perf_counter()
    train_models(engine)
    rebuild_clusters(engine, config)
    t["match"] = time.perf_counter()
    consolidate(engine, config, run)
    t["consolidate"] = time.perf_counter()


def prepare(records: int, work: Path) -> dict:
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.sample_data import generate

    config = load_hub_config()
    t = {"start": time.perf_counter()}
    generate(work, people=max(1, round(records / 2.1)), seed=2718)
    landing = work / "landing"
    held = sorted((landing / "billing").iterdir())[-1]
    with held.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    cut = work / "new" / "billing" / held.name
    cut.parent.mkdir(parents=True)
    with cut.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=";", lineterminator="\n").writerows(rows[: NEW_ROWS + 1])
    held.unlink()
    engine = create_hub_engine(f"sqlite:///{work / 'hub.db'}")
    t["generate"] = time.perf_counter()
    master_timed(engine, config, landing, "initial", t)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        hub_records = conn.exec_driver_sql("SELECT count(*) FROM match_clusters").scalar()
    engine.dispose()
    names = list(t)
    return {
        "hub_records": hub_records,
        **{f"{b}_s": round(t[b] - t[a], 1) for a, b in zip(names, names[1:], strict=False)},
    }


def absorb(work: Path) -> None:
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.ingestion import ingest_file
    from mdm_orchestration.matching import match_incremental
    from mdm_orchestration.survivorship import consolidate

    config = load_hub_config()
    engine = create_hub_engine(f"sqlite:///{work / 'hub.db'}")
    (path,) = (work / "new" / "billing").iterdir()
    # The matching libraries are imported where they are used (a run that never matches does
    # not pay for them); timed apart, as a fresh run worker pays it once.
    ti = time.perf_counter()
    import dedupe  # noqa: F401
    import dedupe.clustering  # noqa: F401
    import probablepeople  # noqa: F401

    import_s = time.perf_counter() - ti
    t0 = time.perf_counter()
    ingest_file(engine, config, path, work / "new")
    t1 = time.perf_counter()
    cleanse_pending(engine, config)
    t2 = time.perf_counter()
    match = match_incremental(engine, config).counts
    t3 = time.perf_counter()
    golden = consolidate(engine, config, "absorb").counts
    t4 = time.perf_counter()
    print(
        json.dumps(
            {
                "ingest_s": round(t1 - t0, 2),
                "cleanse_s": round(t2 - t1, 2),
                "match_s": round(t3 - t2, 2),
                "consolidate_s": round(t4 - t3, 2),
                "total_s": round(t4 - t0, 2),
                "import_matching_libraries_s": round(import_s, 2),
                "arrived": match["arrived"],
                "rematched": match["records"],
                "clusters_touched": match["clusters_touched"],
                "golden": golden,
                "peak_rss_mb": _rss(),
            }
        )
    )


def rebuild(work: Path) -> None:
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import rebuild_clusters
    from mdm_orchestration.survivorship import consolidate

    config = load_hub_config()
    engine = create_hub_engine(f"sqlite:///{work / 'hub.db'}")
    t0 = time.perf_counter()
    rebuild_clusters(engine, config)
    t1 = time.perf_counter()
    consolidate(engine, config, "rebuild", full=True)
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "match_s": round(t1 - t0, 1),
                "consolidate_s": round(t2 - t1, 1),
                "total_s": round(t2 - t0, 1),
                "peak_rss_mb": _rss(),
            }
        )
    )


def _child(step: str, work: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-W", "ignore", __file__, f"--{step}", str(work)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def latency() -> None:
    """dagster-daemon with the shipped configuration (sensor intervals, settle time) and a
    queued run coordinator polling every second; time from a file's rename into the landing
    zone to its first change event, for a first file and a second one."""
    from mdm_orchestration.sample_data import generate

    work = Path(tempfile.mkdtemp(prefix="mdm-bench-latency-"))
    generate(work / "silos", people=2000, seed=5)
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry: {enabled: false}\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n  config: {dequeue_interval_seconds: 1}\n"
        "concurrency:\n  pools: {default_limit: 1}\n"
    )
    landing = work / "landing"
    landing.mkdir()
    hub = f"sqlite:///{work / 'hub.db'}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MDM_HOME": str(work / "mdm"),
        "MDM_LANDING_DIR": str(landing),
        "MDM_HUB_URL": hub,
    }
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    import sqlalchemy as sa

    def events() -> int:
        engine = sa.create_engine(hub)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM golden_changes")).scalar())
        except sa.exc.OperationalError:
            return 0
        finally:
            engine.dispose()

    try:
        time.sleep(10)  # the daemon and its code server start
        for source in ("crm", "loyalty"):
            src = sorted((work / "silos" / "landing" / source).iterdir())[0]
            before = events()
            (landing / source).mkdir(exist_ok=True)
            tmp = landing / source / f".{src.name}.tmp"
            shutil.copyfile(src, tmp)
            t0 = time.monotonic()
            os.replace(tmp, landing / source / src.name)
            while events() == before and time.monotonic() - t0 < 300:
                time.sleep(0.25)
            print(f"{source}: file drop -> change events {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--absorb", "--rebuild"):
        {"--absorb": absorb, "--rebuild": rebuild}[sys.argv[1]](Path(sys.argv[2]))
        return
    if sys.argv[1:] == ["--latency"]:
        latency()
        return
    for size in [int(a) for a in sys.argv[1:]] or [10_000, 100_000]:
        work = Path(tempfile.mkdtemp(prefix="mdm-bench-incr-"))
        shutil.rmtree(work)
        work.mkdir()
        prep = subprocess.run(
            [
                sys.executable,
                "-W",
                "ignore",
                "-c",
                "import json, sys; sys.path.insert(0, sys.argv[1]);"
                "from benchmarks.incremental import prepare;"
                "print(json.dumps(prepare(int(sys.argv[2]), __import__('pathlib').Path(sys.argv[3]))))",
                str(ROOT),
                str(size),
                str(work),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        p = json.loads(prep.strip().splitlines()[-1])
        shutil.copy(work / "hub.db", work / "hub.before.db")
        a = _child("absorb", work)
        shutil.copy(work / "hub.before.db", work / "hub.db")
        r = _child("rebuild", work)
        print(
            f"{size:>9,} generated, hub of {p['hub_records']:,} records: absorbing "
            f"{a['arrived']:,} new/changed records took {a['total_s']} s (ingest "
            f"{a['ingest_s']}, cleanse {a['cleanse_s']}, match {a['match_s']} re-matching "
            f"{a['rematched']:,} records in {a['clusters_touched']:,} clusters, golden "
            f"{a['consolidate_s']}: {a['golden']['records_considered']:,} records considered), "
            f"peak RSS {a['peak_rss_mb']:,} MB; full rebuild {r['total_s']} s (match "
            f"{r['match_s']}, golden {r['consolidate_s']}), peak RSS {r['peak_rss_mb']:,} MB; "
            f"ratio {r['total_s'] / max(a['total_s'], 0.01):.0f}x  (prep: {p})",
            flush=True,
        )


if __name__ == "__main__":
    main()
