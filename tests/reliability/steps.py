"""The hub's operations as the reliability tests drive them, in-process or in a subprocess
(``python -m tests.reliability.steps <operation> <hub url> [<config dir>]``): a subprocess may
be killed at a crash point (``MDM_CRASH_AT``) or find its database stopped under it."""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa

from mdm_orchestration.cleansing import cleanse_pending
from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.matching import match_incremental, needs_full_rematch, rebuild_clusters
from mdm_orchestration.survivorship import consolidate
from tests.conftest import CONFIG_DIR

#: Tables a crashed run must leave exactly as they were (counts compared before and after).
DERIVED = (
    "cleansed_records",
    "match_clusters",
    "match_pairs",
    "match_runs",
    "blocking_index",
    "consolidation_queue",
    "golden_records",
    "golden_history",
    "golden_xref",
    "golden_changes",
    "golden_runs",
)


def reconsolidate(engine: sa.Engine, config: HubConfig, run_id: str = "test") -> dict:
    """What reconsolidate_job does: cleanse what is new, match it (in full when due, else
    incrementally), consolidate what changed."""
    cleanse_pending(engine, config)
    with engine.connect() as conn:
        full = needs_full_rematch(conn)
    match = rebuild_clusters(engine, config) if full else match_incremental(engine, config)
    golden = consolidate(engine, config, run_id)
    return {"full": full, "match": match.counts, "golden": golden.counts}


def files_of(landing: Path) -> list[Path]:
    """A landing zone's files in the order the silos exported them (by date, then source)."""
    return sorted(
        (p for p in landing.rglob("*") if p.is_file()),
        key=lambda p: (p.name.split("_")[-1], p.parent.name),
    )


def build_base(url: str, landing: Path, config: HubConfig | None = None) -> None:
    """A consolidated hub of all but the last two files, which are landed and ingested."""
    from mdm_orchestration.ingestion import ingest_file
    from mdm_orchestration.matching import train_models

    config = config or load_hub_config(CONFIG_DIR)
    engine = create_hub_engine(url)
    files = files_of(landing)
    train_models(engine)
    for path in files[:-2]:
        ingest_file(engine, config, path, landing)
    reconsolidate(engine, config, "base")
    for path in files[-2:]:
        ingest_file(engine, config, path, landing)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in DERIVED}


def main(argv: list[str]) -> int:
    operation, url = argv[0], argv[1]
    config = load_hub_config(Path(argv[2]) if len(argv) > 2 and argv[2] else CONFIG_DIR)
    engine = create_hub_engine(url)
    if operation == "reconsolidate":
        print(reconsolidate(engine, config, "subprocess"))
    elif operation == "rebuild":
        rebuild_clusters(engine, config)
        consolidate(engine, config, "subprocess")
    elif operation == "consolidate":
        consolidate(engine, config, "subprocess")
    elif operation == "first_load":
        # Everything landed, from an empty hub: train, ingest, cleanse, match, consolidate,
        # then report the process's peak memory with the run's counts (JSON on stdout).
        import json
        import resource

        from mdm_orchestration.matching import train_models
        from tests.helpers import ingest_all

        landing = Path(argv[3])
        train_models(engine)
        ingest_all(engine, config, landing)
        result = reconsolidate(engine, config, "first_load")
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({**result, "peak_mib": peak_kib // 1024}))
    else:
        raise SystemExit(f"unknown operation {operation}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
