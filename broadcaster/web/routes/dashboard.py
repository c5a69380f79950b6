"""The dashboard: server-rendered pages (Jinja2, one small CSS file, no build step) for
officials, operators and admins, readable on a phone.

Login is a form with the same users as the API (Argon2 password hashes); the session is a
signed cookie (starlette's SessionMiddleware, key ``RISKCAST_SECRET_KEY``), and every form
carries a CSRF token kept in that session. Numbers are masked for all but admins. Every
action goes through the same functions as the API, so it is audited the same way.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.middleware.sessions import SessionMiddleware

from broadcaster.audit import service as audit
from broadcaster.campaigns import actions, preview
from broadcaster.campaigns import service as campaigns
from broadcaster.communities import service as communities_service
from broadcaster.db import utcnow
from broadcaster.deliveries import in_doubt
from broadcaster.errors import InvalidInput, NotFound, RiskcastError
from broadcaster.inbound import inbox
from broadcaster.models import DeliveryState, Role, User
from broadcaster.monitoring import service as monitoring
from broadcaster.monitoring import stats
from broadcaster.phones import mask_phone
from broadcaster.runtime import Runtime
from broadcaster.templates import service as templates
from broadcaster.users import auth
from broadcaster.web.common import MAX_ID, Id
from broadcaster.web.deps import Actor, Db, Rt, client_ip
from broadcaster.web.routes import campaigns as campaigns_api
from broadcaster.web.routes import inbox as inbox_api
from messages import TemplateError

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent.parent
pages = Jinja2Templates(directory=str(PACKAGE / "templates"))
router = APIRouter(prefix="/dashboard", include_in_schema=False)

SESSION_HOURS = 8
# The largest form a page posts (the compose form is the biggest, a few KB); the session
# is checked before any form is read (broadcaster.web.gate).
FORM_BYTES = 64 * 1024
OFFICIAL = frozenset({Role.OFFICIAL.value, Role.ADMIN.value})
OPERATOR = frozenset({Role.OPERATOR.value, Role.ADMIN.value})
ADMIN = frozenset({Role.ADMIN.value})
STATE_HELP = {
    "pending": "waiting for a condition: quiet hours, or a paused campaign",
    "queued": "handed to a worker queue, about to be sent",
    "sending": "a worker is talking to the provider now; past the in-doubt age with no "
    "answer it is in doubt, and the provider's records are asked before any resend",
    "sent": "the provider accepted it; waiting for the carrier's report",
    "delivered": "the phone received it",
    "undelivered": "the carrier could not deliver it",
    "failed": "the provider refused it, or every retry failed",
    "skipped": "never sent: opted out, invalid number, cancelled, or too late",
}


class LoginRequired(Exception):
    """Raised by :func:`signed_in` without a session; answered with a redirect to /login."""


def secret_key() -> str:
    key = os.environ.get("RISKCAST_SECRET_KEY")
    if key:
        return key
    log.warning(
        "RISKCAST_SECRET_KEY is not set: dashboard sessions end when this process stops and "
        "are not shared between API processes"
    )
    return secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, token: str) -> None:
    expected = request.session.get("csrf")
    if not expected or not secrets.compare_digest(str(expected), token):
        raise HTTPException(403, "the form expired or did not come from this site; reload it")


def signed_in(request: Request, session: Db) -> Actor:
    uid = request.session.get("uid")
    user = session.get(User, uid) if isinstance(uid, int) else None
    if user is None or not user.active:
        request.session.pop("uid", None)
        raise LoginRequired
    return auth.actor_for(session, user, client_ip(request))


Viewer = Annotated[Actor, Depends(signed_in)]


def allow(caller: Actor, roles: frozenset[str]) -> None:
    if caller.role not in roles:
        raise HTTPException(403, f"this page is for {' or '.join(sorted(roles))}")


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


def render(request: Request, name: str, caller: Actor | None, **context: Any) -> HTMLResponse:
    messages = request.session.pop("flash", [])
    return pages.TemplateResponse(
        request,
        name,
        {
            "me": caller,
            "csrf": csrf_token(request),
            "flashes": messages,
            "state_help": STATE_HELP,
            **context,
        },
    )


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@contextmanager
def attempt(request: Request, session: Session) -> Iterator[None]:
    """Run an action in a savepoint; a refusal becomes a message on the page, not an error."""
    savepoint = session.begin_nested()
    try:
        yield
        savepoint.commit()
    except (RiskcastError, TemplateError) as exc:
        savepoint.rollback()
        flash(request, str(exc), "error")


# -- login ----------------------------------------------------------------------------


def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", None)


def login(
    request: Request,
    session: Db,
    name: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf)
    source = client_ip(request)
    if auth.sign_in_blocked(session, name, source, utcnow()):
        minutes = int(auth.FAILED_LOGIN_WINDOW.total_seconds() // 60)
        flash(request, f"too many failed sign-ins: try again in {minutes} minutes", "error")
        return back("/login")
    user = auth.authenticate(session, name, password)
    if user is None:
        Actor(user_id=None, name=name[:100], role="", source=source).record(session, "login.failed")
        flash(request, "wrong name or password", "error")
        return back("/login")
    request.session.clear()
    request.session["uid"] = user.id
    csrf_token(request)
    Actor(user.id, user.name, user.role, source).record(session, "login", "user", user.id)
    return back("/dashboard")


def logout(request: Request, session: Db, caller: Viewer, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, csrf)
    caller.record(session, "logout", "user", caller.user_id)
    request.session.clear()
    return back("/login")


# -- officials ------------------------------------------------------------------------


@router.get("")
def home(request: Request, session: Db, caller: Viewer) -> HTMLResponse:
    rows = actions.list_visible(session, caller, 100)
    return render(
        request, "campaigns.html", caller, campaigns=campaigns_api.campaign_outs(session, rows)
    )


def _compose_defaults(session: Session) -> dict[str, Any]:
    return {
        "templates": templates.list_templates(session),
        "communities": communities_service.all_communities(session),
    }


@router.get("/compose")
def compose_page(request: Request, session: Db, caller: Viewer) -> HTMLResponse:
    allow(caller, OFFICIAL)
    return render(
        request, "compose.html", caller, form={}, result=None, **_compose_defaults(session)
    )


@router.post("/compose")
def compose(
    request: Request,
    session: Db,
    caller: Viewer,
    rt: Rt,
    csrf: Annotated[str, Form()],
    name: Annotated[str, Form(max_length=200)] = "",
    template: Annotated[str, Form(max_length=100)] = "",
    communities: Annotated[list[str] | None, Form()] = None,
    priority: Annotated[str, Form()] = "bulk",
    channel: Annotated[str, Form()] = "sms",
    variables: Annotated[str, Form(max_length=2000)] = "",
    action: Annotated[str, Form()] = "preview",
) -> Response:
    """``preview`` renders the campaign it would be (in a savepoint rolled back), per
    language; ``create`` saves the draft and opens it."""
    allow(caller, OFFICIAL)
    check_csrf(request, csrf)
    form = {
        "name": name,
        "template": template,
        "communities": communities or [],
        "priority": priority,
        "channel": channel,
        "variables": variables,
    }
    body: dict[str, Any] = {
        "name": name or "(unnamed)",
        "template": template,
        "communities": communities or [],
        "priority": priority,
        "channel": channel,
        "variables": _parse_vars(variables),
    }
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        payload = campaigns_api.CampaignIn.model_validate(body)
    except ValueError as exc:
        error = (
            str(exc).splitlines()[0]
            + ": "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()  # type: ignore[attr-defined]
            )
        )
        payload = None
    if payload is not None and action == "create" and name.strip():
        with attempt(request, session):
            campaign = actions.create(session, caller, **payload.fields())
            flash(request, f"campaign {campaign.id} saved as a draft")
            return back(f"/dashboard/campaigns/{campaign.id}")
    elif payload is not None:
        if action == "create":
            error = "name: give the campaign a name"
        savepoint = session.begin_nested()
        try:
            draft = actions.create(session, caller, **payload.fields())
            result = preview.preview_campaign(
                session, draft.id, prices=rt.settings.segment_prices
            ).to_dict()
            result["needs_approval"] = campaigns.approval_rule(
                session, draft, rt.settings.approval_threshold
            )
        except (RiskcastError, TemplateError) as exc:
            error = str(exc)
        finally:
            savepoint.rollback()
    return render(
        request,
        "compose.html",
        caller,
        form=form,
        result=result,
        error=error,
        **_compose_defaults(session),
    )


def _parse_vars(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    request: Request, session: Db, caller: Viewer, rt: Rt, campaign_id: Id
) -> HTMLResponse:
    try:
        campaign = actions.get_visible(session, caller, campaign_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    out = campaigns_api.campaign_out(session, campaign)
    try:
        shown = preview.preview_campaign(
            session, campaign_id, prices=rt.settings.segment_prices
        ).to_dict()
    except (RiskcastError, TemplateError) as exc:
        shown = {"error": str(exc)}
    return render(
        request,
        "campaign.html",
        caller,
        c=out,
        preview=shown,
        rule=campaigns.approval_rule(session, campaign, rt.settings.approval_threshold)
        if campaign.state == "draft"
        else "",
        failures=stats.failures(session, campaign_id),
        can_compose=caller.role in OFFICIAL,
        can_operate=caller.role in OPERATOR,
    )


@router.post("/campaigns/{campaign_id}/{action}")
def campaign_action(
    request: Request,
    session: Db,
    caller: Viewer,
    rt: Rt,
    campaign_id: Id,
    action: str,
    csrf: Annotated[str, Form()],
    send_at: Annotated[str, Form(max_length=40)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "Asia/Vientiane",
) -> Response:
    check_csrf(request, csrf)
    url = f"/dashboard/campaigns/{campaign_id}"
    threshold = rt.settings.approval_threshold
    with attempt(request, session):
        if action in {"approve", "schedule", "launch"}:
            allow(caller, OFFICIAL)
            if action == "approve":
                actions.approve(session, caller, campaign_id)
            else:
                when = _local_time(send_at, timezone) if action == "schedule" else None
                actions.schedule(session, caller, campaign_id, when, threshold)
        elif action in {"pause", "resume", "cancel"}:
            allow(caller, OPERATOR)
            actions.operate(session, caller, campaign_id, action)
        elif action == "retry-failed":
            allow(caller, OPERATOR)
            count = actions.retry(session, caller, campaign_id)
            flash(request, f"{count} deliveries queued again")
        else:
            raise HTTPException(404, f"no action {action!r}")
        flash(request, f"{action}: done")
    return back(url)


def _local_time(text: str, timezone: str) -> datetime:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {timezone!r}", field="timezone") from None
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("give a date and time", field="send_at") from None
    return naive.replace(tzinfo=zone) if naive.tzinfo is None else naive


@router.get("/campaigns/{campaign_id}/deliveries")
def deliveries_page(
    request: Request,
    session: Db,
    caller: Viewer,
    campaign_id: Id,
    state: str | None = None,
    after: Annotated[int, Query(le=MAX_ID)] = 0,
) -> HTMLResponse:
    try:
        actions.get_visible(session, caller, campaign_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    if state is not None and state not in {s.value for s in DeliveryState}:
        state = None
    page = campaigns_api.deliveries_page(
        session, caller, campaign_id, state=state, after=max(after, 0), limit=100
    )
    return render(
        request,
        "deliveries.html",
        caller,
        campaign_id=campaign_id,
        state=state,
        page=page,
        states=[s.value for s in DeliveryState],
    )


@router.get("/inbox")
def inbox_page(
    request: Request, session: Db, caller: Viewer, tag: str | None = None
) -> HTMLResponse:
    allow(caller, OFFICIAL)
    tag = tag if tag in inbox.TAGS else None
    rows = inbox.messages(session, tag=tag, limit=200)
    return render(
        request,
        "inbox.html",
        caller,
        messages=[inbox_api.out(caller, m) for m in rows],
        tags=inbox.TAGS,
        tag=tag,
    )


@router.post("/inbox/{message_id}/tag")
def inbox_tag(
    request: Request,
    session: Db,
    caller: Viewer,
    message_id: Id,
    csrf: Annotated[str, Form()],
    tag: Annotated[str, Form()] = "",
) -> Response:
    allow(caller, OFFICIAL)
    check_csrf(request, csrf)
    with attempt(request, session):
        if tag and tag not in inbox.TAGS:
            raise InvalidInput(f"{tag!r} is not one of {', '.join(inbox.TAGS)}", field="tag")
        inbox.set_tag(session, caller, message_id, tag or None)
    return back("/dashboard/inbox")


# -- operators ------------------------------------------------------------------------


@router.get("/operator")
def operator_page(request: Request, session: Db, caller: Viewer, rt: Rt) -> HTMLResponse:
    allow(caller, OPERATOR)
    depths = stats.queue_depths(rt.settings.effective_redis_url)
    doubt = in_doubt.summary(session, rt.settings.in_doubt_after)
    rows = actions.list_visible(session, caller, 50)
    now = utcnow()
    current_minute = now.replace(second=0, microsecond=0)
    seen = monitoring.workers_alive(rt.settings.effective_redis_url)
    return render(
        request,
        "operator.html",
        caller,
        depths=depths,
        workers=seen,
        heartbeat_window=round(rt.settings.heartbeat_interval * monitoring.MISSED_BEATS),
        worker_ages={w.key: max(0, round((now - w.seen_at).total_seconds())) for w in seen.workers},
        rate=monitoring.rate_chart(
            monitoring.sent_per_minute(session, now=now), current_minute=current_minute
        ),
        by_state=stats.deliveries_by_state(session),
        campaigns=campaigns_api.campaign_outs(session, rows),
        failures=stats.failures(session),
        in_doubt=doubt,
        in_doubt_rows=[
            {
                **vars(d),
                "phone": d.phone if caller.is_admin or d.phone is None else mask_phone(d.phone),
            }
            for d in doubt.deliveries
        ],
    )


# -- admins ---------------------------------------------------------------------------


@router.get("/audit")
def audit_page(
    request: Request,
    session: Db,
    caller: Viewer,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    allow(caller, ADMIN)
    rows = audit.events(session, action=action or None, limit=300)
    return render(request, "audit.html", caller, events=rows, action=action or "")


@router.get("/audit.csv")
def audit_csv(request: Request, session: Db, caller: Viewer) -> Response:
    allow(caller, ADMIN)
    rows = audit.events(session, limit=1_000_000)
    caller.record(session, "audit.export", "audit", None, rows=len(rows))
    return Response(
        audit.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="riskcast-audit.csv"'},
    )


# The pages load nothing from elsewhere and are never framed; inline styles and the one
# confirm() handler are the pages' own.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PAGE_PATHS = ("/dashboard", "/login", "/logout")


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the dashboard, its static files, login and session to ``app``."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key(),
        session_cookie="riskcast_session",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        # Sent over HTTPS only when the service is reached over HTTPS.
        https_only=runtime.settings.public_url.startswith("https://"),
    )

    @app.middleware("http")
    async def _page_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(PAGE_PATHS):
            response.headers.update(PAGE_HEADERS)
        return response

    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")
    app.add_api_route("/login", login_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/login", login, methods=["POST"], include_in_schema=False, max_body_size=FORM_BYTES
    )
    app.add_api_route(
        "/logout", logout, methods=["POST"], include_in_schema=False, max_body_size=FORM_BYTES
    )
    app.add_api_route(
        "/", lambda: RedirectResponse("/dashboard"), methods=["GET"], include_in_schema=False
    )
    app.include_router(router, max_body_size=FORM_BYTES)

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, _exc: LoginRequired) -> Response:
        return back("/login")
