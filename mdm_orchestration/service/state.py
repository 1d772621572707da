"""What the service holds between requests: the settings, the engine, the configuration, the
stored models (reloaded when a newer one is trained) and the per-key rate limiter."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine

#: Loopback only unless told otherwise: the service holds every customer's data.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class ServiceSettings(BaseModel):
    """How ``mdm serve`` runs (its flags; the hub URL and configuration folder default as every
    other command's do: MDM_HUB_URL / MDM_CONFIG_DIR, read by the hub's settings)."""

    hub_url: str | None = None
    config_dir: Path | None = None
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    #: Largest request body accepted (413 beyond).
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    #: Requests per key per second, sustained, and the burst allowed above it (429 beyond).
    rate_per_second: float = Field(default=200.0, gt=0)
    rate_burst: int = Field(default=400, ge=1)
    #: Processes serving the port (each with its own match batcher; the rate and burst are
    #: shared out among them, so a key's limit stays about the same).
    workers: int = Field(default=1, ge=1, le=64)
    #: How many ranked candidates /v1/match answers at most.
    max_candidates: int = Field(default=10, ge=1, le=100)
    #: Proposals ``POST /v1/match`` lets wait for the matcher (per worker); beyond, 503 with
    #: Retry-After instead of an ever longer wait.
    max_queued_matches: int = Field(default=500, ge=1)


class RateLimiter:
    """A token bucket per API key (in this process: one ``mdm serve`` is one limit)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """0 if the request may go on, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


@dataclass
class ServiceState:
    settings: ServiceSettings
    engine: Engine
    config: HubConfig
    limiter: RateLimiter
    _models: tuple[dict[str, int], dict[str, Any]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: ServiceSettings) -> ServiceState:
        """The state of a service started with ``settings``: its hub's engine (dispose it when
        done), the configuration of its ``config_dir`` and a limiter at its rate."""
        return cls(
            settings=settings,
            engine=create_hub_engine(settings.hub_url),
            config=load_hub_config(settings.config_dir),
            limiter=RateLimiter(settings.rate_per_second, settings.rate_burst),
        )

    def models(self, conn: Any) -> dict[str, Any]:  # noqa: ANN401
        """The newest stored models, loaded again only when their ids change."""
        from mdm_orchestration.matching import load_models, model_ids

        ids = model_ids(conn)
        cached = self._models
        if cached is not None and cached[0] == ids:
            return cached[1]
        with self._lock:
            models = load_models(conn)
            self._models = (ids, models)
        return models
