"""Running the app on uvicorn, with the service's own access log (uvicorn's is off: it would
print query strings)."""

from __future__ import annotations

import logging
import os
from typing import Any

import uvicorn

from mdm_orchestration.hub.redaction import RedactingFilter
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.service.app import create_app
from mdm_orchestration.service.state import ServiceSettings

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Every line the service writes passes the redaction filter (RELIABILITY.md rule 6).
    "filters": {"redact": {"()": RedactingFilter}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
            "filters": ["redact"],
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "mdm.service": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


#: How ``serve`` hands its settings to worker processes (``--workers`` above 1).
SETTINGS_ENV = "MDM_SERVICE_SETTINGS"


def serve(settings: ServiceSettings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM end it cleanly)."""
    logging.getLogger("mdm.service").info(
        "serving on http://%s:%d (docs at /docs), %d worker(s)",
        settings.host,
        settings.port,
        settings.workers,
    )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_config": LOG_CONFIG,
        "server_header": False,
        "proxy_headers": False,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # The hub's schema brought up to date once, here, not raced by the workers.
    engine = create_hub_engine(settings.hub_url)
    with engine.connect():
        pass
    engine.dispose()
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(f"{__name__}:app_of_environment", factory=True, workers=settings.workers, **common)


def app_of_environment() -> Any:  # noqa: ANN401 - a FastAPI app
    """A worker's app (``--workers``): the settings ``serve`` left in the environment, with the
    rate and burst shared out among the workers."""
    settings = ServiceSettings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(
        settings.model_copy(
            update={
                "rate_per_second": settings.rate_per_second / settings.workers,
                "rate_burst": max(1, settings.rate_burst // settings.workers),
            }
        )
    )
