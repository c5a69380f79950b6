# ruff: noqa: F811 - pytest fixtures imported by name
"""The dashboard in Lao, Thai and English: every string of its pages has a translation in
each catalog, a person's language is remembered, pages say which language they are in,
and times are shown in the reader's zone and language with UTC on hover."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from sqlalchemy.orm import Session

from broadcaster.models import AuditEvent
from broadcaster.users import auth
from broadcaster.web import i18n
from tests import factories
from tests.broadcaster.apiclient import PASSWORD, TestClient, app, person  # noqa: F401
from tests.broadcaster.test_dashboard import csrf, login

TEMPLATES = i18n.LOCALE_DIR.parent


def extracted() -> set[str]:
    return {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(TEMPLATES),
            method_map=[
                ("templates/**.html", "jinja2"),
                ("routes/**.py", "python"),
                ("i18n.py", "python"),
            ],
            keywords={**DEFAULT_KEYWORDS, **i18n.KEYWORDS},
        )
    }


def test_every_string_of_the_pages_is_translated_in_lao_and_thai() -> None:
    wanted = extracted()
    assert {"Log in", "Waiting for my approval", "Saved.", "Not found"} <= wanted
    for locale in ("lo", "th"):
        catalog = i18n.catalog(locale)
        missing = sorted(wanted - set(catalog))
        assert missing == [], f"{locale}: no translation for {missing[:5]}"
        for msgid, text in catalog.items():
            # the same placeholders, so no translation breaks a page
            assert set(re.findall(r"%\(\w+\)s", msgid)) == set(re.findall(r"%\(\w+\)s", text))


def test_the_login_page_follows_the_browser_and_the_choice_made_on_it(app: object) -> None:
    with TestClient(app) as browser:
        thai = browser.get("/login", headers={"Accept-Language": "th-TH,th;q=0.9,en;q=0.5"})
        assert '<html lang="th">' in thai.text and "เข้าสู่ระบบ" in thai.text
        english = browser.get("/login", headers={"Accept-Language": "fr"})
        assert '<html lang="en">' in english.text and "Log in" in english.text
        chosen = browser.post(
            "/language",
            data={"locale": "lo", "csrf": csrf(english.text), "next": "/login"},
            follow_redirects=True,
        )
        assert '<html lang="lo">' in chosen.text and "ເຂົ້າສູ່ລະບົບ" in chosen.text
        outside = browser.post(
            "/language",
            data={"locale": "th", "csrf": csrf(chosen.text), "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert outside.headers["location"] == "/"  # never a redirect to another site


def test_a_persons_language_is_remembered_across_sessions(app: object, session: Session) -> None:
    person(session, "noy", "official", password=PASSWORD)
    with TestClient(app) as first:
        token = login(first, "noy")
        page = first.post(
            "/language",
            data={"locale": "lo", "csrf": token, "next": "/dashboard"},
            follow_redirects=True,
        )
        assert '<html lang="lo">' in page.text and "ແຄມເປນ" in page.text
    session.expire_all()
    assert auth.get_user(session, "noy").locale == "lo"
    with TestClient(app) as second:  # another browser, asking for English
        second.headers["Accept-Language"] = "en"
        login_page = second.get("/login").text
        page = second.post(
            "/login",
            data={"name": "noy", "password": PASSWORD, "csrf": csrf(login_page)},
            follow_redirects=True,
        )
        assert '<html lang="lo">' in page.text and "ຍັງບໍ່ມີແຄມເປນ." in page.text


def test_times_are_shown_in_the_readers_zone_and_language_with_utc_on_hover(
    app: object, session: Session
) -> None:
    person(session, "ada", "admin", password=PASSWORD)
    user = auth.get_user(session, "ada")
    user.locale, user.timezone = "th", "Asia/Bangkok"
    session.add(
        AuditEvent(actor="x", action="test.event", at=datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    )
    session.commit()
    with TestClient(app) as ada:
        login(ada, "ada")
        page = ada.get("/dashboard/audit", params={"action": "test.event"}).text
    assert 'title="2026-12-01 02:00:00 UTC"' in page
    assert "1 ธ.ค. 2026 09:00:00" in page  # 09:00 in Bangkok, in Thai


def test_a_person_sets_their_language_and_zone(app: object, session: Session) -> None:
    person(session, "noy", "official", password=PASSWORD)
    with TestClient(app) as noy:
        token = login(noy, "noy")
        bad = noy.post(
            "/dashboard/settings",
            data={"csrf": token, "timezone": "Mars/Olympus", "locale": "th"},
            follow_redirects=True,
        )
        assert "unknown time zone" in bad.text
        saved = noy.post(
            "/dashboard/settings",
            data={"csrf": token, "timezone": "Asia/Bangkok", "locale": "th"},
            follow_redirects=True,
        )
        assert "บันทึกแล้ว" in saved.text and '<html lang="th">' in saved.text
        assert 'value="Asia/Bangkok"' in saved.text
    session.expire_all()
    user = auth.get_user(session, "noy")
    assert (user.locale, user.timezone) == ("th", "Asia/Bangkok")


def test_what_the_pages_say_back_is_in_the_readers_language(app: object) -> None:
    with TestClient(app) as browser:
        browser.headers["Accept-Language"] = "lo"
        page = browser.get("/login").text
        wrong = browser.post(
            "/login",
            data={"name": "nobody", "password": "not a password", "csrf": csrf(page)},
            follow_redirects=True,
        )
        assert "ຊື່ ຫຼື ລະຫັດຜ່ານບໍ່ຖືກຕ້ອງ" in wrong.text
        assert "wrong name or password" not in wrong.text


def test_a_campaign_page_in_lao(app: object, session: Session) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    factories.contact(session, factories.lao_number(4242), community_slugs=("laos",))
    person(session, "noy", "official", password=PASSWORD)
    user = auth.get_user(session, "noy")
    user.locale = "lo"
    campaign = factories.campaign(session, ["laos"], created_by=user.id)
    session.commit()
    with TestClient(app) as noy:
        login(noy, "noy")
        page = noy.get(f"/dashboard/campaigns/{campaign.id}").text
    assert '<html lang="lo">' in page
    for lao in (
        "ສົ່ງດຽວນີ້…",
        "ສິ່ງທີ່ມັນສົ່ງ",
        "ການສົ່ງຕາມສະຖານະ",
        "ຜູ້ຮັບ <strong>1</strong> ຄົນ",
        'id="state">ຮ່າງ</span>',  # the state, named in Lao
        "ໂທລະສັບໄດ້ຮັບແລ້ວ",  # what "delivered" means
    ):
        assert lao in page, lao
    assert "What it sends" not in page and "Launch now" not in page
