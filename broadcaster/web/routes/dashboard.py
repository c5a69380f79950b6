"""The dashboard: server-rendered pages (Jinja2, one small CSS file, no build step) for
officials, operators and admins, readable on a phone.

Login is a form with the same users as the API (Argon2 password hashes), then a two-factor
code for those enrolled (``broadcaster.users.totp``); the session is a signed cookie
(starlette's SessionMiddleware, key ``RISKCAST_SECRET_KEY``) holding the user's session
epoch, so logging out, a new password or deactivation ends it on the server too: a copy of
the cookie replayed later is refused. Every form carries a CSRF token kept in that session.
Numbers are masked for all but admins. Every action goes through the same functions as the
API, so it is audited the same way. A page refused (403) or not found (404) is a page with a
way back, not the API's JSON.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.middleware.sessions import SessionMiddleware

from broadcaster.areas import scope
from broadcaster.audit import service as audit
from broadcaster.campaigns import actions, preview
from broadcaster.campaigns import report as reports
from broadcaster.campaigns import service as campaigns
from broadcaster.communities import service as communities_service
from broadcaster.db import utcnow
from broadcaster.deliveries import in_doubt
from broadcaster.errors import Forbidden, InvalidInput, NotFound, RiskcastError
from broadcaster.inbound import inbox
from broadcaster.models import Campaign, DeliveryState, Role, User
from broadcaster.monitoring import service as monitoring
from broadcaster.monitoring import stats
from broadcaster.phones import mask_phone
from broadcaster.runtime import Runtime
from broadcaster.templates import service as templates
from broadcaster.users import auth, totp
from broadcaster.web import i18n
from broadcaster.web.common import MAX_ID, Id
from broadcaster.web.deps import Actor, Db, Rt, client_ip, get_rt
from broadcaster.web.routes import campaigns as campaigns_api
from broadcaster.web.routes import inbox as inbox_api
from messages import TemplateError

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent.parent
pages = Jinja2Templates(directory=str(PACKAGE / "templates"))
i18n.install(pages.env)
router = APIRouter(prefix="/dashboard", include_in_schema=False)

SESSION_HOURS = 8
# How long the code may wait after the password was right.
CODE_WAIT = timedelta(minutes=5)
# The largest form a page posts (the compose form is the biggest, a few KB); the session
# is checked before any form is read (broadcaster.web.gate).
FORM_BYTES = 64 * 1024
OFFICIAL = frozenset({Role.OFFICIAL.value, Role.ADMIN.value})
OPERATOR = frozenset({Role.OPERATOR.value, Role.ADMIN.value})
ADMIN = frozenset({Role.ADMIN.value})
STATE_HELP = {
    "pending": i18n.N_("waiting for a condition: quiet hours, or a paused campaign"),
    "queued": i18n.N_("handed to a worker queue, about to be sent"),
    "sending": i18n.N_(
        "a worker is talking to the provider now; past the in-doubt age with no "
        "answer it is in doubt, and the provider's records are asked before any resend"
    ),
    "sent": i18n.N_("the provider accepted it; waiting for the carrier's report"),
    "delivered": i18n.N_("the phone received it"),
    "undelivered": i18n.N_("the carrier could not deliver it"),
    "failed": i18n.N_("the provider refused it, or every retry failed"),
    "skipped": i18n.N_("never sent: opted out, invalid number, cancelled, or too late"),
}


class LoginRequired(Exception):
    """Raised by :func:`signed_in` without a session; answered with a redirect to /login."""


class EnrolRequired(Exception):
    """Raised by :func:`signed_in` for a user who must sign in with a two-factor code and
    has not enrolled yet; answered with a redirect to the enrolment page."""


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


def session_user(request: Request, session: Db) -> User:
    """The signed-in user: the cookie's user, still active, and the cookie issued in their
    current session epoch (a cookie from before a logout is worth nothing)."""
    uid = request.session.get("uid")
    user = session.get(User, uid) if isinstance(uid, int) else None
    if user is None or not user.active or request.session.get("epoch") != user.session_epoch:
        request.session.pop("uid", None)
        request.session.pop("epoch", None)
        raise LoginRequired
    return user


def signed_in(request: Request, session: Db) -> Actor:
    user = session_user(request, session)
    request.state.locale = user.locale
    request.state.zone = user.timezone
    if not totp.enrolled(user) and totp.required(
        user, require_totp=get_rt(request).settings.require_totp
    ):
        raise EnrolRequired
    return auth.actor_for(session, user, client_ip(request))


Viewer = Annotated[Actor, Depends(signed_in)]
# Signed in, even if not yet enrolled for the codes required of them: logout, enrolment.
Enrolling = Annotated[User, Depends(session_user)]


def allow(caller: Actor, roles: frozenset[str]) -> None:
    if caller.role not in roles:
        raise HTTPException(403, f"this page is for {' or '.join(sorted(roles))}")


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


def tr(request: Request, message: str, **values: object) -> str:
    """``message`` in the language of the person making this request, filled in."""
    i18n.current.set(page_locale(request))
    text = i18n.gettext(message)
    return text % values if values else text


def page_locale(request: Request) -> str:
    """The language of the page: the person's choice, else the one chosen before signing
    in, else the browser's."""
    return i18n.choose(
        getattr(request.state, "locale", None),
        request.session.get("locale"),
        i18n.negotiate(request.headers.get("accept-language")),
    )


