"""The environment, read in one place.

Every ``MDM_*`` variable (and ``DAGSTER_HOME``) the hub understands is a field here, and other
modules ask :func:`settings` for them. Left outside: ``MDM_CRASH_AT`` (test plumbing, in
``hub.crash``), ``${MDM_SECRET_...}`` in subscriptions.yaml (``config.golden.expand_env``; no
other name expands), and ``MDM_CONFIG_DIR`` still read by ``config.resolve_config_dir``.
The environment is read afresh on every call of :func:`settings`, so a process (or a test) that
changes a variable sees the change; nothing here ever writes the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where the embedded default keeps its files when nothing else is said.
DEFAULT_HOME = Path(".mdm")


class Settings(BaseSettings):
    """The hub's environment variables; unset ones are ``None`` (the callers' defaults apply)."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    mdm_home: Path | None = Field(default=None, validation_alias="MDM_HOME")
    mdm_hub_url: str | None = Field(default=None, validation_alias="MDM_HUB_URL")
    mdm_landing_dir: Path | None = Field(default=None, validation_alias="MDM_LANDING_DIR")
    mdm_config_dir: Path | None = Field(default=None, validation_alias="MDM_CONFIG_DIR")
    mdm_steward: str | None = Field(
        default=None, validation_alias=AliasChoices("MDM_STEWARD", "USER")
    )
    dagster_home: Path | None = Field(default=None, validation_alias="DAGSTER_HOME")
    #: The key that signs match models (hex, at least 32 bytes), for deployments whose runs do
    #: not share one MDM_HOME (a secret of the Kubernetes namespace, say).
    mdm_model_key: SecretStr | None = Field(default=None, validation_alias="MDM_MODEL_KEY")
    #: Where the model-signing key is kept (default ``<home>/model.key``).
    mdm_model_key_file: Path | None = Field(default=None, validation_alias="MDM_MODEL_KEY_FILE")

    #: The workbench's trusted-proxy sign-in (single sign-on in front of it): the request
    #: header that names the signed-in user (e.g. ``X-Forwarded-User``); unset: off.
    mdm_workbench_trusted_proxy_header: str | None = Field(
        default=None, validation_alias="MDM_WORKBENCH_TRUSTED_PROXY_HEADER"
    )
    #: The proxies whose header is believed: addresses or networks, comma-separated (default
    #: loopback only: ``127.0.0.1,::1``).
    mdm_workbench_trusted_proxies: str | None = Field(
        default=None, validation_alias="MDM_WORKBENCH_TRUSTED_PROXIES"
    )

    @property
    def home(self) -> Path:
        """The local folder of the embedded default (``MDM_HOME``, else ``./.mdm``)."""
        return (self.mdm_home or DEFAULT_HOME).expanduser().resolve()

    @property
    def steward(self) -> str:
        """Who a label, override or erasure is recorded as (``MDM_STEWARD``, else ``USER``)."""
        return self.mdm_steward or "steward"

    @property
    def model_key_file(self) -> Path:
        """The file of the model-signing key (``MDM_MODEL_KEY_FILE``, else ``<home>/model.key``);
        outside the hub database, so that writing the database is not enough to forge a model."""
        return (self.mdm_model_key_file or self.home / "model.key").expanduser().resolve()

    @property
    def landing_dir(self) -> Path:
        """The landing root (``MDM_LANDING_DIR``, else ``<home>/landing``)."""
        return (self.mdm_landing_dir or self.home / "landing").expanduser().resolve()


#: Values an in-process run is given explicitly (:func:`scoped`), over the environment's.
_OVERRIDES: ContextVar[dict[str, object] | None] = ContextVar("mdm_settings", default=None)


def settings() -> Settings:
    """The environment as it is now, with any :func:`scoped` values over it."""
    overrides = _OVERRIDES.get()
    return Settings(**overrides) if overrides else Settings()


@contextmanager
def scoped(**values: object) -> Iterator[None]:
    """Within the block (this thread or task only), :func:`settings` returns ``values`` (field
    names, e.g. ``mdm_home``) over the environment's; ``None`` values are ignored.

    For what a resource cannot carry yet: ``mdm demo --home`` puts the subscribers' relative
    outbound folders under that home, which the syndication asset reads through ``mdm_home()``.
    """
    given = {k: v for k, v in values.items() if v is not None}
    token = _OVERRIDES.set({**(_OVERRIDES.get() or {}), **given})
    try:
        yield
    finally:
        _OVERRIDES.reset(token)


__all__ = ["DEFAULT_HOME", "Settings", "scoped", "settings"]
