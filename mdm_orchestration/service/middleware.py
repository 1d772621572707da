"""What wraps every request: the body size limit, the access log, and a last-resort 500.

The access log is the service's own (uvicorn's is switched off: it prints query strings). It
records the method, the path (paths carry ids only: golden ids, source names and keys), the
query's parameter *names* with every value masked, the status, the time taken and the id of the
API key; never a body, a header or a query value. An exception inside the application is
logged by its type alone (its message may quote a value) and answered with a problem document.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdm_orchestration.service.problems import problem_response

ACCESS_LOG = logging.getLogger("mdm.service.access")
ERROR_LOG = logging.getLogger("mdm.service.error")


def masked_query(query: bytes) -> str:
    """``email=*&page=*``: the parameter names, never their values."""
    if not query:
        return ""
    names = [name for name, _v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)]
    return "&".join(
        f"{n}=*" for n in names if n.isidentifier() or n.replace("-", "_").isidentifier()
    )


#: A path parameter logged as it is; anything else (an ``@``, spaces, long text) as ``{name}``.
SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def logged_path(scope: Scope) -> str:
    """The path for the log: the route's template with the path parameters that look like ids
    filled in; ``<unmatched>`` for a path no route took (it could carry anything)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        return "<unmatched>"
    params = scope.get("path_params") or {}
    for name, value in params.items():
        shown = str(value) if SAFE_ID.match(str(value)) and "@" not in str(value) else None
        template = template.replace("{" + name + "}", shown or "{" + name + "}")
    return template


class BodyTooLarge(Exception):
    pass


class ServiceMiddleware:
    """Body limit, access log and the last-resort error answer, as one plain ASGI layer (a
    ``BaseHTTPMiddleware`` would cost a task switch per request)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = {"status": 0, "sent": False}
        path = scope.get("path", "")
        limit = self.max_body_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._reply(send, state, 413, f"the body is larger than {limit} bytes", path)
            self._log(scope, state["status"], started)
            return
        # The API takes JSON; the steward workbench beside it posts HTML forms (its own CSRF
        # check guards them). The size limit holds for both.
        if scope["method"] in ("POST", "PUT", "PATCH") and not path.startswith("/workbench/"):
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json" and not ctype.endswith(b"+json"):
                await self._reply(send, state, 415, "send the body as application/json", path)
                self._log(scope, state["status"], started)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["sent"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            await self._reply(send, state, 413, f"the body is larger than {limit} bytes", path)
        except Exception as exc:  # noqa: BLE001 - answered, logged by type only
            ERROR_LOG.error(
                "unhandled %s on %s %s", type(exc).__name__, scope["method"], logged_path(scope)
            )
            await self._reply(send, state, 500, "the service failed; see its log", path)
        self._log(scope, state["status"], started)

    async def _reply(self, send: Send, state: dict, status: int, detail: str, path: str) -> None:
        if state["sent"]:
            return
        response = problem_response(status, detail, path)
        state["status"] = status
        state["sent"] = True
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    def _log(self, scope: Scope, status: int, started: float) -> None:
        query = masked_query(scope.get("query_string", b""))
        target = logged_path(scope) + (f"?{query}" if query else "")
        key_id = scope.get("state", {}).get("api_key_id", "-")
        ACCESS_LOG.info(
            '%s "%s %s" %d %.1fms key=%s',
            (scope.get("client") or ("-",))[0],
            scope["method"],
            target,
            status,
            (time.perf_counter() - started) * 1000,
            key_id,
        )
