"""Running the app on uvicorn, with the service's own access log (uvicorn's is off: it would
print query strings)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from mdm_orchestration.hub.redaction import RedactingFilter
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
            "stream": sys.stderr,
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


def serve(settings: ServiceSettings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM end it cleanly)."""
    logging.getLogger("mdm.service").info(
        "serving on http://%s:%d (docs at /docs)", settings.host, settings.port
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=LOG_CONFIG,
        server_header=False,
        proxy_headers=False,
    )
