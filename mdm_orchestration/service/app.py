"""The service's application: one FastAPI app, its routers under ``/v1``, one lifespan that
opens and closes the hub engine. No Dagster in here: records written through the API land in
the hub, and a sensor picks them up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mdm_orchestration.service import golden, matching, records
from mdm_orchestration.service.middleware import ServiceMiddleware
from mdm_orchestration.service.problems import install
from mdm_orchestration.service.state import ServiceSettings, ServiceState
from mdm_orchestration.workbench import workbench_router

DESCRIPTION = """\
The customer MDM hub over HTTP. Every request needs an API key (`mdm api-key create`) sent as
`Authorization: Bearer <key>`; scopes: `read` (golden records, xref, search), `match`
(`POST /v1/match`), `write:<source>` (records of a source written through the API). Errors are
`application/problem+json` (RFC 9457) naming the field at fault.
"""


def warm_up(state: ServiceState) -> None:
    """Load the models and run the cleansers once, so that the first request does not pay for
    their imports and tables (seconds)."""
    from mdm_orchestration.matching import NoModel
    from mdm_orchestration.service.inputs import canonical_source, cleanse_one

    # Without a model, /v1/match answers 503 until one is trained.
    with state.engine.connect() as conn, contextlib.suppress(NoModel):
        state.models(conn)
    sample = {"given_name": "Ann", "family_name": "Lee", "email": "ann@example.com"}
    cleanse_one(sample, canonical_source("US"), state.config, strict=False)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = ServiceState.open(settings)
        warm_up(app.state.service)
        app.state.match_batcher = matching.MatchBatcher(app.state.service)
        try:
            yield
        finally:
            app.state.match_batcher.close()
            app.state.service.engine.dispose()

    app = FastAPI(
        title="MDM hub",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install(app)
    app.include_router(golden.router)
    app.include_router(matching.router)
    app.include_router(records.router)
    # The steward workbench (issue 19): server-rendered pages under /workbench.
    app.include_router(workbench_router())
    app.add_middleware(ServiceMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
