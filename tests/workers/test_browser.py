"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) over a
whole riskcast: real worker and scheduler processes, the HTTP Twilio simulator and the API on
a free port.

Official A logs in, composes a campaign in three languages (Lao, Thai, English), sees each
language's segments in the preview and saves it; the campaign is urgent, so scheduling it is
refused until official B, in a browser context of their own, approves it; then A schedules
it, and an operator watches it complete on the operator page, with the worker alive and
the sends on the chart of the last hour (also at a phone's width). Every page is saved as a
screenshot under ``artifacts/`` (CI keeps them), and each action left its audit row.

Without Chromium or Playwright the test is skipped locally and fails under CI.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from broadcaster.models import AuditEvent
from broadcaster.templates import service as templates
from broadcaster.users import auth
from messages import parse_template
from tests import factories
from tests.factories import THREE_LANGUAGES
from tests.services import IN_CI, REDIS_URL
from tests.stack import ROOT, Stack, running_stack, wait_for

pytestmark = pytest.mark.pipeline

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"
PASSWORD = "correct horse battery"
ZONE = "Asia/Vientiane"
TIMEOUT_MS = 15_000


def missing(what: str) -> NoReturn:
    """Skip locally; under CI fail, as tests.services.unavailable does for services."""
    message = f"{what} is not installed"
    if IN_CI:
        pytest.fail(message + "; CI must install it (.ci/run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional in local runs
    except ImportError:
        missing("Playwright (pip install 'riskcast[test]')")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        missing(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Any) -> Iterator[Any]:
    # launch() gives Chromium a fresh, temporary user data dir of its own each time
    b = playwright.chromium.launch(
        executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
        headless=True,
        args=CHROMIUM_ARGS,
    )
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # the API's runtime reads these: queue depths on the operator page, a stable session key
    monkeypatch.setenv("RISKCAST_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("RISKCAST_SECRET_KEY", "browser-test-session-key")
    with running_stack(tmp_path) as s:
        yield s


class Shots:
    """Numbered full-page screenshots in artifacts/."""

    def __init__(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        for old in ARTIFACTS.glob("browser-*.png"):
            old.unlink()
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str) -> None:
        path = ARTIFACTS / f"browser-{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


def log_in(browser: Any, stack: Stack, name: str, shot: Shots | None = None) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{stack.api.url}/dashboard")
    assert page.url.endswith("/login"), page.url  # not signed in: sent to the login form
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    if shot:
        shot(page, "login")
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile(r"/dashboard$"))
    assert f"Log out {name}" in page.inner_text("header")
    return page


def flash(page: Any) -> str:
    return " | ".join(page.locator(".flash").all_inner_texts())


def seed(stack: Stack) -> None:
    """A community with one person per language, the three-language template, the users."""
    with stack.runtime.session() as session:
        factories.community(session, "laos", country="LA", language="lo")
        factories.community(session, "bokeo", parent="laos")
        factories.community(session, "savannakhet", parent="laos")
        factories.contact(session, "+8562055551234", community_slugs=("bokeo",), language="lo")
        factories.contact(session, "+66812345678", community_slugs=("bokeo",), language="th")
        factories.contact(session, "+8562077778899", community_slugs=("laos",), language="en")
        templates.save_template(session, parse_template(THREE_LANGUAGES))
        auth.create_user(session, "anna", role="official", password=PASSWORD)
        auth.create_user(session, "boun", role="official", password=PASSWORD)
        auth.create_user(session, "otto", role="operator", password=PASSWORD)
        # A provincial official: works over Savannakhet only.
        auth.create_user(session, "sid", role="official", password=PASSWORD, areas=["savannakhet"])
        auth.create_user(session, "ada", role="admin", password=PASSWORD)


def test_compose_approve_schedule_and_watch_in_chromium(browser: Any, stack: Stack) -> None:
    seed(stack)
    stack.start_worker()
    stack.start_scheduler()
    shot = Shots()

    # -- official A: log in, compose, preview every language, save the draft -----------
    anna = log_in(browser, stack, "anna", shot)
    shot(anna, "campaigns-anna")
    anna.click("nav >> text=Compose")
    anna.wait_for_url(re.compile(r"/dashboard/compose$"))
    anna.fill("input[name=name]", "COVID testing week")
    anna.select_option("select[name=template]", "covid-test")
    anna.check("input[name=communities][value=laos]")
    anna.select_option("select[name=priority]", "urgent")
    anna.fill("textarea[name=variables]", "hotline=166")
    shot(anna, "compose-form")
    anna.click("button[value=preview]")
    anna.wait_for_selector("section.lang")
    assert "error" not in flash(anna), flash(anna)
    shown = {
        section.get_attribute("lang"): section.inner_text()
        for section in anna.locator("section.lang").all()
    }
    assert set(shown) == {"lo", "th", "en"}, shown
    assert "ມີການກວດ COVID-19 ຟຣີ. ໂທ 166." in shown["lo"]
    assert "มีบริการตรวจโควิด-19 ฟรี โทร 166" in shown["th"]
    assert "Free COVID-19 testing is available. Call 166." in shown["en"]
    for lang, encoding in (("lo", "UCS-2"), ("th", "UCS-2"), ("en", "GSM-7")):
        section = anna.locator(f"section.lang[lang={lang}]")
        assert section.locator(".encoding").inner_text() == encoding
        assert section.locator(".segments").inner_text() == "1 segment"
    assert "3 recipients" in anna.inner_text("main")
    assert "Needs approval" in flash(anna) and "urgent" in flash(anna)
    shot(anna, "compose-preview")
    anna.click("button[value=create]")
    anna.wait_for_url(re.compile(r"/dashboard/campaigns/\d+$"))
    campaign_id = int(anna.url.rsplit("/", 1)[1])
    assert "saved as a draft" in flash(anna)
    assert anna.inner_text("#state") == "draft"
    assert anna.locator("section.lang").count() == 3
    assert anna.locator("button:has-text('Approve')").count() == 0  # not for its creator
    shot(anna, "campaign-draft")

    # scheduling before the second person approves is refused, and nothing moves
    local = datetime.now(ZoneInfo(ZONE)).replace(second=0, microsecond=0)
    anna.fill("input[name=send_at]", local.strftime("%Y-%m-%dT%H:%M"))
    anna.fill("input[name=timezone]", ZONE)
    anna.click("form.schedule button")
    anna.wait_for_url(re.compile(rf"/dashboard/campaigns/{campaign_id}$"))
    assert "two-person rule" in flash(anna), flash(anna)
    assert anna.inner_text("#state") == "draft"
    shot(anna, "schedule-refused")

    # -- official B, in a browser context of their own: approve --------------------------
    boun = log_in(browser, stack, "boun")
    # the draft waits for B's approval, on B's list
    assert "COVID testing week" in boun.locator("#awaiting + ul").inner_text()
    shot(boun, "campaigns-boun")
    boun.click(f"a[href='/dashboard/campaigns/{campaign_id}']")
    boun.wait_for_url(re.compile(rf"/dashboard/campaigns/{campaign_id}$"))
    assert "every urgent campaign" in flash(boun)
    shot(boun, "campaign-to-approve")
    boun.click("button:has-text('Approve')")
    boun.wait_for_url(re.compile(rf"/dashboard/campaigns/{campaign_id}$"))
    assert "approve: done" in flash(boun), flash(boun)
    assert "approved by boun" in boun.inner_text("main")
    shot(boun, "campaign-approved")
    boun.context.close()

    # -- a provincial official sees nothing of a campaign over the whole country ---------
    sid = log_in(browser, stack, "sid")
    assert "COVID testing week" not in sid.inner_text("main")
    assert sid.locator("#awaiting").count() == 0
    answer = sid.goto(f"{stack.api.url}/dashboard/campaigns/{campaign_id}")
    assert answer is not None and answer.status == 404
    assert "does not exist" in sid.inner_text("main")
    sid.click("main a[href='/dashboard']")  # the error page has a way back
    sid.wait_for_url(re.compile(r"/dashboard$"))
    shot(sid, "provincial-official")
    sid.context.close()

    # -- official A schedules it: a minute ago in Vientiane, so it is due at once -------
    anna.reload()
    assert anna.locator("button:has-text('Approve')").count() == 0
    local = datetime.now(ZoneInfo(ZONE)).replace(second=0, microsecond=0) - timedelta(minutes=1)
    anna.fill("input[name=send_at]", local.strftime("%Y-%m-%dT%H:%M"))
    anna.fill("input[name=timezone]", ZONE)
    anna.click("form.schedule button")
    anna.wait_for_url(re.compile(rf"/dashboard/campaigns/{campaign_id}$"))
    assert "schedule: done" in flash(anna), flash(anna)
    assert anna.inner_text("#state") != "draft"
    shot(anna, "campaign-scheduled")
    anna.context.close()

    # -- the operator watches it complete -------------------------------------------------
    otto = log_in(browser, stack, "otto")
    otto.click("nav >> text=Operator")
    otto.wait_for_url(re.compile(r"/dashboard/operator$"))
    row = otto.locator("tr", has=otto.locator(f"a[href='/dashboard/campaigns/{campaign_id}']"))

    def completed() -> bool:
        otto.reload()
        return "completed" in row.inner_text()

    wait_for(completed, 90, f"campaign {campaign_id} to show completed", interval=1)
    assert "100%" in row.inner_text() and "3/3" in row.inner_text()
    assert "no Redis configured" not in otto.inner_text("main")
    assert otto.inner_text("#queue-urgent") == "0"
    # the worker started above reports itself alive, and the three sends are on the chart
    assert int(otto.inner_text("#workers-alive")) >= 1
    assert otto.locator("table#workers td").first.inner_text().startswith("celery@")
    chart = otto.locator("#send-rate svg")
    assert chart.is_visible() and chart.get_attribute("role") == "img"
    assert otto.locator("#send-rate rect.bar").count() >= 1
    summary = otto.inner_text("#rate-summary")
    match = re.match(r"(\d+) sent in the last hour, peak (\d+)/min", summary)
    assert match and int(match.group(1)) >= 3, summary
    shot(otto, "operator-completed")
    otto.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert otto.locator("#send-rate svg").bounding_box()["width"] <= 390
    shot(otto, "operator-phone")
    otto.set_viewport_size({"width": 1100, "height": 900})
    otto.click(f"a[href='/dashboard/campaigns/{campaign_id}']")
    otto.wait_for_url(re.compile(rf"/dashboard/campaigns/{campaign_id}$"))
    assert otto.inner_text("#state") == "completed"
    assert otto.inner_text("#count-delivered") == "3"
    shot(otto, "campaign-completed")
    otto.context.close()

    # -- the admin's audit log, and the rows behind it ------------------------------------
    ada = log_in(browser, stack, "ada")
    ada.click("nav >> text=Audit")
    ada.wait_for_url(re.compile(r"/dashboard/audit$"))
    shot(ada, "audit")
    ada.context.close()

    assert stack.core.accepted_by_to() == {
        "+8562055551234": 1,
        "+66812345678": 1,
        "+8562077778899": 1,
    }
    with stack.runtime.session() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.actor, AuditEvent.object_id, AuditEvent.source)
        ).all()
    done = {(action, actor) for action, actor, _, _ in rows}
    for who in ("anna", "boun", "sid", "otto", "ada"):
        assert ("login", who) in done, rows
    about = {(a, who) for a, who, obj, _ in rows if str(obj) == str(campaign_id)}
    assert {
        ("campaign.create", "anna"),
        ("campaign.approve", "boun"),
        ("campaign.schedule", "anna"),
    } <= about, rows
    assert all(source == "127.0.0.1" for _, _, _, source in rows), rows
    assert len(shot.taken) >= 10, shot.taken
