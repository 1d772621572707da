"""The workbench's pages under ``/workbench``: sign-in, the review queue, the golden record 360,
search, corrections and the audit trail. Server-rendered Jinja2 with htmx for the decisions.

The router reads the hub engine and configuration from the application's state
(``app.state.service``, which the service's lifespan sets: ``engine``, ``config`` and, when it
has one, a ``models(conn)`` cache). Errors the visitor caused are problem documents like the
API's (htmx shows their ``detail``); a signed-out visitor is sent to ``/workbench/login``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from mdm_orchestration.workbench import audit as audits
from mdm_orchestration.workbench.proxy import trusted_proxy
from mdm_orchestration.workbench.sessions import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LoginThrottle,
    Session,
    SessionCodec,
    csrf_ok,
    new_session,
    session_key,
)
from mdm_orchestration.workbench.users import ADMIN, STEWARD, VIEWER, User, authenticate, get_user
from mdm_orchestration.workbench.views import (
    CorrectionError,
    golden_view,
    merge_golden,
    models_of,
    overrides_to_review,
    overview,
    pair_view,
    pin_from_form,
    pin_reviewed,
    queue,
    recent_decisions,
    remove_pin,
    review_item,
    search,
    search_rows,
    split_record,
    undo_split,
)

PREFIX = "/workbench"
PACKAGE = Path(__file__).parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
VERDICT_KEYS = {"m": "match", "d": "distinct", "u": "unsure"}
#: Every page: no framing, scripts and styles from here only, nothing cached (customer data).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
APPLY_NOTE = (
    "It takes effect at the next reconsolidation (mdm match, or the reconsolidation sensor): "
    "the model is retrained with the label and the clusters rebuilt."
)


class WorkbenchProblem(Exception):
    """An error answered as a problem document (``application/problem+json``)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def problem(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "type": "about:blank",
        "title": {403: "Forbidden", 404: "Not found", 409: "Conflict", 422: "Unprocessable"}.get(
            status, "Error"
        ),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def _safe_next(target: str | None) -> str:
    """Where to go after sign-in: a workbench path of this site only (no open redirect)."""
    if not target:
        return f"{PREFIX}/review"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/"):
        return f"{PREFIX}/review"
    if parts.path.startswith(f"{PREFIX}/login") or "\\" in target:
        return f"{PREFIX}/review"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def workbench_router(
    *,
    key_file: Path | None = None,
    secure_cookies: bool | None = None,
    trusted_proxy_header: str | None = None,
    trusted_proxies: str | list[str] | None = None,
) -> APIRouter:
    """The workbench's routes (prefix ``/workbench``), for an application whose state holds
    the hub (``app.state.service``: ``engine``, ``config``). ``key_file`` holds the session
    signing secret (default ``<MDM_HOME>/workbench.key``, made on first use);
    ``secure_cookies`` forces the cookies' Secure flag (default: when the request is HTTPS).
    ``trusted_proxy_header`` / ``trusted_proxies`` turn on the single sign-on mode of
    :mod:`~mdm_orchestration.workbench.proxy` (default: the environment's
    ``MDM_WORKBENCH_TRUSTED_PROXY_HEADER`` / ``MDM_WORKBENCH_TRUSTED_PROXIES``; off when unset)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    proxy = trusted_proxy(trusted_proxy_header, trusted_proxies)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    throttle = LoginThrottle()
    codec_holder: list[SessionCodec] = []

    def codec() -> SessionCodec:
        if not codec_holder:
            from mdm_orchestration.settings import settings

            codec_holder.append(
                SessionCodec(session_key(key_file or settings().home / "workbench.key"))
            )
        return codec_holder[0]

    def state(request: Request) -> Any:  # noqa: ANN401
        return request.app.state.service

    def session_of(request: Request) -> Session | None:
        return codec().load(request.cookies.get(COOKIE))

    def set_session(request: Request, response: Response, session: Session | None) -> None:
        secure = request.url.scheme == "https" if secure_cookies is None else secure_cookies
        if session is None:
            response.delete_cookie(
                COOKIE, path=PREFIX, secure=secure, httponly=True, samesite="lax"
            )
            return
        response.set_cookie(
            COOKIE,
            codec().dump(session),
            max_age=codec().max_age,
            path=PREFIX,
            secure=secure,
            httponly=True,
            samesite="lax",
        )

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        response = templates.TemplateResponse(
            request, name, {"prefix": PREFIX, **context}, status_code=status
        )
        response.headers.update(SECURITY_HEADERS)
        return response

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = f"{PREFIX}/login?next={quote(_safe_next(target), safe='/')}"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": location, **SECURITY_HEADERS})
        return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)

    def signed_in(request: Request) -> tuple[User, Session, bool] | None:
        """The signed-in user, read afresh from the hub (role and enabled flag), the session,
        and whether the session is new (a trusted proxy named a user the cookie did not)."""
        session = session_of(request)
        asserted = proxy.asserted_user(request)
        if asserted is not None:
            return proxy_user(request, asserted, session)
        if session is None or session.user is None:
            return None
        with state(request).engine.connect() as conn:
            user = get_user(conn, session.user)
        if user is None or not user.enabled:
            return None
        return user, session, False

    def proxy_user(
        request: Request, name: str, session: Session | None
    ) -> tuple[User, Session, bool]:
        """The user a trusted proxy names: an existing, enabled local user, or 403."""
        engine = state(request).engine
        with engine.connect() as conn:
            user = get_user(conn, name)
        if user is None or not user.enabled:
            client = (request.client.host if request.client else "-") or "-"
            audits.audit(engine, name, audits.SIGN_IN_FAILED, client=client, via="proxy")
            raise WorkbenchProblem(
                403, "the single sign-on user is not an enabled workbench user (mdm user create)"
            )
        if session is not None and session.user == user.name:
            return user, session, False
        client = (request.client.host if request.client else "-") or "-"
        audits.audit(engine, user.name, audits.SIGN_IN, client=client, via="proxy")
        # A fresh session (and CSRF token) for the user the proxy named.
        return user, new_session(user.name), True

    async def posted(request: Request, session: Session) -> dict[str, str]:
        """The form, once its CSRF token (field or ``X-CSRF-Token``) is the session's."""
        form = await request.form()
        given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not csrf_ok(session, given if isinstance(given, str) else None):
            raise WorkbenchProblem(
                403, "the form's CSRF token is missing or wrong: reload the page"
            )
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def guarded(role: str, *, post: bool = False) -> Callable[..., Any]:
        """A route for users holding ``role``: signed out -> the sign-in page; too low a role
        -> 403; a POST without its CSRF token -> 403."""

        def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
            async def route(request: Request) -> Response:
                try:
                    found = signed_in(request)
                    if found is None:
                        return to_login(request)
                    user, session, fresh = found
                    form = await posted(request, session) if post else {}
                    if not user.may(role):
                        raise WorkbenchProblem(
                            403, f"the {user.role} role may not do this (it needs {role})"
                        )
                    response = await handler(request, user, session, form)
                except WorkbenchProblem as exc:
                    return problem(request, exc.status, exc.detail, exc.headers)
                if fresh:
                    set_session(request, response, session)
                return response

            route.__name__ = handler.__name__
            return route

        return wrap

    def base(user: User, session: Session) -> dict[str, Any]:
        return {"user": user, "csrf": session.csrf, "may_decide": user.may(STEWARD)}

    # --- static files -------------------------------------------------------------------------

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        path = STATIC / name
        kind = STATIC_TYPES.get(path.suffix)
        if kind is None or path.parent != STATIC or not path.is_file():
            return Response(status_code=404)
        return Response(
            path.read_bytes(),
            media_type=kind,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # --- sign-in ------------------------------------------------------------------------------

    @router.get("/login")
    def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
        asserted = proxy.asserted_user(request)
        if asserted is not None:  # single sign-on: signed in by the proxy already
            try:
                _user, sso, fresh = proxy_user(request, asserted, session_of(request))
            except WorkbenchProblem as exc:
                return problem(request, exc.status, exc.detail, exc.headers)
            response = RedirectResponse(_safe_next(next), status_code=303, headers=SECURITY_HEADERS)
            if fresh:
                set_session(request, response, sso)
            return response
        # A session without a user carries the CSRF token of the sign-in form itself.
        session = session_of(request) or new_session(None)
        response = page(
            request, "login.html", {"csrf": session.csrf, "next": _safe_next(next), "error": None}
        )
        set_session(request, response, session)
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        session = session_of(request)
        form = await request.form()
        name = str(form.get("username") or "")[:64]
        password = str(form.get("password") or "")
        target = _safe_next(str(form.get("next") or ""))
        if session is None or not csrf_ok(session, str(form.get(CSRF_FIELD) or "")):
            return problem(request, 403, "the sign-in form expired: reload the page")
        client = (request.client.host if request.client else "-") or "-"
        wait = throttle.wait(name, client)
        if wait > 0:
            response = page(
                request,
                "login.html",
                {
                    "csrf": session.csrf,
                    "next": target,
                    "error": "too many failed sign-ins: try again in a few minutes",
                },
                status=429,
            )
            response.headers["Retry-After"] = str(max(1, round(wait + 0.5)))
            return response
        engine = state(request).engine
        user = authenticate(engine, name, password) if name and password else None
        if user is None:
            throttle.failed(name, client)
            audits.audit(engine, name or "-", audits.SIGN_IN_FAILED, client=client)
            return page(
                request,
                "login.html",
                {"csrf": session.csrf, "next": target, "error": "wrong user name or password"},
                status=401,
            )
        throttle.succeeded(name)
        audits.audit(engine, user.name, audits.SIGN_IN, client=client)
        response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        # A new session (and token) at sign-in: a token planted before is worth nothing after.
        set_session(request, response, new_session(user.name))
        return response

    @router.post("/logout")
    @guarded(VIEWER, post=True)
    async def logout(request: Request, user: User, session: Session, form: dict) -> Response:
        audits.audit(state(request).engine, user.name, audits.SIGN_OUT)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303, headers=SECURITY_HEADERS)
        set_session(request, response, None)
        return response

    @router.get("")
    @router.get("/")
    @guarded(VIEWER)
    async def home(request: Request, user: User, session: Session, form: dict) -> Response:
        return RedirectResponse(f"{PREFIX}/overview", status_code=303)

    @router.get("/overview")
    @guarded(VIEWER)
    async def overview_page(request: Request, user: User, session: Session, form: dict) -> Response:
        st = state(request)
        return page(
            request, "overview.html", {**base(user, session), **overview(st.engine, st.config)}
        )

    # --- review -------------------------------------------------------------------------------

    def review_context(request: Request, user: User, item_id: int | None) -> dict[str, Any]:
        st = state(request)
        with st.engine.connect() as conn:
            items = queue(conn)
            models = models_of(st, conn) if items else {}
            current = None
            if item_id is not None:
                current = next((i for i in items if i.id == item_id), None)
                if current is None:
                    found = review_item(conn, item_id)
                    current = found if found is not None and found.status == "pending" else None
            pair = None
            for candidate in ([current] if current else []) + items:
                pair = pair_view(conn, candidate, st.config.matching, models, user.may_see_values)
                if pair is not None:
                    break
            decided = recent_decisions(conn, user.name)
            retired = overrides_to_review(conn, user.may_see_values)
        return {"items": items, "pair": pair, "decided": decided, "retired_overrides": retired}

    @router.get("/review")
    @guarded(VIEWER)
    async def review(request: Request, user: User, session: Session, form: dict) -> Response:
        item = request.query_params.get("item")
        item_id = int(item) if item and item.isdigit() else None
        return page(
            request,
            "review.html",
            {**base(user, session), **review_context(request, user, item_id), "flash": None},
        )

    @router.post("/review/{item_id}/decide")
    @guarded(STEWARD, post=True)
    async def decide(request: Request, user: User, session: Session, form: dict) -> Response:
        from mdm_orchestration.matching import record_label

        item_id = int(request.path_params["item_id"])
        verdict = form.get("verdict", "")
        verdict = VERDICT_KEYS.get(verdict, verdict)
        if verdict not in VERDICT_KEYS.values():
            raise WorkbenchProblem(422, "the verdict must be match, distinct or unsure")
        engine = state(request).engine
        with engine.connect() as conn:
            item = review_item(conn, item_id)
        if item is None:
            raise WorkbenchProblem(404, "no such review item")
        if item.status != "pending":
            raise WorkbenchProblem(409, "this item was decided already")
        record_label(engine, item.left_record_id, item.right_record_id, verdict, user.name)
        audits.audit(
            engine,
            user.name,
            audits.DECIDE,
            f"review:{item_id}",
            form.get("reason") or None,
            verdict=verdict,
            left_record_id=item.left_record_id,
            right_record_id=item.right_record_id,
            score=item.score,
        )
        flash = f"Item {item_id}: recorded as {verdict}. {APPLY_NOTE}"
        if not request.headers.get("hx-request"):
            return RedirectResponse(f"{PREFIX}/review", status_code=303)
        return page(
            request,
            "_review_panel.html",
            {**base(user, session), **review_context(request, user, None), "flash": flash},
        )

    # --- the golden record, search ------------------------------------------------------------

    def _as_of(text: str | None) -> datetime | None:
        if not text:
            return None
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise WorkbenchProblem(422, "as_of must be an ISO 8601 time") from None
        return at if at.tzinfo else at.replace(tzinfo=UTC)

    @router.get("/golden/{golden_id}")
    @guarded(VIEWER)
    async def golden(request: Request, user: User, session: Session, form: dict) -> Response:
        gid = request.path_params["golden_id"][:32]
        as_of = _as_of(request.query_params.get("as_of"))
        with state(request).engine.connect() as conn:
            view = golden_view(conn, gid, user.may_see_values, as_of)
        if view is None:
            raise WorkbenchProblem(404, "no such golden record")
        return page(
            request,
            "golden.html",
            {**base(user, session), **view, "flash": request.query_params.get("done")},
        )

    @router.get("/search")
    @guarded(VIEWER)
    async def search_form(request: Request, user: User, session: Session, form: dict) -> Response:
        return page(
            request, "search.html", {**base(user, session), "results": None, "kind": "name"}
        )

    @router.post("/search")
    @guarded(VIEWER, post=True)
    async def search_post(request: Request, user: User, session: Session, form: dict) -> Response:
        # Criteria in the body: they stay out of URLs, browser history and every log.
        kind, text = form.get("kind", "name"), form.get("q", "")[:256]
        try:
            with state(request).engine.connect() as conn:
                docs = search(conn, kind, text, form.get("country", "US")[:2] or "US")
        except ValueError as exc:
            raise WorkbenchProblem(422, str(exc)) from None
        return page(
            request,
            "search.html",
            {
                **base(user, session),
                "results": search_rows(docs, user.may_see_values),
                "kind": kind,
            },
        )

    # --- corrections --------------------------------------------------------------------------

    def _int(text: str) -> int:
        if not text.isdigit() or len(text) > 12:
            raise WorkbenchProblem(404, "no such item")
        return int(text)

    def _reason(form: dict) -> str:
        reason = form.get("reason", "").strip()
        if not reason:
            raise WorkbenchProblem(422, "give a reason: it is kept with the correction")
        return reason[:1000]

    def _correct(
        request: Request,
        user: User,
        form: dict,
        action: str,
        done: str,
        change: Callable[[Any, str, str], dict],
    ) -> Response:
        """Apply one steward correction to a golden record, audit it and go back to the record.

        ``change(state, golden_id, reason)`` makes the correction and returns the details kept
        in the audit trail; a ``CorrectionError`` it raises becomes a 422 for the steward.
        """
        gid = request.path_params["golden_id"][:32]
        reason = _reason(form)
        st = state(request)
        try:
            details = change(st, gid, reason)
        except CorrectionError as exc:
            raise WorkbenchProblem(422, str(exc)) from None
        audits.audit(st.engine, user.name, action, f"golden:{gid}", reason, **details)
        return RedirectResponse(f"{PREFIX}/golden/{gid}?done={done}", status_code=303)

    @router.post("/golden/{golden_id}/merge")
    @guarded(STEWARD, post=True)
    async def merge(request: Request, user: User, session: Session, form: dict) -> Response:
        def change(st: Any, gid: str, reason: str) -> dict:
            other = form.get("other", "")[:200].strip()
            return merge_golden(st.engine, gid, other, user.name, reason)

        return _correct(request, user, form, audits.MERGE, "merge", change)

    @router.post("/golden/{golden_id}/split")
    @guarded(STEWARD, post=True)
    async def split(request: Request, user: User, session: Session, form: dict) -> Response:
        def change(st: Any, gid: str, reason: str) -> dict:
            record = form.get("record", "")[:200].strip()
            return split_record(st.engine, gid, record, user.name, reason)

        return _correct(request, user, form, audits.SPLIT, "split", change)

    @router.post("/golden/{golden_id}/splits/{audit_id}/undo")
    @guarded(STEWARD, post=True)
    async def undo(request: Request, user: User, session: Session, form: dict) -> Response:
        audit_id = _int(request.path_params["audit_id"])

        def change(st: Any, gid: str, reason: str) -> dict:
            return undo_split(st.engine, gid, audit_id, user.name, reason)

        return _correct(request, user, form, audits.UNDO_SPLIT, "undo-split", change)

    # --- attribute overrides ------------------------------------------------------------------

    @router.post("/golden/{golden_id}/pin")
    @guarded(STEWARD, post=True)
    async def pin(request: Request, user: User, session: Session, form: dict) -> Response:
        def change(st: Any, gid: str, reason: str) -> dict:
            return pin_from_form(st.engine, st.config, gid, form, user.name, reason)

        return _correct(request, user, form, audits.PIN, "pin", change)

    @router.post("/golden/{golden_id}/overrides/{override_id}/remove")
    @guarded(STEWARD, post=True)
    async def unpin(request: Request, user: User, session: Session, form: dict) -> Response:
        oid = _int(request.path_params["override_id"])

        def change(st: Any, gid: str, reason: str) -> dict:
            return remove_pin(st.engine, gid, oid, user.name, reason)

        return _correct(request, user, form, audits.UNPIN, "unpin", change)

    @router.post("/golden/{golden_id}/overrides/{override_id}/reviewed")
    @guarded(STEWARD, post=True)
    async def reviewed(request: Request, user: User, session: Session, form: dict) -> Response:
        oid = _int(request.path_params["override_id"])

        def change(st: Any, gid: str, reason: str) -> dict:
            return pin_reviewed(st.engine, gid, oid, user.name, reason)

        return _correct(request, user, form, audits.PIN_REVIEWED, "reviewed", change)

    # --- the audit trail ----------------------------------------------------------------------

    @router.get("/audit")
    @guarded(ADMIN)
    async def audit_page(request: Request, user: User, session: Session, form: dict) -> Response:
        with state(request).engine.connect() as conn:
            entries = audits.audit_trail(
                conn,
                actor=request.query_params.get("actor") or None,
                action=request.query_params.get("action") or None,
            )
        return page(request, "audit.html", {**base(user, session), "entries": entries})

    return router
