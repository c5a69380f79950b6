"""A campaign's report after a real fan-out: deliveries by outcome, by area (the community
tree under the audience), language, country and channel, as JSON, CSV and XLSX, seen by
exactly those who see the campaign."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.campaigns import report as reports
from broadcaster.campaigns import service as campaigns
from broadcaster.contacts import privacy
from broadcaster.deliveries import service as deliveries
from broadcaster.models import AuditEvent, Contact, Delivery, DeliveryState
from broadcaster.users import auth
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, make_app


@dataclass
class World:
    campaign_id: int  # over all of Laos, fanned out, deliveries in every outcome
    national: Person
    bokeo: Person  # a ministry official of Bokeo
    savan: Person  # a ministry official of Savannakhet


def _person(session: Session, name: str, *, areas: list[str] | None) -> Person:
    user = auth.create_user(session, name, role="official", organisation="ministry", areas=areas)
    _, token = auth.issue_token(session, user)
    return Person(user.id, name, "official", token)


def _set(session: Session, campaign_id: int, phone: str, to: DeliveryState, **values: str) -> None:
    """Move ``phone``'s delivery to ``to`` the way the worker and callbacks would."""
    contact = session.scalar(select(Contact.id).where(Contact.phone == phone))
    where = (Delivery.campaign_id == campaign_id) & (Delivery.contact_id == contact)
    if to in (DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED):
        deliveries.move(session, where, DeliveryState.SENDING)
    if to in (DeliveryState.DELIVERED, DeliveryState.UNDELIVERED):
        deliveries.move(session, where, DeliveryState.SENT)
    assert deliveries.move(session, where, to, values=values) == 1


@pytest.fixture
def world(session: Session) -> World:
    factories.community(session, "laos", country="LA", language="lo", kind="country")
    factories.community(session, "bokeo", parent="laos", kind="province", name="Bokeo")
    factories.community(session, "houayxay", parent="bokeo", kind="district", name="Houayxay")
    factories.community(session, "ban-don", parent="houayxay", kind="village", name="Ban Don")
    factories.community(session, "savannakhet", parent="laos", kind="province", name="Savannakhet")
    factories.community(session, "kaysone", parent="savannakhet", kind="district", name="Kaysone")
    factories.community(session, "ban-mai", parent="kaysone", kind="village", name="Ban Mai")
    n = factories.lao_number
    people = [
        # phone, communities, language, what becomes of their message
        (n(1), ("ban-don",), None, DeliveryState.DELIVERED),
        # In a district and a village under it: counted in the village.
        (n(2), ("houayxay", "ban-don"), None, DeliveryState.FAILED),
        (factories.thai_number(3), ("houayxay",), "th", DeliveryState.DELIVERED),
        (n(4), ("kaysone",), "en", DeliveryState.SKIPPED),  # opted out
        (n(5), ("kaysone",), None, DeliveryState.UNDELIVERED),
        (n(6), ("bokeo",), None, DeliveryState.QUEUED),  # not sent yet
        (n(7), ("kaysone",), None, DeliveryState.SENT),
        # In two villages as deep: counted in the one of lower id (Ban Don).
        (n(8), ("ban-mai", "ban-don"), None, DeliveryState.DELIVERED),
    ]
    for phone, slugs, language, _ in people:
        factories.contact(session, phone, community_slugs=slugs, language=language)
    campaign = factories.campaign(session, ["laos"], name="=Clinic hours")
    campaigns.schedule(session, campaign.id, approval_threshold=100)
    assert factories.fanned_out(session, campaign.id) == len(people)
    for phone, _, _, state in people:
        if state == DeliveryState.SKIPPED:
            _set(session, campaign.id, phone, state, reason="opted_out")
        elif state != DeliveryState.QUEUED:
            _set(session, campaign.id, phone, state)
    scope.add_organisation(session, "ministry", "Ministry of Labour")
    w = World(
        campaign_id=campaign.id,
        national=_person(session, "nadia", areas=None),
        bokeo=_person(session, "boun", areas=["bokeo"]),
        savan=_person(session, "sam", areas=["savannakhet"]),
    )
    session.commit()
    return w


@pytest.fixture
def app(session: Session) -> FastAPI:
    return make_app(session, approval_threshold=3)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _counts(row: dict[str, object]) -> tuple[int, ...]:
    counts = row["counts"]
    assert isinstance(counts, dict)
    return tuple(counts[k] for k in (*reports.OUTCOMES, "total"))


#            delivered sent pending failed undelivered opted_out skipped total
EVERYONE = (3, 1, 1, 1, 1, 1, 0, 8)


