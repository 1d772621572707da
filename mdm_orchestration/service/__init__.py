"""The hub as a service (``mdm serve``): an HTTP API over the hub database, a process of its
own beside Dagster. It calls the domain packages' faces and never imports Dagster: what it
writes lands in the hub, and a sensor picks it up.

The face: :func:`create_app`, :class:`ServiceSettings`, :func:`serve`, and the API-key
functions behind ``mdm api-key``.
"""

from mdm_orchestration.service.app import create_app
from mdm_orchestration.service.keys import (
    ApiKeyError,
    Principal,
    authenticate,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from mdm_orchestration.service.server import serve
from mdm_orchestration.service.state import DEFAULT_HOST, DEFAULT_PORT, ServiceSettings

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ApiKeyError",
    "Principal",
    "ServiceSettings",
    "authenticate",
    "create_api_key",
    "create_app",
    "list_api_keys",
    "revoke_api_key",
    "serve",
]
