# ruff: noqa: F811 - pytest fixtures imported by name
"""Dashboard sessions end on the server (logout, a new password, deactivation), the cookie's
Secure flag follows RISKCAST_COOKIE_SECURE, two-factor codes (enrolment, sign-in, wrong and
reused codes, the throttle, required by setting or by an admin), and refused or missing
pages are pages with a way back while the API keeps answering JSON."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.models import AuditEvent, User
from broadcaster.users import auth
from tests.broadcaster.apiclient import PASSWORD, TestClient, app, make_app, person  # noqa: F401
from tests.broadcaster.test_dashboard import csrf, login

COOKIE = "riskcast_session"


def replay(app: FastAPI, cookie: str) -> str:
    """Where a request to /dashboard carrying only ``cookie`` ends up (a fresh browser)."""
    with TestClient(app, cookies={COOKIE: cookie}) as other:
        response = other.get("/dashboard", follow_redirects=False)
        return "dashboard" if response.status_code == 200 else response.headers["location"]


@pytest.mark.parametrize(
    ("settings", "secure"),
    [
        ({}, False),
        ({"public_url": "https://riskcast.example.org"}, True),
        ({"cookie_secure": True}, True),
        ({"public_url": "https://riskcast.example.org", "cookie_secure": False}, False),
    ],
    ids=["http", "https", "forced-on", "forced-off"],
)
def test_the_cookie_is_secure_as_the_setting_says(
    session: Session, settings: dict[str, object], secure: bool
) -> None:
    with TestClient(make_app(session, **settings), base_url="https://testserver") as client:
        cookie = client.get("/login").headers["set-cookie"].lower()
    assert ("; secure" in cookie) is secure, cookie


def test_a_cookie_replayed_after_logout_is_refused(app: FastAPI, session: Session) -> None:
    person(session, "olivia", "official", password=PASSWORD)
    with TestClient(app) as browser:
        token = login(browser, "olivia")
        stolen = browser.cookies[COOKIE]
        assert replay(app, stolen) == "dashboard"  # a copy works while the session lasts
        browser.post("/logout", data={"csrf": token})
        assert browser.get("/dashboard", follow_redirects=False).headers["location"] == "/login"
    assert replay(app, stolen) == "/login"


def test_a_new_password_or_deactivation_ends_every_session(app: FastAPI, session: Session) -> None:
    person(session, "olivia", "official", password=PASSWORD)
    admin = person(session, "ada", "admin")
    user = auth.get_user(session, "olivia")
    with TestClient(app) as phone, TestClient(app) as laptop:
        login(phone, "olivia")
        login(laptop, "olivia")
        auth.set_password(session, user, "another long password")
        session.commit()
        assert phone.get("/dashboard", follow_redirects=False).headers["location"] == "/login"
        assert laptop.get("/dashboard", follow_redirects=False).headers["location"] == "/login"

    auth.set_password(session, user, PASSWORD)
    session.commit()
    with TestClient(app) as browser:
        login(browser, "olivia")
        cookie = browser.cookies[COOKIE]
        gone = browser.post("/api/v1/users/olivia/deactivate", headers=admin.headers)
        assert gone.status_code == 200
    assert replay(app, cookie) == "/login"


def enrol(client: TestClient) -> pyotp.TOTP:
    """Turn on two-factor sign-in through the page, as a person with an app would; the
    first code is the previous step's (accepted for drift), so the next sign-in's code is
    a fresh one."""
    page = client.get("/dashboard/two-factor").text
    secret = re.search(r"<code>([A-Z2-7 ]+)</code>", page).group(1).replace(" ", "")  # type: ignore[union-attr]
    uri = re.search(r'href="(otpauth://[^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert pyotp.parse_uri(uri.replace("&amp;", "&")).secret == secret
    otp = pyotp.TOTP(secret)
    steady()
    done = client.post(
        "/dashboard/two-factor",
        data={"csrf": csrf(page), "code": otp.at(time.time(), counter_offset=-1)},
        follow_redirects=True,
    )
    assert "two-factor sign-in is on" in done.text, done.text
    return otp


def steady() -> None:
    """Wait out the last seconds of a 30-second step, so a code made now is checked in the
    same step (the test checks exact windows)."""
    left = 30 - time.time() % 30
    if left < 3:
        time.sleep(left + 0.1)


def password_step(client: TestClient, name: str) -> str:
    """Sign in with the password; the CSRF token of the page it leads to."""
    form = client.get("/login").text
    page = client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf": csrf(form)},
        follow_redirects=True,
    )
    assert "Two-factor code" in page.text, page.text
    return csrf(page.text)


def other_code(otp: pyotp.TOTP) -> str:
    """A code that no step near now has."""
    now = time.time()
    near = {otp.at(now, counter_offset=k) for k in range(-3, 4)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)


def test_enrol_then_sign_in_with_a_code_that_works_once(app: FastAPI, session: Session) -> None:
    person(session, "olivia", "official", password=PASSWORD)
    with TestClient(app) as here, TestClient(app) as elsewhere:
        login(here, "olivia")
        login(elsewhere, "olivia")
        otp = enrol(here)
        # Sessions signed in without a code end when it is turned on; this one goes on.
        assert here.get("/dashboard").status_code == 200
        shown = here.get("/dashboard/two-factor").text
        assert "On since" in shown and otp.secret not in shown.replace(" ", "")
        assert elsewhere.get("/dashboard", follow_redirects=False).headers["location"] == "/login"

    with TestClient(app) as browser:
        token = password_step(browser, "olivia")
        assert browser.get("/dashboard", follow_redirects=False).headers["location"] == "/login"
        code = otp.now()
        inside = browser.post(
            "/login/code", data={"csrf": token, "code": code}, follow_redirects=True
        )
        assert "Campaigns" in inside.text and "olivia" in inside.text
        browser.post("/logout", data={"csrf": csrf(inside.text)})

    with TestClient(app) as thief:  # saw the code over a shoulder
        token = password_step(thief, "olivia")
        again = thief.post("/login/code", data={"csrf": token, "code": code}, follow_redirects=True)
        assert "already used" in again.text
        assert thief.get("/dashboard", follow_redirects=False).headers["location"] == "/login"

    secret = session.scalar(select(User.totp_secret).where(User.name == "olivia"))
    logged = session.scalars(select(AuditEvent)).all()
    assert ("user.two_factor.enrol", "olivia") in {(e.action, e.actor) for e in logged}
    assert secret and not any(secret in str(e.detail) for e in logged)


def test_wrong_codes_are_refused_and_throttled(app: FastAPI, session: Session) -> None:
    person(session, "olivia", "official", password=PASSWORD)
    with TestClient(app) as browser:
        login(browser, "olivia")
        otp = enrol(browser)
    with TestClient(app) as guesser:
        token = password_step(guesser, "olivia")
        for _ in range(5):
            wrong = guesser.post(
                "/login/code", data={"csrf": token, "code": other_code(otp)}, follow_redirects=True
            )
            assert "wrong code" in wrong.text
        steady()
        right = guesser.post(
            "/login/code", data={"csrf": token, "code": otp.now()}, follow_redirects=True
        )
        assert "too many failed sign-ins" in right.text
        assert guesser.get("/dashboard", follow_redirects=False).headers["location"] == "/login"
    failed = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "login.failed"))
    assert [d["step"] for d in failed] == ["code"] * 5


def test_codes_required_by_setting_for_officials_and_by_an_admin_for_anyone(
    session: Session,
) -> None:
    app = make_app(session, require_totp=True)
    person(session, "olivia", "official", password=PASSWORD)
    person(session, "otto", "operator", password=PASSWORD)
    admin = person(session, "ada", "admin")
    with TestClient(app) as olivia:
        form = olivia.get("/login").text
        olivia.post("/login", data={"name": "olivia", "password": PASSWORD, "csrf": csrf(form)})
        for page in ("/dashboard", "/dashboard/compose"):
            sent = olivia.get(page, follow_redirects=False)
            assert sent.headers["location"] == "/dashboard/two-factor", page
        assert "must sign in with a code" in olivia.get("/dashboard/two-factor").text
        enrol(olivia)
        assert olivia.get("/dashboard/compose").status_code == 200

    with TestClient(app) as otto:
        login(otto, "otto")  # operators are not under the setting
        required = otto.post(
            "/api/v1/users/otto/two-factor", json={"required": True}, headers=admin.headers
        )
        assert required.json()["two_factor_required"] is True
        assert otto.get("/dashboard", follow_redirects=False).headers["location"] == (
            "/dashboard/two-factor"
        )

    listed = {u["name"]: u for u in otto.get("/api/v1/users", headers=admin.headers).json()}
    assert listed["olivia"]["two_factor"] is True and "totp_secret" not in listed["olivia"]
    reset = otto.post("/api/v1/users/olivia/two-factor/reset", headers=admin.headers)
    assert reset.status_code == 200 and reset.json()["two_factor"] is False


def test_refused_and_missing_pages_are_pages_with_a_way_back(
    app: FastAPI, session: Session
) -> None:
    olivia = person(session, "olivia", "official", password=PASSWORD)
    with TestClient(app) as browser:
        login(browser, "olivia")
        for path, status, says in (
            ("/dashboard/operator", 403, "this page is for admin or operator"),
            ("/dashboard/campaigns/7", 404, "campaign 7 does not exist"),
            ("/dashboard/campaigns/7/deliveries", 404, "campaign 7 does not exist"),
            ("/dashboard/no-such-page", 404, "Not Found"),
        ):
            page = browser.get(path)
            assert page.status_code == status, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert says in page.text and 'href="/dashboard"' in page.text, page.text
        api = browser.get("/api/v1/campaigns/7", headers=olivia.headers)
        assert api.status_code == 404 and api.json() == {"error": "campaign 7 does not exist"}
