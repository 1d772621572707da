"""A mastered hub with one user per role, and the service's application with the workbench."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.workbench import create_user
from tests.conftest import CONFIG_DIR
from tests.helpers import build_mastered_hub

PASSWORD = "correct horse battery staple"
USERS = {"vera": "viewer", "stella": "steward", "ada": "admin"}


@pytest.fixture(scope="session")
def workbench_hub(tmp_path_factory: pytest.TempPathFactory, sample_silos: Path) -> str:
    """A SQLite hub of the sample silos (golden records, a review queue) with the users."""
    url = build_mastered_hub(tmp_path_factory.mktemp("workbench_hub"), sample_silos)
    engine = create_hub_engine(url)
    for name, role in USERS.items():
        create_user(engine, name, role, PASSWORD, "tests")
    engine.dispose()
    return url


def workbench_app(hub_url: str, key_file: Path):  # type: ignore[no-untyped-def]
    """The workbench on ``hub_url`` (its own host application: the same router the service
    mounts)."""
    from mdm_orchestration.workbench import create_workbench_app

    return create_workbench_app(hub_url, CONFIG_DIR, key_file=key_file)


def service_app(hub_url: str, key_file: Path):  # type: ignore[no-untyped-def]
    """The service's application on ``hub_url`` with the workbench mounted (by the service
    itself once it includes it; here otherwise)."""
    from mdm_orchestration.service import ServiceSettings, create_app
    from mdm_orchestration.workbench import workbench_router

    app = create_app(ServiceSettings(hub_url=hub_url, config_dir=CONFIG_DIR))
    paths = {getattr(r, "path", "") for r in app.routes}
    if "/workbench/login" not in paths:
        app.include_router(workbench_router(key_file=key_file))
    return app


def copy_hub(url: str, dest: Path) -> str:
    """A consistent copy of a SQLite hub other tests hold open (the backup API, not a file
    copy: the source may have writes in its WAL)."""
    src = sqlite3.connect(url.removeprefix("sqlite:///"))
    dst = sqlite3.connect(dest)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{dest}"


def reconsolidate(engine) -> dict:  # type: ignore[no-untyped-def]
    """What reconsolidate_job does: cleanse, match (a full rebuild when one is due), survive."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.matching import match_incremental, needs_full_rematch, rebuild_clusters
    from mdm_orchestration.survivorship import consolidate

    config = load_hub_config(CONFIG_DIR)
    cleanse_pending(engine, config)
    with engine.connect() as conn:
        full = needs_full_rematch(conn)
    (rebuild_clusters if full else match_incremental)(engine, config)
    return consolidate(engine, config, "test").counts
