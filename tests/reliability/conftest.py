"""Every hub a reliability test builds is checked when it ends, as in tests/orchestration."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL
from tests.helpers import copy_landing, track_hubs
from tests.reliability.steps import build_base

#: A model-signing key shared by the hubs of a module (a module's hub outlives the MDM_HOME of
#: the test that built it, where the key file would otherwise be).
MODEL_KEY = "5e" * 32


@pytest.fixture(scope="module", autouse=True)
def _model_key():  # type: ignore[no-untyped-def]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MDM_MODEL_KEY", MODEL_KEY)
        yield


@pytest.fixture(scope="module")
def small_silos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated silos of 80 people (ten files), a landing zone of the module's own."""
    from mdm_orchestration.sample_data import generate

    out = tmp_path_factory.mktemp("small_silos")
    generate(out, people=80, seed=3)
    return copy_landing(out, out / "landing_copy")


@pytest.fixture(autouse=True)
def hub_checks(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    yield from track_hubs(request)


@pytest.fixture(scope="module")
def sqlite_base(tmp_path_factory: pytest.TempPathFactory, small_silos: Path) -> Path:
    """The base hub of :func:`~tests.reliability.steps.build_base` on SQLite."""
    root = tmp_path_factory.mktemp("crash_base")
    build_base(f"sqlite:///{root / 'hub.db'}", small_silos)
    return root / "hub.db"


@pytest.fixture(scope="module")
def postgres_base(small_silos):
    """The base hub on the local PostgreSQL, a template each test clones."""
    name = f"mdm_crash_base_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        build_base(base, small_silos)
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def hub(request, tmp_path):
    """A copy of the base hub, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_base"), tmp_path / "hub.db")
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    template = request.getfixturevalue("postgres_base")
    name = f"mdm_crash_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
