"""Dependencies of the routes: the service state, the hub connection, the caller's key.

The ones that only read the request or the service's state are ``async``: FastAPI runs a plain
``def`` dependency in its thread pool, a hand-off to another thread and back per dependency
(four per ``POST /v1/match`` before), each waiting for the GIL while the match batcher
computes. The caller's key stays in the pool: it reads ``api_keys`` through the hub's
connection pool, and the event loop waiting there for a connection that a request in a worker
thread holds (until the loop sends its answer) would never get one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection

from mdm_orchestration.service.keys import Principal, authenticate
from mdm_orchestration.service.problems import Problem
from mdm_orchestration.service.state import ServiceState

_bearer = HTTPBearer(auto_error=False, description="an API key from `mdm api-key create`")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mdm"'}


async def service_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


State = Annotated[ServiceState, Depends(service_state)]


def hub_connection(state: State) -> Iterator[Connection]:
    with state.engine.connect() as conn:
        yield conn


Hub = Annotated[Connection, Depends(hub_connection)]


def caller(
    request: Request,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The API key of the request (401 without a valid one; 429 over its rate)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "send an API key: Authorization: Bearer <key>", headers=CHALLENGE)
    principal = authenticate(state.engine, credentials.credentials)
    if principal is None:
        raise Problem(401, "the API key is unknown or revoked", headers=CHALLENGE)
    request.state.api_key_id = principal.key_id
    wait = state.limiter.allow(principal.key_id)
    if wait:
        raise Problem(
            429,
            "too many requests for this API key",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )
    return principal


Caller = Annotated[Principal, Depends(caller)]


def require(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, who must hold ``scope``."""

    async def check(principal: Caller) -> Principal:
        if not principal.allows(scope):
            raise Problem(403, f"this API key lacks the scope {scope!r}", kind="scope")
        return principal

    return check