def render(request: Request, name: str, caller: Actor | None, **context: Any) -> HTMLResponse:
    messages = request.session.pop("flash", [])
    locale = page_locale(request)
    i18n.current.set(locale)
    i18n.current_zone.set(getattr(request.state, "zone", None) or i18n.DEFAULT_ZONE)
    return pages.TemplateResponse(
        request,
        name,
        {
            "me": caller,
            "csrf": csrf_token(request),
            "flashes": messages,
            "state_help": STATE_HELP,
            "locale": locale,
            "next_url": request.url.path,
            **context,
        },
    )


def choose_language(
    request: Request,
    session: Db,
    locale: Annotated[str, Form(max_length=8)],
    csrf: Annotated[str, Form()],
    next_url: Annotated[str, Form(alias="next", max_length=200)] = "/dashboard",
) -> Response:
    """The language of the dashboard: remembered for the signed-in person (and, before
    signing in, for this browser)."""
    check_csrf(request, csrf)
    if locale not in i18n.LOCALES:
        raise HTTPException(404, f"no language {locale!r}")
    request.session["locale"] = locale
    uid = request.session.get("uid")
    user = session.get(User, uid) if isinstance(uid, int) else None
    if user is not None and request.session.get("epoch") == user.session_epoch:
        user.locale = locale
    # Only a path of this site: never a redirect elsewhere.
    target = next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"
    return back(target)


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


def throttled(request: Request) -> None:
    """Say that sign-ins for this name or from this address are paused for a while."""
    minutes = int(auth.FAILED_LOGIN_WINDOW.total_seconds() // 60)
    flash(
        request,
        tr(request, "too many failed sign-ins: try again in %(minutes)s minutes", minutes=minutes),
        "error",
    )


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
        throttled(request)
        return back("/login")
    user = auth.authenticate(session, name, password)
    if user is None:
        auth.sign_in_failed(session, name, source)
        flash(request, tr(request, "wrong name or password"), "error")
        return back("/login")
    request.session.clear()
    if totp.enrolled(user):
        # Half signed in: the code page knows who, nothing else does.
        request.session["pending"] = [user.id, user.session_epoch, utcnow().timestamp()]
        csrf_token(request)
        return back("/login/code")
    _start_session(request, session, user, source)
    return back("/dashboard")


def invitation_page(request: Request) -> HTMLResponse:
    return render(request, "invitation.html", None)


def accept_invitation(
    request: Request,
    session: Db,
    name: Annotated[str, Form(max_length=100)],
    invitation: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    again: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form()],
) -> Response:
    """A new user accepts their invitation and chooses their own password; then signs in."""
    check_csrf(request, csrf)
    source = client_ip(request)
    if auth.sign_in_blocked(session, name, source, utcnow()):
        throttled(request)
        return back("/login/invite")
    if password != again:
        flash(request, tr(request, "the two passwords differ"), "error")
        return back("/login/invite")
    try:
        auth.accept_invitation(
            session, name, invitation.strip(), password=password, source=source, token=False
        )
    except InvalidInput as exc:
        flash(request, str(exc), "error")
        return back("/login/invite")
    except Forbidden as exc:
        auth.sign_in_failed(session, name, source, step="invitation")
        flash(request, str(exc), "error")
        return back("/login/invite")
    flash(request, tr(request, "your password is set: sign in with it"))
    return back("/login")


