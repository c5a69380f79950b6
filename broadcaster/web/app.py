"""The FastAPI application factory: the API under /api/v1, the dashboard, /metrics, the
Twilio webhooks and /healthz.

Every error is JSON ``{"error": ..., "field": ...}``: 422 for bad input (naming the field),
409 for a move the state machine refuses, 404, 401 and 403, 413 for a body over its
route's limit; a database that is down is a 503 with ``Retry-After``. The caller is known
before any body is read (:mod:`broadcaster.web.gate`). The dashboard's own 403 and 404 are
pages with a way back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from broadcaster.errors import Forbidden, IllegalState, InvalidInput, NotFound, TooMany
from broadcaster.runtime import Runtime
from broadcaster.web.common import MAX_ID
from broadcaster.web.deps import Db
from broadcaster.web.gate import BodyGate
from broadcaster.web.routes import (
    audit,
    campaigns,
    cap,
    communities,
    contacts,
    dashboard,
    editor,
    inbox,
    queue,
    templates,
    users,
    webhooks,
)
from broadcaster.web.routes.metrics import metrics_router

log = logging.getLogger(__name__)

API_ROUTERS = (
    communities.router,
    contacts.router,
    contacts.import_router,
    templates.router,
    campaigns.router,
    queue.router,
    inbox.router,
    users.router,
    audit.router,
    cap.router,
)


def _field(loc: Sequence[Any]) -> str:
    """``("body", "send_at")`` -> ``send_at``; ``("query", "limit")`` -> ``limit``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _unstorable_field(request: Request) -> str:
    """The path or query parameter holding a NUL or an out-of-range number, else ``body``."""
    params = {**request.path_params, **request.query_params}
    for name, value in params.items():
        text_value = str(value)
        if "\x00" in text_value:
            return name
        digits = text_value.lstrip("-")
        if digits.isdigit() and (len(digits) > 10 or int(digits) > MAX_ID):
            return name
    return "body"


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="riskcast",
        version="0.1.0",
        description="Multilingual risk-communication campaigns. Authenticate with "
        "`Authorization: Bearer <token>` (`riskcast users token NAME`).",
    )
    app.state.runtime = runtime
    limits = runtime.settings
    # Every body read is bounded (FastAPI's max_body_size): an API call's JSON and the
    # contacts upload here, a CAP alert, Twilio's forms and the dashboard's where they are.
    app.include_router(webhooks.router)
    for router in API_ROUTERS:
        most = (
            limits.max_import_bytes if router is contacts.import_router else limits.max_body_bytes
        )
        app.include_router(router, max_body_size=most)
    app.include_router(metrics_router)
    app.include_router(cap.public_router)
    # Before the dashboard's session middleware is added, so inside it: the gate reads the
    # session the cookie carries.
    app.add_middleware(BodyGate)
    dashboard.install(app, runtime)
    app.include_router(editor.router)

    @app.exception_handler(InvalidInput)
    async def _invalid(_request: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(
            status_code=422, content={"error": str(exc), "field": exc.field, "row": exc.row}
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field(first.get("loc", ()))
        return JSONResponse(
            status_code=422,
            content={"error": f"{field}: {first.get('msg', 'invalid')}", "field": field},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in dashboard.PAGE_ERRORS and dashboard.is_page(request):
            return dashboard.error_page(request, exc.status_code, str(exc.detail))
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode (not UTF-8, say): bad input, so 422
            # like every other, naming the body.
            return JSONResponse(
                status_code=422,
                content={"error": f"body: {exc.detail}", "field": "body"},
            )
        return JSONResponse(
            status_code=exc.status_code,
            content={"error": str(exc.detail)},
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(IllegalState)
    async def _conflict(_request: Request, exc: IllegalState) -> JSONResponse:
        return JSONResponse(status_code=409, content={"error": str(exc)})

    @app.exception_handler(TooMany)
    async def _too_many(_request: Request, exc: TooMany) -> JSONResponse:
        return JSONResponse(
            status_code=429,
            content={"error": str(exc)},
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(Forbidden)
    async def _forbidden(_request: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse(status_code=403, content={"error": str(exc)})

    @app.exception_handler(NotFound)
    async def _missing(request: Request, exc: NotFound) -> Response:
        if dashboard.is_page(request):
            return dashboard.error_page(request, 404, str(exc))
        return JSONResponse(status_code=404, content={"error": str(exc)})

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # Input that passed validation but the database refuses to store or compare: a NUL
        # character in text, an integer beyond PostgreSQL's range. Bad input, not a crash.
        log.info("input refused by the database: %s", exc.orig.__class__.__name__)
        field = _unstorable_field(request)
        return JSONResponse(
            status_code=422,
            content={
                "error": f"{field}: contains a NUL character or a number out of range",
                "field": field,
            },
        )

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        # Twilio and clients retry a 503; nothing was written.
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return JSONResponse(
            status_code=503,
            content={"error": "database unavailable, try again"},
            headers={"Retry-After": "5"},
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz(session: Db) -> dict[str, str]:
        session.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
