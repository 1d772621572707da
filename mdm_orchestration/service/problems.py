"""Errors as ``application/problem+json`` (RFC 9457), each naming the field at fault.

No answer ever echoes a submitted value: pydantic's ``input`` and ``ctx`` are dropped, and the
messages of our own checks name fields and reason codes only.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """An error answer: status, a short detail, the fields at fault, extra members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        kind: str | None = None,
        **extra: Any,  # noqa: ANN401
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.kind = kind
        self.extra = extra


def field_error(field: str, reason: str, detail: str | None = None) -> dict[str, str]:
    return {"field": field, "reason": reason, "detail": detail or reason}


def problem_response(
    status: int,
    detail: str,
    instance: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    kind: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://mdm.invalid/problems/{kind}" if kind else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
        # The first field at fault, for clients that read one.
        body["field"] = errors[0]["field"]
    body.update(extra or {})
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    """``body.email``, ``query.as_of``, ``body`` (the whole body)."""
    return ".".join(str(p) for p in loc) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for e in exc.errors():
        kind = str(e.get("type", "invalid"))
        message = str(e.get("msg", kind))
        if kind == "json_invalid":
            message = "the body is not valid JSON"
        elif kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required"
        elif "Value error" in message:
            message = message.replace("Value error, ", "")
        else:
            # pydantic's own messages may quote the value ("Input should be ... got 'x'").
            message = message.split(", got")[0]
        out.append(field_error(_location(e.get("loc", ())), kind, message))
    return out


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status,
            exc.detail,
            request.url.path,
            errors=exc.errors,
            headers=exc.headers,
            kind=exc.kind,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(exc)
        malformed = any(e["reason"] == "json_invalid" for e in errors)
        return problem_response(
            400 if malformed else 422,
            "the body is not valid JSON" if malformed else "the request has invalid fields",
            request.url.path,
            errors=errors,
            kind="malformed-json" if malformed else "invalid-fields",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        return problem_response(
            exc.status_code, detail, request.url.path, headers=dict(exc.headers or {})
        )
