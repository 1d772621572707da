"""Dagster resources: the hub database and the landing zone."""

import os
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy import Engine

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine, mdm_home


class HubDatabase(dg.ConfigurableResource):
    """The hub database (SQLModel/SQLAlchemy). SQLite under ``MDM_HOME`` unless a URL is given."""

    url: str | None = None

    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = create_hub_engine(self.url)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:  # used outside a run (sensor evaluation)
            self._engine = create_hub_engine(self.url)
        return self._engine


class LandingZone(dg.ConfigurableResource):
    """Where silo extracts land (``<root>/<source folder>/<file>``) and the hub's configuration."""

    root: str | None = None
    config_dir: str | None = None

    def root_path(self) -> Path:
        chosen = self.root or os.environ.get("MDM_LANDING_DIR") or (mdm_home() / "landing")
        return Path(chosen).expanduser().resolve()

    def hub_config(self) -> HubConfig:
        return load_hub_config(self.config_dir)


def hub_resource() -> HubDatabase:
    """The hub resource for the code location: the URL comes from ``MDM_HUB_URL`` when set
    (through ``dg.EnvVar``, so a password never shows in the UI), else the local default."""
    if os.environ.get("MDM_HUB_URL"):
        return HubDatabase(url=dg.EnvVar("MDM_HUB_URL"))
    return HubDatabase()


def landing_resource() -> LandingZone:
    return LandingZone(
        root=dg.EnvVar("MDM_LANDING_DIR") if os.environ.get("MDM_LANDING_DIR") else None,
        config_dir=dg.EnvVar("MDM_CONFIG_DIR") if os.environ.get("MDM_CONFIG_DIR") else None,
    )


__all__ = ["HubDatabase", "LandingZone", "hub_resource", "landing_resource"]
