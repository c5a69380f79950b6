# ruff: noqa: F811 - pytest fixtures imported by name
"""The dashboard's report page (a chart read at a glance, tables, CSV and XLSX), the
confirmation step before "Launch now", and previews that say when a launch needs a second
official's approval."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.users import auth
from tests import factories
from tests.broadcaster.apiclient import PASSWORD, Person, TestClient
from tests.broadcaster.test_dashboard import login
from tests.broadcaster.test_reports import World, app, client, world  # noqa: F401


def _with_password(session: Session, name: str, areas: list[str] | None) -> None:
    auth.create_user(
        session, name, role="official", organisation="ministry", areas=areas, password=PASSWORD
    )
    session.commit()


def test_report_page_draws_the_chart_and_offers_the_files(
    client: TestClient, world: World, session: Session
) -> None:
    _with_password(session, "nina", None)
    _with_password(session, "sami", ["savannakhet"])
    cid = world.campaign_id
    login(client, "nina")
    assert (
        f'href="/dashboard/campaigns/{cid}/report"'
        in client.get(f"/dashboard/campaigns/{cid}").text
    )
    page = client.get(f"/dashboard/campaigns/{cid}/report")
    assert page.status_code == 200
    html = page.text
    # Two charts a screen reader can read: a role, a title and a description each.
    assert html.count('role="img"') == 2
    assert 'aria-labelledby="chart-area-title chart-area-desc"' in html
    desc = re.search(r'<desc id="chart-area-desc">([^<]*)</desc>', html)
    assert desc and "Bokeo: 60% delivered, 20% failed or undelivered, of 5" in desc.group(1)
    assert "<title>Savannakhet: opted out 1 of 3 (33%)</title>" in html
    assert "Ban Don" in html and "Kaysone" in html  # the table goes down to the villages
    assert "Ban Don" not in desc.group(1)  # the chart stops at the provinces
    assert '<th class="num" title="skipped: the person had opted out">opted out</th>' in html
    for kind in ("csv", "xlsx"):
        assert f'href="/dashboard/campaigns/{cid}/report.{kind}"' in html
    got = client.get(f"/dashboard/campaigns/{cid}/report.csv")
    assert got.status_code == 200 and "'=Clinic hours" in got.text
    assert "attachment" in got.headers["content-disposition"]
    book = load_workbook(io.BytesIO(client.get(f"/dashboard/campaigns/{cid}/report.xlsx").content))
    assert book["Summary"]["B2"].value == "=Clinic hours"
    assert client.get(f"/dashboard/campaigns/{cid}/report.pdf").status_code == 404

    with TestClient(client.app) as other:
        login(other, "sami")  # Savannakhet's official: the campaign spans Laos, not theirs
        for path in ("report", "report.csv", "report.xlsx"):
            assert other.get(f"/dashboard/campaigns/{cid}/{path}").status_code == 404


def _draft(session: Session, people: int, **kwargs: object) -> int:
    slug = f"site{people}"
    factories.community(session, slug, country="LA", language="lo")
    for _ in range(people):
        factories.contact(session, community_slugs=(slug,))
    user = auth.create_user(session, f"olga{people}", role="official", password=PASSWORD)
    campaign = factories.campaign(
        session, [slug], key="covid-test", created_by=user.id, name=f"Site {people}", **kwargs
    )
    session.commit()
    return campaign.id


def test_launch_now_asks_first_and_says_what_happened(
    client: TestClient, world: World, session: Session
) -> None:
    cid = _draft(session, 2)
    token = login(client, "olga2")
    page = client.get(f"/dashboard/campaigns/{cid}").text
    assert f'href="/dashboard/campaigns/{cid}/launch"' in page  # a link to a step, not a send
    assert f'action="/dashboard/campaigns/{cid}/launch"' not in page
    ask = client.get(f"/dashboard/campaigns/{cid}/launch").text
    assert "Send to 2 people now" in ask and 'name="confirm" value="yes" required' in ask
    assert "ມີການກວດ COVID-19" in ask  # the preview: what each language reads

    unconfirmed = client.post(
        f"/dashboard/campaigns/{cid}/launch", data={"csrf": token}, follow_redirects=True
    )
    assert "nothing sent yet" in unconfirmed.text and "Send to 2 people now" in unconfirmed.text
    assert campaigns.get(session, cid).state == "draft"

    sent = client.post(
        f"/dashboard/campaigns/{cid}/launch",
        data={"csrf": token, "confirm": "yes"},
        follow_redirects=True,
    )
    assert f"campaign {cid} is scheduled to send now" in sent.text
    assert "launch: done" not in sent.text and 'id="state">scheduled<' in sent.text
    assert campaigns.get(session, cid).state == "scheduled"
    again = client.get(f"/dashboard/campaigns/{cid}/launch").text
    assert "only a draft can be launched" in again and "Send to" not in again


def test_previews_say_when_launching_needs_a_second_official(
    client: TestClient, world: World, session: Session
) -> None:
    big = _draft(session, 4)  # the app's threshold is 3
    urgent = _draft(session, 1, priority="urgent")
    small = _draft(session, 3)
    for cid, rule in [
        (big, "4 recipients is more than 3"),
        (urgent, "every urgent campaign"),
        (small, ""),
    ]:
        data = client.get(f"/api/v1/campaigns/{cid}/preview", headers=world.national.headers).json()
        assert data["approval"] == rule
        kinds = [w["kind"] for w in data["warnings"]]
        assert ("approval" in kinds) == bool(rule)

    login(client, "olga4")
    ask = client.get(f"/dashboard/campaigns/{big}/launch").text
    assert "It cannot be launched yet" in ask and "4 recipients is more than 3" in ask
    assert 'name="confirm"' not in ask  # nothing to launch until it is approved
    page = client.get(f"/dashboard/campaigns/{big}").text
    assert page.count("4 recipients is more than 3") == 1  # said once, at the top

    # Approved by a second official: the preview no longer asks for it.
    second = Person(world.national.id, "nadia", "official", world.national.token)
    approved = client.post(f"/api/v1/campaigns/{big}/approve", headers=second.headers)
    assert approved.status_code == 200, approved.text
    data = client.get(f"/api/v1/campaigns/{big}/preview", headers=second.headers).json()
    assert (
        data["approval"] == ""
        and "Send to 4 people now" in client.get(f"/dashboard/campaigns/{big}/launch").text
    )
