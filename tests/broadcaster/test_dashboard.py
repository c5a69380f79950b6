# ruff: noqa: F811 - pytest fixtures imported by name
"""The dashboard through its forms: login with CSRF, compose with a per-language preview,
approval by a second official, launch, the operator page, the inbox, the audit log."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.campaigns import actions
from broadcaster.models import AuditEvent, Campaign, InboundMessage
from broadcaster.phones import mask_phone
from broadcaster.users import auth
from tests import factories
from tests.broadcaster.apiclient import PASSWORD, TestClient, app, make_app, person  # noqa: F401


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def login(client: TestClient, name: str) -> str:
    page = client.get("/login").text
    response = client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf": csrf(page)},
        follow_redirects=True,
    )
    assert response.status_code == 200 and name in response.text, response.text
    return csrf(response.text)


# A number as people write it: digits with spaces, dashes, dots or brackets between them.
DIGIT_RUN = re.compile(r"\d[\d\s().-]*\d")


def shows_whole_number(page: str, e164: str) -> bool:
    """Whether ``page`` shows the number in any format (E.164, international, national,
    digits only, any separators): some run of digits holds all of its national digits."""
    national_digits = phonenumbers.national_significant_number(phonenumbers.parse(e164))
    return any(
        national_digits in re.sub(r"\D", "", run.group()) for run in DIGIT_RUN.finditer(page)
    )


def test_official_composes_second_official_approves_operator_watches(
    app: object, session: Session
) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    phones = [
        factories.contact(session, factories.lao_number(800 + i), community_slugs=("laos",)).phone
        for i in range(6)
    ]
    factories.template(session)
    person(session, "olivia", "official", password=PASSWORD)
    person(session, "omar", "official", password=PASSWORD)
    person(session, "otto", "operator", password=PASSWORD)
    person(session, "ada", "admin", password=PASSWORD)

    with TestClient(app) as anon:
        assert anon.get("/dashboard", follow_redirects=False).headers["location"] == "/login"
        page = anon.get("/login").text
        no_csrf = anon.post("/login", data={"name": "olivia", "password": PASSWORD, "csrf": "x"})
        assert no_csrf.status_code == 403
        wrong = anon.post(
            "/login",
            data={"name": "olivia", "password": "nope", "csrf": csrf(page)},
            follow_redirects=True,
        )
        assert "wrong name or password" in wrong.text

    with TestClient(app) as olivia:
        token = login(olivia, "olivia")
        form = {
            "csrf": token,
            "name": "Testing week",
            "template": "covid-test",
            "communities": ["laos"],
            "priority": "bulk",
            "channel": "sms",
        }
        shown = olivia.post("/dashboard/compose", data={**form, "action": "preview"})
        assert shown.status_code == 200
        assert "UCS-2" in shown.text and "GSM-7" in shown.text and "segment" in shown.text
        assert "Needs approval" in shown.text  # 6 recipients > threshold 5
        made = olivia.post(
            "/dashboard/compose", data={**form, "action": "create"}, follow_redirects=True
        )
        assert "saved as a draft" in made.text
        cid = int(re.search(r"#(\d+) Testing week", made.text).group(1))
        refused = olivia.post(
            f"/dashboard/campaigns/{cid}/launch", data={"csrf": token}, follow_redirects=True
        )
        assert "two-person rule" in refused.text
        own = olivia.post(
            f"/dashboard/campaigns/{cid}/approve", data={"csrf": token}, follow_redirects=True
        )
        assert "a second person must approve it" in own.text
        assert olivia.get("/dashboard/operator").status_code == 403

    with TestClient(app) as omar:
        token = login(omar, "omar")
        ok = omar.post(
            f"/dashboard/campaigns/{cid}/approve", data={"csrf": token}, follow_redirects=True
        )
        assert "approve: done" in ok.text and "approved by omar" in ok.text
        bad = omar.post(f"/dashboard/campaigns/{cid}/approve", data={"csrf": "forged"})
        assert bad.status_code == 403

    with TestClient(app) as olivia:
        token = login(olivia, "olivia")
        sent = olivia.post(
            f"/dashboard/campaigns/{cid}/launch",
            data={"csrf": token, "confirm": "yes"},
            follow_redirects=True,
        )
        assert "scheduled to send now" in sent.text and "scheduled" in sent.text
        assert "Testing week" in olivia.get("/dashboard").text
        assert olivia.get("/dashboard/inbox").status_code == 200

    assert factories.fanned_out(session, cid) == len(phones)

    with TestClient(app) as otto:
        token = login(otto, "otto")
        page = otto.get("/dashboard/operator").text
        assert "Queues" in page and "Testing week" in page and "no Redis configured" in page
        paused = otto.post(
            f"/dashboard/campaigns/{cid}/pause", data={"csrf": token}, follow_redirects=True
        )
        assert "pause: done" in paused.text
        deliveries = otto.get(f"/dashboard/campaigns/{cid}/deliveries").text
        for phone in phones:
            assert mask_phone(phone) in deliveries, f"{mask_phone(phone)} not listed"
            assert not shows_whole_number(deliveries, phone), f"{mask_phone(phone)} shown whole"

    with TestClient(app) as ada:
        login(ada, "ada")
        whole = ada.get(f"/dashboard/campaigns/{cid}/deliveries").text
        assert all(shows_whole_number(whole, phone) for phone in phones)  # admins see them
        audit = ada.get("/dashboard/audit").text
        for action in (
            "login",
            "campaign.create",
            "campaign.approve",
            "campaign.launch",
            "campaign.pause",
        ):
            assert action in audit
        assert ada.get("/dashboard/audit.csv").text.startswith("id,at,actor,action")

    done = [
        (a, s)
        for a, s in session.execute(
            select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.id)
        )
    ]
    assert ("campaign.approve", "omar") in done and ("campaign.launch", "olivia") in done
    assert ("login.failed", "olivia") in done


def test_the_preview_names_its_currency_and_the_thai_hotline(session: Session) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    factories.contact(session, factories.lao_number(850), community_slugs=("laos",))
    factories.contact(session, factories.thai_number(851), community_slugs=("laos",))
    factories.template(session)
    person(session, "olivia", "official", password=PASSWORD)
    app = make_app(session, segment_prices='{"default": 450}', currency="LAK")
    with TestClient(app) as olivia:
        token = login(olivia, "olivia")
        form = {
            "csrf": token,
            "name": "Testing week",
            "template": "covid-test",
            "communities": ["laos"],
            "priority": "bulk",
            "channel": "sms",
        }
        for action in ("preview", "create"):
            page = olivia.post(
                "/dashboard/compose", data={**form, "action": action}, follow_redirects=True
            ).text
            assert '<strong class="cost">900.00 LAK</strong>' in page  # 2 x 1 segment x 450
            assert "cost 900.00 LAK" in page  # the Lao variant's line
            assert "Numbers of TH are told their country's hotline, 1422." in page


def test_officials_see_which_templates_await_review(app: object, session: Session) -> None:
    """A template whose translations await a native speaker says so in the official's
    preview; once a reviewer signs it off (``review: false``, a new version) it no longer
    does."""
    factories.community(session, "laos", country="LA", language="lo")
    factories.contact(session, community_slugs=("laos",))
    key = factories.template(session, {**factories.THREE_LANGUAGES, "review": True})
    person(session, "olivia", "official", password=PASSWORD)
    awaiting = "awaiting review by a native speaker"
    previewed = "<strong>1</strong> recipient"  # the preview itself is on the page

    with TestClient(app) as olivia:
        form = {
            "csrf": login(olivia, "olivia"),
            "name": "Testing week",
            "template": key,
            "communities": ["laos"],
            "action": "preview",
        }
        drafted = olivia.post("/dashboard/compose", data=form).text
        assert previewed in drafted and awaiting in drafted

        factories.template(session, {**factories.THREE_LANGUAGES, "review": False})
        signed_off = olivia.post("/dashboard/compose", data=form).text
        assert previewed in signed_off and awaiting not in signed_off


def test_sign_in_stops_checking_passwords_after_five_failures(
    app: object, session: Session
) -> None:
    person(session, "olivia", "official", password=PASSWORD)
    session.commit()
    with TestClient(app) as client:  # type: ignore[arg-type]
        token = csrf(client.get("/login").text)
        for _ in range(5):
            client.post("/login", data={"name": "olivia", "password": "wrong", "csrf": token})
        right = client.post(
            "/login",
            data={"name": "olivia", "password": PASSWORD, "csrf": token},
            follow_redirects=True,
        )
        assert "too many failed sign-ins" in right.text
        assert client.get("/dashboard", follow_redirects=False).headers["location"] == "/login"
    failures = session.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed"))
    assert len(list(failures)) == 5


def test_pages_are_never_framed_and_load_nothing_from_elsewhere(app: object) -> None:
    with TestClient(app) as client:  # type: ignore[arg-type]
        page = client.get("/login")
        assert page.headers["x-frame-options"] == "DENY"
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert "secure" not in page.headers.get("set-cookie", "").lower()


def test_the_session_cookie_is_https_only_when_the_service_is(session: Session) -> None:
    app = make_app(session, public_url="https://riskcast.example.org")
    with TestClient(app, base_url="https://testserver") as client:
        page = client.get("/login")
        assert "secure" in page.headers["set-cookie"].lower()


def test_a_provincial_official_sees_their_province_only(app: object, session: Session) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    factories.community(session, "bokeo", parent="laos")
    factories.community(session, "savannakhet", parent="laos")
    bokeo_person = factories.contact(session, factories.lao_number(901), community_slugs=("bokeo",))
    factories.template(session)
    for name, area in (("boun", "bokeo"), ("sid", "savannakhet")):
        auth.create_user(session, name, role="official", password=PASSWORD, areas=[area])
    boun = auth.actor_for(session, auth.get_user(session, "boun"), "test")
    campaign = actions.create(
        session,
        boun,
        name="Bokeo clinic hours",
        template_key="covid-test",
        community_slugs=["bokeo"],
    )
    session.add(
        InboundMessage(
            provider_sid="SMbokeo",
            contact_id=bokeo_person.id,
            from_phone=bokeo_person.phone,
            to_phone="+15005550006",
            body="when is the clinic open",
        )
    )
    # A campaign made before anyone signed in to the command line: no creator, no
    # organisation; once "No campaigns yet" for every official.
    legacy = factories.campaign(session, ["bokeo"], key="covid-test", name="Made at the shell")
    session.commit()

    with TestClient(app) as sid:
        login(sid, "sid")
        assert "Bokeo clinic hours" not in sid.get("/dashboard").text
        page = sid.get(f"/dashboard/campaigns/{campaign.id}")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert 'href="/dashboard"' in page.text  # a way back
        assert "when is the clinic open" not in sid.get("/dashboard/inbox").text
        compose = sid.get("/dashboard/compose").text
        assert 'value="savannakhet"' in compose and 'value="bokeo"' not in compose
    with TestClient(app) as boun_browser:
        login(boun_browser, "boun")
        home = boun_browser.get("/dashboard").text
        assert "Bokeo clinic hours" in home and "Made at the shell" in home
        assert boun_browser.get(f"/dashboard/campaigns/{legacy.id}").status_code == 200
        assert "when is the clinic open" in boun_browser.get("/dashboard/inbox").text


def test_an_invited_person_chooses_their_own_password(app: object, session: Session) -> None:
    admin = auth.actor_for(session, auth.create_user(session, "ada", role="admin"), "test")
    _, first = auth.add_user(session, admin, "noy", role="official")
    session.commit()
    assert first.invitation is not None and first.token is None
    with TestClient(app) as noy:
        page = noy.get("/login/invite").text
        form = {"name": "noy", "password": PASSWORD, "again": PASSWORD, "csrf": csrf(page)}
        wrong = noy.post(
            "/login/invite", data={**form, "invitation": "guess"}, follow_redirects=True
        )
        assert "invitation is unknown" in wrong.text
        done = noy.post(
            "/login/invite",
            data={**form, "invitation": first.invitation, "csrf": csrf(wrong.text)},
            follow_redirects=True,
        )
        assert "your password is set" in done.text
        login(noy, "noy")  # with the password noy chose
    events = session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "noy")).all()
    assert {"login.failed", "user.invitation.accept", "login"} <= set(events)


def test_quiet_hours_are_set_on_the_compose_page(app: object, session: Session) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    factories.contact(session, community_slugs=("laos",))
    factories.template(session)
    person(session, "olivia", "official", password=PASSWORD)

    with TestClient(app) as olivia:
        token = login(olivia, "olivia")
        assert 'name="quiet_start"' in olivia.get("/dashboard/compose").text
        form = {
            "csrf": token,
            "name": "Night-safe",
            "template": "covid-test",
            "communities": ["laos"],
            "quiet_start": "21",
            "quiet_end": "7",
        }
        shown = olivia.post("/dashboard/compose", data={**form, "action": "preview"})
        # the preview keeps what was typed
        assert 'name="quiet_start" min="0" max="23" step="1" value="21"' in shown.text
        assert 'name="quiet_end" min="0" max="23" step="1" value="7"' in shown.text
        half = olivia.post("/dashboard/compose", data={**form, "quiet_end": "", "action": "create"})
        assert "quiet_hours" in half.text and "saved as a draft" not in half.text
        same = olivia.post(
            "/dashboard/compose", data={**form, "quiet_end": "21", "action": "create"}
        )
        assert "quiet hours are two different hours 0-23" in same.text
        made = olivia.post(
            "/dashboard/compose", data={**form, "action": "create"}, follow_redirects=True
        )
        assert "saved as a draft" in made.text
        cid = int(re.search(r"#(\d+) Night-safe", made.text).group(1))
        plain = olivia.post(
            "/dashboard/compose",
            data={
                **form,
                "name": "Any time",
                "quiet_start": "",
                "quiet_end": "",
                "action": "create",
            },
            follow_redirects=True,
        )
        other = int(re.search(r"#(\d+) Any time", plain.text).group(1))

    quiet = {
        i: (start, end)
        for i, start, end in session.execute(
            select(Campaign.id, Campaign.quiet_start, Campaign.quiet_end)
        )
    }
    assert quiet == {cid: (21, 7), other: (None, None)}


def test_a_campaign_scheduled_in_the_dashboard_keeps_its_zone(
    app: object, session: Session
) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    factories.contact(session, community_slugs=("laos",))
    olivia_id = person(session, "olivia", "official", password=PASSWORD).id
    camp = factories.campaign(session, ["laos"])
    camp.created_by = olivia_id
    session.commit()

    with TestClient(app) as olivia:
        token = login(olivia, "olivia")
        url = f"/dashboard/campaigns/{camp.id}"
        wrong = olivia.post(
            f"{url}/schedule",
            data={"csrf": token, "send_at": "2027-01-05T09:00", "timezone": "Bangkok"},
            follow_redirects=True,
        )
        assert (
            "unknown time zone &#39;Bangkok&#39;" in wrong.text and " · send at" not in wrong.text
        )
        done = olivia.post(
            f"{url}/schedule",
            data={"csrf": token, "send_at": "2027-01-05T09:00", "timezone": "Asia/Bangkok"},
            follow_redirects=True,
        )
        assert "schedule: done" in done.text
        # shown back as it was given, the UTC time on hover
        assert 'title="2027-01-05 02:00 UTC">2027-01-05 09:00 Asia/Bangkok</span>' in done.text

    session.expire_all()
    row = session.get(Campaign, camp.id)
    assert row is not None
    assert (row.state, row.schedule_timezone) == ("scheduled", "Asia/Bangkok")
    assert row.send_at == datetime(2027, 1, 5, 2, 0, tzinfo=UTC)
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.schedule")
    ).one()
    assert (event.actor, event.detail["timezone"]) == ("olivia", "Asia/Bangkok")
