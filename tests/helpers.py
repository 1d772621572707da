"""Small helpers shared by tests."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import sqlalchemy as sa


def write_file(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def copy_landing(sample_silos: Path, dest: Path) -> Path:
    shutil.copytree(sample_silos / "landing", dest, dirs_exist_ok=True)
    return dest


def ingest_all(engine: sa.Engine, config, landing: Path) -> None:  # type: ignore[no-untyped-def]
    """Ingest every file under ``landing``, in name order (the generator's files sort by date)."""
    from mdm_orchestration.ingestion import ingest_file

    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        ingest_file(engine, config, path, landing)


def _rows(engine: sa.Engine, sql: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).all()


def check_invariants(engine) -> None:
    """RELIABILITY.md's invariants that concern golden records."""
    from mdm_orchestration.hub.tables import CLEANSED, CURRENT_CLEANSED

    with engine.connect() as conn:
        current = set(
            conn.execute(
                sa.select(CLEANSED.c.source_record_id).select_from(CURRENT_CLEANSED)
            ).scalars()
        )
    mapping = dict(_rows(engine, "SELECT record_id, golden_id FROM golden_xref"))
    assert set(mapping) == current  # every source record in exactly one golden record
    state = {
        g: (s, m, v)
        for g, s, m, v in _rows(
            engine, "SELECT golden_id, status, merged_into, version FROM golden_records"
        )
    }
    assert all(state[g][0] == "active" for g in mapping.values())
    assert {g for g, s in state.items() if s[0] == "active"} == set(mapping.values())  # no empty
    history = Counter(g for (g,) in _rows(engine, "SELECT golden_id FROM golden_history"))
    events = Counter(g for (g,) in _rows(engine, "SELECT golden_id FROM golden_changes"))
    assert history == events  # every version has exactly one event, and no orphan event
    for g, (_s, _m, version) in state.items():
        assert history[g] == version  # versions 1..n, no gaps


def build_mastered_hub(root: Path, sample_silos: Path) -> str:
    """A SQLite hub under ``root`` holding the generated silos: ingested, cleansed, matched on
    the shipped labels and consolidated into golden records. Returns its URL."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import rebuild_clusters, train_models
    from mdm_orchestration.survivorship import consolidate
    from tests.conftest import CONFIG_DIR

    landing = copy_landing(sample_silos, root / "landing")
    url = f"sqlite:///{root / 'hub.db'}"
    engine = create_hub_engine(url)
    config = load_hub_config(CONFIG_DIR)
    ingest_all(engine, config, landing)
    cleanse_pending(engine, config)
    train_models(engine)
    rebuild_clusters(engine, config)
    consolidate(engine, config, "setup")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return url
