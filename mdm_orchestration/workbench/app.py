"""The workbench as an application of its own: the router with a lifespan that opens the hub.

``mdm serve`` mounts :func:`~mdm_orchestration.workbench.pages.workbench_router` in the
service's application (one process, the API beside the pages). This host is for running the
workbench without the API (tests, a site that serves only stewards): the same router, reading
the hub from ``app.state.service`` as it does under the service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.workbench.pages import PREFIX, workbench_router


@dataclass
class WorkbenchHost:
    """What the router reads from the application's state (the service's state has the same
    ``engine`` and ``config``, and a ``models`` cache)."""

    engine: Engine
    config: HubConfig

    def models(self, conn: Any) -> dict[str, Any]:  # noqa: ANN401
        from mdm_orchestration.matching import load_models

        return load_models(conn)


def create_workbench_app(
    hub_url: str | None = None,
    config_dir: Path | None = None,
    *,
    key_file: Path | None = None,
    secure_cookies: bool | None = None,
    trusted_proxy_header: str | None = None,
    trusted_proxies: str | list[str] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_hub_engine(hub_url)
        app.state.service = WorkbenchHost(engine=engine, config=load_hub_config(config_dir))
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="MDM steward workbench",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.include_router(
        workbench_router(
            key_file=key_file,
            secure_cookies=secure_cookies,
            trusted_proxy_header=trusted_proxy_header,
            trusted_proxies=trusted_proxies,
        )
    )

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/review", status_code=303)

    return app