def _start_session(request: Request, session: Session, user: User, source: str | None) -> None:
    request.session.clear()
    request.session["uid"] = user.id
    request.session["epoch"] = user.session_epoch
    csrf_token(request)
    Actor(user.id, user.name, user.role, source).record(
        session, "login", "user", user.id, two_factor=totp.enrolled(user)
    )


def _pending(request: Request, session: Session, now: datetime) -> User | None:
    """The user whose password was right a moment ago and whose code is awaited."""
    pending = request.session.get("pending")
    user = None
    if isinstance(pending, list) and len(pending) == 3:
        uid, epoch, at = pending
        fresh = (
            isinstance(at, int | float) and 0 <= now.timestamp() - at <= CODE_WAIT.total_seconds()
        )
        user = session.get(User, uid) if fresh and isinstance(uid, int) else None
        if user is not None and not (
            user.active and user.session_epoch == epoch and totp.enrolled(user)
        ):
            user = None
    if user is None:
        request.session.pop("pending", None)
    return user


def code_page(request: Request, session: Db) -> Response:
    if _pending(request, session, utcnow()) is None:
        return back("/login")
    return render(request, "login_code.html", None)


def login_code(
    request: Request,
    session: Db,
    code: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form()],
) -> Response:
    """The second step: a fresh code from the user's authenticator app. A wrong or reused
    code is a failed sign-in, counted by the same throttle as a wrong password."""
    check_csrf(request, csrf)
    now = utcnow()
    user = _pending(request, session, now)
    if user is None:
        flash(request, tr(request, "sign in again"), "error")
        return back("/login")
    source = client_ip(request)
    if auth.sign_in_blocked(session, user.name, source, now):
        request.session.pop("pending", None)
        throttled(request)
        return back("/login")
    if not totp.check(session, user, code, now):
        Actor(user.id, user.name, user.role, source).record(
            session, "login.failed", "user", user.id, step="code"
        )
        flash(
            request,
            tr(request, "wrong code, or a code already used: wait for the next one"),
            "error",
        )
        return back("/login/code")
    _start_session(request, session, user, source)
    return back("/dashboard")


def logout(
    request: Request, session: Db, user: Enrolling, csrf: Annotated[str, Form()]
) -> Response:
    """Ends the session here and on the server: every copy of the cookie, on any device."""
    check_csrf(request, csrf)
    auth.actor_for(session, user, client_ip(request)).record(session, "logout", "user", user.id)
    auth.end_sessions(session, user)
    request.session.clear()
    return back("/login")


# Offered on the settings page (any IANA zone may be typed).
COMMON_ZONES = (
    "Asia/Vientiane",
    "Asia/Bangkok",
    "Asia/Phnom_Penh",
    "Asia/Ho_Chi_Minh",
    "Asia/Yangon",
    "Asia/Kuala_Lumpur",
    "UTC",
)


@router.get("/settings")
def settings_page(request: Request, session: Db, caller: Viewer) -> HTMLResponse:
    """The person's own language and the zone times are shown in."""
    user = session.get_one(User, caller.user_id)
    return render(
        request,
        "settings.html",
        caller,
        zone=user.timezone or i18n.DEFAULT_ZONE,
        zones=COMMON_ZONES,
        chosen=user.locale or "",
    )


