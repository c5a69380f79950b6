"""Request bodies: the caller is checked before one is read, and one over its limit gets a
JSON 413.

FastAPI reads and parses a route's body before it runs the route's dependencies, so a
caller with no token could make the server read (and hold) a body only to be told 401
afterwards. :class:`BodyGate` looks first, for requests that carry a body:

- ``/api/v1/...``: a valid ``Authorization: Bearer <token>`` (the routes' own check,
  :func:`broadcaster.web.deps.check_token`), else the routes' 401 at once;
- the dashboard's forms: a signed-in session (the signed cookie names a user), else the
  redirect to the login page, as the pages answer.

Twilio's webhooks cannot be checked before their body (the signature covers the form);
what can be refused without it is (:func:`broadcaster.web.routes.webhooks.verified_form`).

The limits themselves are FastAPI's ``max_body_size``, set on each router or route (see
:func:`broadcaster.web.app.create_app`): a body whose Content-Length is over the limit is
refused unread, a chunked one is cut off at the limit. Their answer is starlette's plain
"Content Too Large"; the gate answers every 413 as JSON naming the limit instead.

A refusal leaves the body unread and closes the connection after the answer, so the server
does not go on receiving what the client still sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcaster.web.deps import bearer, check_token, get_rt

API_PREFIX = "/api/v1/"
DASHBOARD_FORMS = ("/dashboard/", "/logout")
CLOSE = "Connection"


def carries_body(scope: Scope) -> bool:
    """Whether the request says a body follows (a length other than 0, or chunks)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def too_large(scope: Scope) -> JSONResponse:
    """The answer to a body over its route's limit (the limit the route set in ``scope``)."""
    limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    most = f"{limit:,} bytes" if isinstance(limit, int) else "its limit"
    return JSONResponse(
        status_code=413,
        content={
            "error": f"the request body is larger than {scope['path']} takes (at most {most})",
            "field": "body",
        },
        headers={CLOSE: "close"},
    )


def _handler_for(app: Any, exc: Exception) -> Any:
    """The app's exception handler for ``exc`` (by class, most specific first), or None."""
    handlers = getattr(app, "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class BodyGate:
    """Refuse a request whose caller is not allowed before reading its body; answer a body
    over its limit with a JSON 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not carries_body(scope):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        refusal: Response | None = None
        if path.startswith(API_PREFIX):
            refusal = await self._api_refusal(Request(scope))
        elif path.startswith(DASHBOARD_FORMS):
            refusal = self._dashboard_refusal(scope)
        if refusal is not None:
            refusal.headers[CLOSE] = "close"
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, self._json_413(scope, receive, send))

    @staticmethod
    async def _api_refusal(request: Request) -> Response | None:
        credentials = await bearer(request)
        try:
            await run_in_threadpool(check_token, get_rt(request), credentials)
        except Exception as exc:
            # The app's own answer: the routes' 401, or a 503 when the database is down.
            handler = _handler_for(request.app, exc)
            if handler is None:
                raise
            response: Response = await handler(request, exc)
            return response
        return None

    @staticmethod
    def _dashboard_refusal(scope: Scope) -> Response | None:
        session = scope.get("session")
        if isinstance(session, dict) and isinstance(session.get("uid"), int):
            return None
        return RedirectResponse("/login", status_code=303)

    @staticmethod
    def _json_413(scope: Scope, receive: Receive, send: Send) -> Send:
        """``send``, with any 413 answer replaced by :func:`too_large`."""
        replaced = False

        async def sending(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                await too_large(scope)(scope, receive, send)
            elif not (replaced and message["type"] == "http.response.body"):
                await send(message)

        return sending
