"""Dagster resources: the hub database, the landing zone and the hub's configuration.

Every field defaults to ``None``, resolved through :mod:`mdm_orchestration.settings` when the
resource is used, so importing the code location reads no environment variable and the CLI can
pass its ``--hub``/``--landing``/``--config`` values as resource overrides (see
:func:`in_process_resources`). An unset field keeps a hub URL's password out of the UI too.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy import Engine

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.settings import settings


class HubDatabase(dg.ConfigurableResource):
    """The hub database (SQLModel/SQLAlchemy): ``url``, else ``MDM_HUB_URL``, else SQLite under
    ``MDM_HOME``."""

    url: str | None = None
    #: The embedded default's local folder (relative outbound folders live under it):
    #: ``home``, else ``MDM_HOME``, else ``./.mdm``.
    home: str | None = None

    _engine: Engine | None = PrivateAttr(default=None)

    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve() if self.home else settings().home

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


class HubConfigResource(dg.ConfigurableResource):
    """The hub's configuration (``sources.yaml`` and the files beside it), parsed once per run
    or sensor tick: ``config_dir``, else ``MDM_CONFIG_DIR``, else the shipped defaults."""

    config_dir: str | None = None

    _config: HubConfig | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._config = load_hub_config(self.config_dir)

    @property
    def hub(self) -> HubConfig:
        if self._config is None:  # used outside a run (sensor evaluation)
            self._config = load_hub_config(self.config_dir)
        return self._config


class LandingZone(dg.ConfigurableResource):
    """Where silo extracts land (``<root>/<source folder>/<file>``): ``root``, else
    ``MDM_LANDING_DIR``, else ``<MDM_HOME>/landing``."""

    root: str | None = None
    config_dir: str | None = None

    _config: HubConfig | None = PrivateAttr(default=None)

    def root_path(self) -> Path:
        if self.root:
            return Path(self.root).expanduser().resolve()
        return settings().landing_dir

    def hub_config(self) -> HubConfig:
        """The configuration, parsed once per resource instance (a run, or a sensor tick).

        Kept while assets still take it from here; new code takes the ``config`` resource.
        """
        if self._config is None:
            self._config = load_hub_config(self.config_dir)
        return self._config


def hub_resource(url: str | None = None, home: str | None = None) -> HubDatabase:
    return HubDatabase(url=url, home=home)


def landing_resource(root: str | None = None, config_dir: str | None = None) -> LandingZone:
    return LandingZone(root=root, config_dir=config_dir)


def config_resource(config_dir: str | None = None) -> HubConfigResource:
    return HubConfigResource(config_dir=config_dir)


def in_process_resources(
    *,
    hub: str | None = None,
    landing: Path | None = None,
    config: str | None = None,
    home: Path | None = None,
) -> dict[str, dg.ConfigurableResource]:
    """The code location's resources with explicit values (the CLI's flags); ``None`` keeps
    the environment's default."""
    config_dir = str(Path(config).expanduser().resolve()) if config else None
    return {
        "hub": hub_resource(hub, str(home.resolve()) if home else None),
        "landing": landing_resource(str(landing.resolve()) if landing else None, config_dir),
        "config": config_resource(config_dir),
    }


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The code location's resources: every value from the environment, at use."""
    return in_process_resources()


__all__ = [
    "HubConfigResource",
    "HubDatabase",
    "LandingZone",
    "config_resource",
    "default_resources",
    "hub_resource",
    "in_process_resources",
    "landing_resource",
]
