"""Fixtures of the service's tests: a mastered sample hub (built once, copied per test), keys,
an in-process client and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.service import ServiceSettings, create_api_key, create_app
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import build_mastered_hub, free_port

ALL_SCOPES = ["read", "match", "write:self_service", "write:hub"]
PROBLEM = "application/problem+json"
#: Every table a write through the service touches.
WRITTEN_TABLES = (
    "extracts",
    "source_record_versions",
    "source_records",
    "quarantine",
    "api_writes",
)


def written_counts(engine: sa.Engine) -> dict[str, int]:
    """The row count of each of ``WRITTEN_TABLES``."""
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in WRITTEN_TABLES
        }


@pytest.fixture(scope="session")
def mastered_hub_file(tmp_path_factory: pytest.TempPathFactory, sample_silos: Path) -> Path:
    root = tmp_path_factory.mktemp("mastered")
    build_mastered_hub(root, sample_silos)
    return root / "hub.db"


@pytest.fixture
def hub_url(tmp_path: Path, mastered_hub_file: Path) -> str:
    """A private copy of the mastered hub."""
    target = tmp_path / "service-hub.db"
    shutil.copy(mastered_hub_file, target)
    return f"sqlite:///{target}"


@pytest.fixture
def hub_engine(hub_url: str) -> Iterator[sa.Engine]:
    engine = create_hub_engine(hub_url)
    yield engine
    engine.dispose()


def make_key(engine: sa.Engine, scopes: list[str], name: str = "test") -> str:
    return create_api_key(engine, name, scopes, load_hub_config(CONFIG_DIR), "tests")[1]


@pytest.fixture
def api_key(hub_engine: sa.Engine) -> str:
    return make_key(hub_engine, ALL_SCOPES, "all")


@pytest.fixture
def client(hub_url: str) -> Iterator[httpx.Client]:
    from fastapi.testclient import TestClient

    app = create_app(ServiceSettings(hub_url=hub_url, config_dir=CONFIG_DIR, max_body_bytes=4096))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


class Server:
    """``mdm serve`` in a process of its own, its log in a file."""

    def __init__(self, hub_url: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_HUB")}
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mdm_orchestration.cli",
                "serve",
                "--hub",
                hub_url,
                "--config",
                str(CONFIG_DIR),
                "--port",
                str(self.port),
                *extra,
            ],
            cwd=REPO,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mdm serve exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/openapi.json", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("mdm serve did not start in 60 s")

    def stop(self) -> str:
        # Its whole session: with --workers, the worker processes too.
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._fh.close()
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def server(hub_url: str, tmp_path: Path) -> Iterator[Server]:
    s = Server(hub_url, tmp_path / "server.log")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def _quiet_service_logs() -> None:
    logging.getLogger("mdm.service").setLevel(logging.INFO)
