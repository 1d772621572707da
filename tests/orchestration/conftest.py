"""Every hub a test here builds is checked when the test ends: the invariants that hold after
any commit and, once the hub is settled, every invariant and the convergence oracle
(``track_hubs`` in tests/helpers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import track_hubs


@pytest.fixture(autouse=True)
def hub_checks(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    yield from track_hubs(request)


def build_trained_hub(url: str, sample_silos: Path, landing: Path, config) -> None:  # type: ignore[no-untyped-def]
    """The generated silos ingested, cleansed and trained into the hub at ``url``."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import train_models
    from tests.helpers import copy_landing, ingest_all

    engine = create_hub_engine(url)
    ingest_all(engine, config, copy_landing(sample_silos, landing))
    cleanse_pending(engine, config)
    train_models(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def trained_hub(tmp_path_factory, sample_silos) -> Path:  # type: ignore[no-untyped-def]
    """A SQLite hub file holding the generated silos, cleansed, with trained models (copied
    by each test that uses it: :func:`sqlite_hub`)."""
    from mdm_orchestration.config import load_hub_config
    from tests.conftest import CONFIG_DIR

    root = tmp_path_factory.mktemp("trained")
    url = f"sqlite:///{root / 'hub.db'}"
    build_trained_hub(url, sample_silos, root / "landing", load_hub_config(CONFIG_DIR))
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return root / "hub.db"


@pytest.fixture
def sqlite_hub(tmp_path, trained_hub) -> str:  # type: ignore[no-untyped-def]
    """A private copy of :func:`trained_hub`."""
    shutil.copy(trained_hub, tmp_path / "hub.db")
    return f"sqlite:///{tmp_path / 'hub.db'}"
