"""Shared fixtures: a real SQLite hub per test, a throwaway PostgreSQL database, a landing zone."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine

REPO = Path(__file__).resolve().parent.parent

# Property tests explore at random on a developer's machine, but CI must give the same verdict
# on the same commit: there the examples are derived from the test itself.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
CONFIG_DIR = REPO / "mdm_orchestration" / "defaults"
PG_ADMIN_URL = os.environ.get(
    "MDM_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session", autouse=True)
def _model_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One model-signing key for the whole run (issue 17, defect 15): hubs built by module
    fixtures, before a test's own MDM_HOME is set, sign their models with it, and the tests
    (and the runs they start in subprocesses) verify with the same key."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MDM_MODEL_KEY", raising=False)
        patch.setenv("MDM_MODEL_KEY_FILE", str(tmp_path_factory.mktemp("keys") / "model.key"))
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches ./.mdm or the developer's environment variables."""
    monkeypatch.setenv("MDM_HOME", str(tmp_path / "mdm_home"))
    for var in ("MDM_HUB_URL", "MDM_LANDING_DIR", "MDM_CONFIG_DIR", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def hub_config() -> HubConfig:
    return load_hub_config(CONFIG_DIR)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_hub_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def landing(tmp_path: Path, hub_config: HubConfig) -> Path:
    root = tmp_path / "landing"
    for source in hub_config.sources.values():
        (root / source.landing_folder).mkdir(parents=True)
    return root


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    """Each phase's report on the test item (``item.rep_call``): teardown checks run only
    after a test that passed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import CHECKS

    if CHECKS:
        settled = sum(1 for _u, what, _s in CHECKS if what == "settled")
        seconds = sum(s for _u, _w, s in CHECKS)
        terminalreporter.write_line(
            f"hub checks: {len(CHECKS)} hubs ({settled} settled: invariants and convergence "
            f"oracle) in {seconds:.1f}s"
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh, migrated hub of the test's own, once on SQLite and once on PostgreSQL."""
    from mdm_orchestration.hub.store import create_hub_engine

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_hub_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A throwaway PostgreSQL database of the test's own, dropped afterwards (the hub checks
    of tests/orchestration and tests/integration run on it first)."""
    problem = _postgres_available()
    if problem is not None:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem})"
        if os.environ.get("MDM_REQUIRE_POSTGRES"):
            pytest.fail(message + " and MDM_REQUIRE_POSTGRES is set")
        pytest.skip(message)
    name = f"mdm_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        from tests import helpers

        tracker = helpers.TRACKER
        if (
            tracker is not None
            and helpers.test_passed(request)
            and request.node.get_closest_marker("unsettled_hub") is None
        ):
            tracker.stop()
            tracker.candidates = helpers.config_folders(request.getfixturevalue("tmp_path"))
            tracker.verify(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sample_silos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated silos (small population), shared read-only by the tests that need them."""
    from mdm_orchestration.sample_data import generate

    out = tmp_path_factory.mktemp("silos")
    generate(out, people=600, seed=11)
    return out
