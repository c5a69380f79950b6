"""The FastAPI application factory."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from broadcaster import campaigns, webhooks
from broadcaster.api.deps import db_session
from broadcaster.errors import IllegalState, InvalidInput, NotFound
from broadcaster.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="riskcast", version="0.1.0")
    app.state.runtime = runtime
    app.include_router(webhooks.router)

    @app.exception_handler(InvalidInput)
    async def _invalid(_request: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(
            status_code=422, content={"error": str(exc), "field": exc.field, "row": exc.row}
        )

    @app.exception_handler(IllegalState)
    async def _conflict(_request: Request, exc: IllegalState) -> JSONResponse:
        return JSONResponse(status_code=409, content={"error": str(exc)})

    @app.exception_handler(NotFound)
    async def _missing(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": str(exc)})

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        # Twilio and clients retry a 503; nothing was written.
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return JSONResponse(
            status_code=503,
            content={"error": "database unavailable, try again"},
            headers={"Retry-After": "5"},
        )

    @app.get("/healthz")
    def healthz(session: Annotated[Session, Depends(db_session)]) -> dict[str, str]:
        session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/api/v1/campaigns/{campaign_id}")
    def campaign_status(
        campaign_id: int, session: Annotated[Session, Depends(db_session)]
    ) -> dict[str, Any]:
        return campaigns.status(session, campaign_id)

    return app