@router.post("/settings")
def save_settings(
    request: Request,
    session: Db,
    caller: Viewer,
    csrf: Annotated[str, Form()],
    timezone: Annotated[str, Form(max_length=64)],
    locale: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    check_csrf(request, csrf)
    user = session.get_one(User, caller.user_id)
    with attempt(request, session):
        zone = communities_service.check_timezone(timezone.strip())
        if locale and locale not in i18n.LOCALES:
            raise InvalidInput(f"no language {locale!r}", field="locale")
        user.timezone = zone
        user.locale = locale or None
        if locale:
            request.session["locale"] = locale
        caller.record(session, "user.preferences", "user", user.id, locale=locale, timezone=zone)
        request.state.locale = user.locale
        flash(request, tr(request, "Saved."))
    return back("/dashboard/settings")


@router.get("/two-factor")
def two_factor_page(request: Request, session: Db, user: Enrolling) -> HTMLResponse:
    """Enrolment: the secret, as text and as an ``otpauth://`` link, and a form for the
    first code; once enrolled, only that it is on."""
    caller = auth.actor_for(session, user, client_ip(request))
    if totp.enrolled(user):
        return render(request, "two_factor.html", caller, enrolled=user.totp_enabled_at)
    secret = totp.begin(session, user)
    return render(
        request,
        "two_factor.html",
        caller,
        enrolled=None,
        required=totp.required(user, require_totp=get_rt(request).settings.require_totp),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        uri=totp.uri(user),
    )


@router.post("/two-factor")
def two_factor_confirm(
    request: Request,
    session: Db,
    user: Enrolling,
    code: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf)
    if not totp.confirm(session, user, code, utcnow()):
        flash(
            request, "that code does not match: check the app's clock and try the next one", "error"
        )
        return back("/dashboard/two-factor")
    caller = auth.actor_for(session, user, client_ip(request))
    caller.record(session, "user.two_factor.enrol", "user", user.id)
    # Sessions signed in without a code end; this one goes on in the new epoch.
    auth.end_sessions(session, user)
    request.session["epoch"] = user.session_epoch
    flash(
        request,
        tr(request, "two-factor sign-in is on: you will be asked for a code after your password"),
    )
    return back("/dashboard")


# -- officials ------------------------------------------------------------------------


@router.get("")
def home(request: Request, session: Db, caller: Viewer) -> HTMLResponse:
    rows = actions.list_visible(session, caller, 100)
    waiting = actions.awaiting_my_approval(session, caller)
    return render(
        request,
        "campaigns.html",
        caller,
        campaigns=campaigns_api.campaign_outs(session, rows),
        awaiting=campaigns_api.campaign_outs(session, waiting),
    )


def _compose_defaults(session: Session, caller: Actor) -> dict[str, Any]:
    return {
        "templates": templates.list_templates(session),
        "communities": communities_service.all_communities(session, caller),
    }


@router.get("/compose")
def compose_page(request: Request, session: Db, caller: Viewer) -> HTMLResponse:
    allow(caller, OFFICIAL)
    return render(
        request, "compose.html", caller, form={}, result=None, **_compose_defaults(session, caller)
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
    quiet_start: Annotated[str, Form(max_length=2)] = "",
    quiet_end: Annotated[str, Form(max_length=2)] = "",
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
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
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
    if quiet_start.strip() or quiet_end.strip():
        # Left to the model to check: both given, whole hours 0-23.
        body["quiet_hours"] = [quiet_start.strip() or None, quiet_end.strip() or None]
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
                session,
                draft.id,
                prices=rt.settings.segment_prices,
                currency=rt.settings.currency,
                hotlines=rt.settings.hotlines,
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
        **_compose_defaults(session, caller),
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
    return render(
        request,
        "campaign.html",
        caller,
        c=out,
        preview=_preview(session, rt, campaign_id),
        rule=campaigns.approval_rule(session, campaign, rt.settings.approval_threshold)
        if campaign.state == "draft"
        else "",
        failures=stats.failures(session, campaign_id),
        can_compose=caller.role in OFFICIAL,
        can_operate=caller.role in OPERATOR,
    )


def _preview(session: Session, rt: Runtime, campaign_id: int) -> dict[str, Any]:
    """The campaign's preview as the pages show it (an error as ``{"error": ...}``)."""
    try:
        return preview.preview_campaign(
            session,
            campaign_id,
            prices=rt.settings.segment_prices,
            currency=rt.settings.currency,
            hotlines=rt.settings.hotlines,
            approval_threshold=rt.settings.approval_threshold,
        ).to_dict()
    except (RiskcastError, TemplateError) as exc:
        return {"error": str(exc)}


def _visible(session: Session, caller: Actor, campaign_id: int) -> Campaign:
    try:
        return actions.get_visible(session, caller, campaign_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/campaigns/{campaign_id}/launch")
def launch_page(
    request: Request, session: Db, caller: Viewer, rt: Rt, campaign_id: Id
) -> HTMLResponse:
    """The step before "Launch now": the preview, whether a second approval is missing, and
    a form that launches only with its box ticked (no script needed)."""
    allow(caller, OFFICIAL)
    campaign = _visible(session, caller, campaign_id)
    return render(
        request,
        "launch.html",
        caller,
        c=campaigns_api.campaign_out(session, campaign),
        preview=_preview(session, rt, campaign_id),
    )


@router.get("/campaigns/{campaign_id}/report")
def report_page(request: Request, session: Db, caller: Viewer, campaign_id: Id) -> HTMLResponse:
    _visible(session, caller, campaign_id)
    result = actions.report(session, caller, campaign_id)
    # The chart shows the top of the tree and the level below (provinces under a country,
    # districts under a province); the table has every level.
    return render(
        request,
        "report.html",
        caller,
        r=result,
        area_chart=reports.chart(
            [row for row in result.by_area if row.depth <= 1],
            title="Deliveries by area: share of each outcome",
        ),
        language_chart=reports.chart(
            result.by_language, title="Deliveries by language: share of each outcome"
        ),
    )


@router.get("/campaigns/{campaign_id}/report.{kind}")
def report_download(session: Db, caller: Viewer, campaign_id: Id, kind: str) -> Response:
    if kind not in actions.REPORT_FORMATS:
        raise HTTPException(404, f"no report as {kind!r}: csv or xlsx")
    _visible(session, caller, campaign_id)
    return campaigns_api.report_file(
        actions.report(session, caller, campaign_id, export=kind), kind
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
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    check_csrf(request, csrf)
    url = f"/dashboard/campaigns/{campaign_id}"
    threshold = rt.settings.approval_threshold
    if action == "launch" and confirm != "yes":
        flash(request, "nothing sent yet: check the preview, tick the box, then launch", "warn")
        return back(f"{url}/launch")
    with attempt(request, session):
        if action in {"approve", "schedule", "launch"}:
            allow(caller, OFFICIAL)
            if action == "approve":
                actions.approve(session, caller, campaign_id)
            else:
                when, zone = (
                    (_send_time(send_at), timezone) if action == "schedule" else (None, None)
                )
                actions.schedule(session, caller, campaign_id, when, threshold, timezone=zone)
                if action == "launch":
                    flash(
                        request,
                        f"campaign {campaign_id} is scheduled to send now: the scheduler starts "
                        "it within seconds, and this page follows it",
                    )
                    return back(url)
        elif action in actions.OPERATIONS:
            # Operators, and officials for their own campaigns (checked by the action).
            actions.operate(session, caller, campaign_id, action)
        elif action == "retry-failed":
            allow(caller, OPERATOR)
            count = actions.retry(session, caller, campaign_id)
            flash(request, f"{count} deliveries queued again")
        else:
            raise HTTPException(404, f"no action {action!r}")
        flash(request, f"{action}: done")
    return back(url)


def _send_time(text: str) -> datetime:
    """The form's date and time (a local time in the form's zone unless it has an offset)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("give a date and time", field="send_at") from None


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
    rows = inbox.messages(session, caller, tag=tag, limit=200)
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
    doubt = in_doubt.summary(
        session, rt.settings.in_doubt_after, campaigns=scope.campaign_clause(caller)
    )
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
PAGE_ERRORS = {403: i18n.N_("Not allowed"), 404: i18n.N_("Not found")}
OTHER_ERROR = i18n.N_("Something went wrong")


def is_page(request: Request) -> bool:
    return request.url.path.startswith(PAGE_PATHS)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """A refused or missing dashboard page, as a page with a way back (the API answers
    JSON). Given no signed-in user: the error may be that there is none."""
    response = render(
        request,
        "error.html",
        None,
        title=tr(request, PAGE_ERRORS.get(status, OTHER_ERROR)),
        message=message,
    )
    response.status_code = status
    return response


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the dashboard, its static files, login and session to ``app``."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key(),
        session_cookie="riskcast_session",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        # Sent over HTTPS only when RISKCAST_COOKIE_SECURE says, or the service is on HTTPS.
        https_only=runtime.settings.secure_cookies,
    )

    @app.middleware("http")
    async def _page_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if is_page(request):
            response.headers.update(PAGE_HEADERS)
        return response

    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")
    app.add_api_route("/login", login_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/login", login, methods=["POST"], include_in_schema=False, max_body_size=FORM_BYTES
    )
    app.add_api_route("/login/code", code_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/language",
        choose_language,
        methods=["POST"],
        include_in_schema=False,
        max_body_size=FORM_BYTES,
    )
    app.add_api_route("/login/invite", invitation_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/login/invite",
        accept_invitation,
        methods=["POST"],
        include_in_schema=False,
        max_body_size=FORM_BYTES,
    )
    app.add_api_route(
        "/login/code",
        login_code,
        methods=["POST"],
        include_in_schema=False,
        max_body_size=FORM_BYTES,
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

    @app.exception_handler(EnrolRequired)
    async def _enrol(request: Request, _exc: EnrolRequired) -> Response:
        flash(
            request,
            tr(request, "your account signs in with a two-factor code: set it up first"),
            "warn",
        )
        return back("/dashboard/two-factor")
