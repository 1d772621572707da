"""The service's OpenAPI schema fuzzed with schemathesis (4.x API), time-boxed: every API
operation under ``/v1`` is called with generated requests and a key holding every scope, in
process over ASGI, on a private copy of the mastered sample hub. No answer may be a 5xx.
``MDM_FUZZ=nightly`` explores more."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.service import ServiceSettings, create_app
from tests.conftest import CONFIG_DIR
from tests.service.conftest import ALL_SCOPES, make_key

EXAMPLES = 200 if os.environ.get("MDM_FUZZ") == "nightly" else 25
KEY: dict[str, str] = {}


# The schema as the app serves it (GET /openapi.json over ASGI), loaded when the module is
# collected. schemathesis.pytest.from_fixture would load it per test, but its lazy schema reads
# a pytest internal that pytest 9 removed (``Function._nodeid``). schemathesis runs the app's
# lifespan, which opens (and migrates) its hub: an empty one of this process's own, so that two
# test workers collecting at once do not migrate one default hub together ("database is locked").
_SCHEMA_HUB = f"sqlite:///{Path(tempfile.mkdtemp(prefix='mdm-schema-')) / 'hub.db'}"
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(ServiceSettings(hub_url=_SCHEMA_HUB, config_dir=CONFIG_DIR))
).include(path_regex="^/v1/")


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, mastered_hub_file: Path) -> Iterator[Any]:
    """The app on a private copy of the mastered hub, its lifespan running."""
    from fastapi.testclient import TestClient

    target = tmp_path_factory.mktemp("fuzz") / "hub.db"
    shutil.copy(mastered_hub_file, target)
    url = f"sqlite:///{target}"
    engine = create_hub_engine(url)
    KEY["all"] = make_key(engine, ALL_SCOPES, "fuzz")
    engine.dispose()
    # The rate limit stays out of the way: the fuzzer's calls are one key's burst.
    app = create_app(
        ServiceSettings(hub_url=url, config_dir=CONFIG_DIR, rate_per_second=1e6, rate_burst=10**6)
    )
    with TestClient(app):  # runs the lifespan: the engine, the models, the configuration
        yield app


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_generated_request_gets_a_5xx(case: schemathesis.Case, live_app: Any) -> None:  # noqa: ANN401
    response = case.call(app=live_app, headers={"Authorization": f"Bearer {KEY['all']}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