def test_report_counts_each_outcome_by_area_language_country_and_channel(
    client: TestClient, world: World
) -> None:
    answer = client.get(
        f"/api/v1/campaigns/{world.campaign_id}/report", headers=world.national.headers
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert tuple(data["total"][k] for k in (*reports.OUTCOMES, "total")) == EVERYONE
    areas = [(r["key"], r["depth"], _counts(r)) for r in data["by_area"]]
    assert areas == [
        ("laos", 0, EVERYONE),
        ("bokeo", 1, (3, 0, 1, 1, 0, 0, 0, 5)),
        ("houayxay", 2, (3, 0, 0, 1, 0, 0, 0, 4)),
        ("ban-don", 3, (2, 0, 0, 1, 0, 0, 0, 3)),
        ("savannakhet", 1, (0, 1, 0, 0, 1, 1, 0, 3)),
        ("kaysone", 2, (0, 1, 0, 0, 1, 1, 0, 3)),
    ]  # Ban Mai's one member is counted in Ban Don (the village of lower id)
    languages = {r["key"]: (r["name"], r["counts"]["total"]) for r in data["by_language"]}
    assert languages == {"lo": ("Lao", 6), "th": ("Thai", 1), "en": ("English", 1)}
    assert {r["key"]: r["counts"]["total"] for r in data["by_country"]} == {"LA": 7, "TH": 1}
    assert [(r["key"], _counts(r)) for r in data["by_channel"]] == [("sms", EVERYONE)]
    assert data["fell_back"] == 0 and "deepest" in data["area_rule"]


def test_report_files_are_safe_in_a_spreadsheet(
    client: TestClient, world: World, session: Session
) -> None:
    url = f"/api/v1/campaigns/{world.campaign_id}/report"
    got = client.get(f"{url}.csv", headers=world.national.headers)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0] == list(reports.HEADER)
    assert rows[1][:3] == ["total", "all", "'=Clinic hours"]  # the name cannot run as a formula
    assert rows[1][4:] == [str(n) for n in EVERYONE]
    by = {(r[0], r[1]): r for r in rows[1:]}
    assert by[("area", "ban-don")][3] == "3" and by[("area", "ban-don")][-1] == "3"
    assert by[("language", "th")][-1] == "1" and by[("country", "TH")][-1] == "1"

    book = client.get(f"{url}.xlsx", headers=world.national.headers)
    assert book.status_code == 200
    workbook = load_workbook(io.BytesIO(book.content))
    assert workbook.sheetnames == ["Summary", "Areas", "Languages", "Countries", "Channels"]
    cells = [c for sheet in workbook for row in sheet.iter_rows() for c in row if c.value]
    assert not [c.coordinate for c in cells if c.data_type == "f"]  # no formula anywhere
    summary = workbook["Summary"]
    assert summary["B2"].value == "=Clinic hours" and summary["B2"].data_type == "s"
    assert summary["B2"].quotePrefix  # shown and kept as text
    areas = list(workbook["Areas"].iter_rows(values_only=True))
    assert areas[0][:3] == ("level", "key", "name")
    assert areas[1][:3] == (0, "laos", "Laos") and areas[1][-1] == 8
    assert areas[4][:3] == (3, "ban-don", "      Ban Don") and areas[4][-1] == 3

    exports = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.report.export")
    ).all()
    assert [(e.actor, e.detail["format"]) for e in exports] == [("nadia", "csv"), ("nadia", "xlsx")]


def test_report_is_seen_exactly_by_those_who_see_the_campaign(
    client: TestClient, world: World
) -> None:
    # A campaign over all of Laos is not a provincial official's.
    for suffix in ("", ".csv", ".xlsx"):
        url = f"/api/v1/campaigns/{world.campaign_id}/report{suffix}"
        assert client.get(url, headers=world.bokeo.headers).status_code == 404
    # One in Bokeo: Bokeo's official sees its report, Savannakhet's gets a 404 as for the
    # campaign itself.
    made = client.post(
        "/api/v1/campaigns",
        json={"name": "Bokeo clinics", "template": "covid-test", "communities": ["bokeo"]},
        headers=world.bokeo.headers,
    )
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    assert (
        client.get(f"/api/v1/campaigns/{cid}/report", headers=world.bokeo.headers).json()["total"][
            "total"
        ]
        == 0
    )
    for suffix in ("", ".csv", ".xlsx"):
        url = f"/api/v1/campaigns/{cid}/report{suffix}"
        assert client.get(url, headers=world.savan.headers).status_code == 404
        assert client.get(url, headers=world.national.headers).status_code == 200
    assert client.get(f"/api/v1/campaigns/{cid}", headers=world.savan.headers).status_code == 404


def test_chart_draws_each_area_as_shares_of_its_deliveries(world: World, session: Session) -> None:
    report = reports.campaign_report(session, campaigns.get(session, world.campaign_id))
    drawn = reports.chart([r for r in report.by_area if r.depth <= 1], title="By area")
    assert [r.name.strip() for r in drawn.rows] == ["Laos", "Bokeo", "Savannakhet"]
    for row in drawn.rows:  # every bar fills the plot: shares, not counts
        width = sum(s.width for s in row.segments)
        assert width == pytest.approx(drawn.plot_right - drawn.plot_left, abs=0.05)
    bokeo = drawn.rows[1]
    assert [(s.outcome, s.count) for s in bokeo.segments] == [
        ("delivered", 3),
        ("pending", 1),
        ("failed", 1),
    ]
    assert "Bokeo: 60% delivered, 20% failed or undelivered, of 5" in drawn.summary


def test_an_erased_person_still_counts_without_an_area(world: World, session: Session) -> None:
    person = session.scalar(select(Contact).where(Contact.phone == factories.lao_number(7)))
    assert person is not None
    privacy.erase_contact(session, person)
    report = reports.campaign_report(session, campaigns.get(session, world.campaign_id))
    assert report.total["total"] == 8
    last = report.by_area[-1]
    assert (last.key, last.counts["sent"], last.counts["total"]) == (reports.NO_AREA, 1, 1)
    assert report.by_area[0].counts["total"] == 7  # Laos: the seven still known
    assert {r.key: r.counts["total"] for r in report.by_country}["unknown"] == 1
