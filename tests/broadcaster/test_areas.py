"""Many officials, one trust boundary: organisations and areas over the HTTP API, with two
provinces (Bokeo and Savannakhet) of one country and two organisations, and the two-person
rule bound to the audience on every path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.config import get_settings
from broadcaster.db import utcnow
from broadcaster.models import AuditEvent, Campaign, Contact, Delivery, InboundMessage
from broadcaster.users import auth
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, make_app

BODY = {"name": "Clinic hours", "template": "covid-test"}


@dataclass
class World:
    national: Person  # ministry, every community
    bokeo: Person  # ministry official, Bokeo
    bokeo2: Person  # a second ministry official in Bokeo
    savan: Person  # ministry official, Savannakhet
    health: Person  # another organisation's official in Bokeo
    operator_bokeo: Person
    numbers: dict[str, str]


def _person(
    session: Session, name: str, role: str, *, org: str | None, areas: list[str] | None
) -> Person:
    user = auth.create_user(session, name, role=role, organisation=org, areas=areas)
    _, token = auth.issue_token(session, user)
    return Person(user.id, name, role, token)


@pytest.fixture
def world(session: Session) -> World:
    factories.community(session, "laos", country="LA", language="lo", kind="country")
    factories.community(session, "bokeo", parent="laos", kind="province")
    factories.community(session, "houayxay", parent="bokeo", kind="district")
    factories.community(session, "savannakhet", parent="laos", kind="province")
    factories.community(session, "kaysone", parent="savannakhet", kind="district")
    numbers = {
        "bokeo": factories.lao_number(1001),
        "houayxay": factories.lao_number(1002),
        "savan": factories.lao_number(2001),
        # A Thai SIM of a worker whose village is in Bokeo: it follows the community.
        "thai_sim": factories.thai_number(3001),
    }
    factories.contact(session, numbers["bokeo"], community_slugs=("bokeo",), name="Bounmy")
    factories.contact(session, numbers["houayxay"], community_slugs=("houayxay",), name="Bounma")
    factories.contact(session, numbers["savan"], community_slugs=("kaysone",), name="Bounpheng")
    factories.contact(session, numbers["thai_sim"], community_slugs=("houayxay",), name="Bounlai")
    factories.template(session)
    scope.add_organisation(session, "ministry", "Ministry of Labour")
    scope.add_organisation(session, "health", "Provincial Health Office")
    w = World(
        national=_person(session, "nadia", "official", org="ministry", areas=None),
        bokeo=_person(session, "boun", "official", org="ministry", areas=["bokeo"]),
        bokeo2=_person(session, "bee", "official", org="ministry", areas=["bokeo"]),
        savan=_person(session, "sam", "official", org="ministry", areas=["savannakhet"]),
        health=_person(session, "hana", "official", org="health", areas=["bokeo"]),
        operator_bokeo=_person(session, "oscar", "operator", org="ministry", areas=["bokeo"]),
        numbers=numbers,
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


def _create(client: TestClient, who: Person, communities: list[str], **extra: object) -> int:
    answer = client.post(
        "/api/v1/campaigns", json={**BODY, "communities": communities, **extra}, headers=who.headers
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _ids(client: TestClient, who: Person, url: str) -> set[int]:
    answer = client.get(url, headers=who.headers)
    assert answer.status_code == 200, answer.text
    return {int(row["id"]) for row in answer.json()}


def test_contacts_are_found_only_in_the_searchers_areas(client: TestClient, world: World) -> None:
    def found(who: Person, q: str) -> int:
        answer = client.get("/api/v1/contacts", params={"q": q}, headers=who.headers)
        assert answer.status_code == 200, answer.text
        return len(answer.json())

    savan_number, bokeo_number = world.numbers["savan"], world.numbers["bokeo"]
    assert found(world.savan, savan_number) == 1
    assert found(world.bokeo, savan_number) == 0  # another province's number: not there
    assert found(world.bokeo, bokeo_number) == 1
    assert found(world.bokeo, world.numbers["thai_sim"]) == 1  # cross-border, in Bokeo
    assert found(world.savan, world.numbers["thai_sim"]) == 0
    assert found(world.bokeo, "Boun") == 3  # by name: Bokeo's three, not Savannakhet's
    assert found(world.national, "Boun") == 4


def test_communities_listed_and_added_within_areas(client: TestClient, world: World) -> None:
    slugs = {
        c["slug"] for c in client.get("/api/v1/communities", headers=world.bokeo.headers).json()
    }
    assert slugs == {"bokeo", "houayxay"}
    add = {"name": "Tonpheung", "kind": "district"}
    elsewhere = client.post(
        "/api/v1/communities",
        json={**add, "slug": "xaybouly", "parent": "savannakhet"},
        headers=world.bokeo.headers,
    )
    assert elsewhere.status_code == 403 and "outside your areas" in elsewhere.json()["error"]
    root = client.post(
        "/api/v1/communities", json={**add, "slug": "thailand"}, headers=world.bokeo.headers
    )
    assert root.status_code == 403
    inside = client.post(
        "/api/v1/communities",
        json={**add, "slug": "tonpheung", "parent": "bokeo"},
        headers=world.bokeo.headers,
    )
    assert inside.status_code == 201, inside.text


def test_a_contact_is_added_only_to_communities_in_ones_areas(
    client: TestClient, world: World
) -> None:
    new = {"phone": factories.lao_number(4001)}
    elsewhere = client.post(
        "/api/v1/contacts", json={**new, "communities": ["kaysone"]}, headers=world.bokeo.headers
    )
    assert elsewhere.status_code == 403
    nowhere = client.post("/api/v1/contacts", json=new, headers=world.bokeo.headers)
    assert nowhere.status_code == 422
    ok = client.post(
        "/api/v1/contacts", json={**new, "communities": ["houayxay"]}, headers=world.bokeo.headers
    )
    assert ok.status_code == 201, ok.text


def test_campaigns_are_targeted_and_seen_within_area_and_organisation(
    client: TestClient, world: World, session: Session
) -> None:
    refused = client.post(
        "/api/v1/campaigns", json={**BODY, "communities": ["kaysone"]}, headers=world.bokeo.headers
    )
    assert refused.status_code == 403 and "kaysone" in refused.json()["error"]
    cid = _create(client, world.bokeo, ["houayxay"])
    campaign = session.get_one(Campaign, cid)
    assert campaign.area_path == session.get_one(Campaign, cid).area_path
    assert campaign.area_path.count("/") == 4  # /laos/bokeo/houayxay/

    assert cid in _ids(client, world.bokeo2, "/api/v1/campaigns")  # same office, same area
    assert cid in _ids(client, world.national, "/api/v1/campaigns")
    assert cid in _ids(client, world.operator_bokeo, "/api/v1/campaigns")
    assert cid not in _ids(client, world.savan, "/api/v1/campaigns")  # another province
    assert cid not in _ids(client, world.health, "/api/v1/campaigns")  # another organisation
    for outsider in (world.savan, world.health):
        answer = client.get(f"/api/v1/campaigns/{cid}", headers=outsider.headers)
        assert answer.status_code == 404
        assert (
            client.get(f"/api/v1/campaigns/{cid}/deliveries", headers=outsider.headers).status_code
            == 404
        )

    # A campaign over both provinces belongs to the country: only national people see it.
    both = _create(client, world.national, ["houayxay", "kaysone"])
    assert both in _ids(client, world.national, "/api/v1/campaigns")
    assert both not in _ids(client, world.bokeo, "/api/v1/campaigns")


def test_approval_by_someone_who_sees_the_campaign_and_the_waiting_list(
    client: TestClient, world: World
) -> None:
    cid = _create(client, world.bokeo, ["bokeo"], priority="urgent")
    for outsider, code in ((world.savan, 404), (world.health, 404), (world.operator_bokeo, 403)):
        answer = client.post(f"/api/v1/campaigns/{cid}/approve", headers=outsider.headers)
        assert answer.status_code == code, (outsider.name, answer.text)
    assert cid in _ids(client, world.bokeo2, "/api/v1/campaigns/awaiting-approval")
    assert cid in _ids(client, world.national, "/api/v1/campaigns/awaiting-approval")
    assert cid not in _ids(client, world.bokeo, "/api/v1/campaigns/awaiting-approval")  # own
    assert cid not in _ids(client, world.savan, "/api/v1/campaigns/awaiting-approval")
    approved = client.post(f"/api/v1/campaigns/{cid}/approve", headers=world.bokeo2.headers)
    assert approved.status_code == 200 and approved.json()["approved_by"] == "bee"
    assert cid not in _ids(client, world.national, "/api/v1/campaigns/awaiting-approval")


def test_an_official_pauses_and_cancels_their_own_campaign_only(
    client: TestClient, world: World
) -> None:
    cid = _create(client, world.bokeo, ["bokeo"])  # 3 recipients: not over the threshold
    assert (
        client.post(
            f"/api/v1/campaigns/{cid}/schedule",
            json={"send_at": "2099-01-01T09:00:00+07:00"},
            headers=world.bokeo.headers,
        ).status_code
        == 200
    )
    other = client.post(f"/api/v1/campaigns/{cid}/pause", headers=world.bokeo2.headers)
    assert other.status_code == 403
    paused = client.post(f"/api/v1/campaigns/{cid}/pause", headers=world.bokeo.headers)
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    cancelled = client.post(f"/api/v1/campaigns/{cid}/cancel", headers=world.bokeo.headers)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    # An operator of another area does not reach it either.
    savan_cid = _create(client, world.savan, ["kaysone"])
    answer = client.post(
        f"/api/v1/campaigns/{savan_cid}/cancel", headers=world.operator_bokeo.headers
    )
    assert answer.status_code == 404


def test_the_inbox_shows_messages_from_ones_areas(
    client: TestClient, world: World, session: Session
) -> None:
    spaced = session.scalars(select(Contact).where(Contact.phone == world.numbers["bokeo"])).one()
    session.add(
        InboundMessage(
            from_phone=spaced.phone,
            to_phone="+15005550006",
            contact_id=spaced.id,
            body="my sister is on 0 2 0 5 5 5 5 1 2 3 4, call her",
            provider_sid="SMspaced",
        )
    )
    for key in ("bokeo", "savan"):
        contact = session.scalars(select(Contact).where(Contact.phone == world.numbers[key])).one()
        session.add(
            InboundMessage(
                from_phone=contact.phone,
                to_phone="+15005550006",
                contact_id=contact.id,
                body=f"hello from {key}",
                provider_sid=f"SM{key}",
            )
        )
    session.commit()

    def bodies(who: Person) -> set[str]:
        answer = client.get("/api/v1/inbox", headers=who.headers)
        assert answer.status_code == 200, answer.text
        return {m["body"] for m in answer.json()}

    seen = bodies(world.bokeo)
    assert "hello from bokeo" in seen and "hello from savan" not in seen
    (sister,) = seen - {"hello from bokeo"}
    assert "5 5 5 5" not in sister and sister.endswith("3 4, call her")  # masked as typed
    assert bodies(world.savan) == {"hello from savan"}
    assert {"hello from bokeo", "hello from savan"} <= bodies(world.national)


# -- the two-person rule bound to the audience ------------------------------------------


def _grow(session: Session, n: int, first: int) -> None:
    for i in range(n):
        factories.contact(session, factories.lao_number(first + i), community_slugs=("bokeo",))
    session.commit()


@pytest.fixture
def fanout_threshold(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fan-out's own (server) setting: 3, as the API's."""
    monkeypatch.setenv("RISKCAST_APPROVAL_THRESHOLD", "3")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_recipients_added_after_approval_are_not_sent_without_a_new_one(
    client: TestClient, world: World, session: Session, fanout_threshold: None
) -> None:
    _grow(session, 1, 5000)  # Bokeo: 4 people, over the threshold of 3
    cid = _create(client, world.bokeo, ["bokeo"])
    assert (
        client.post(f"/api/v1/campaigns/{cid}/approve", headers=world.bokeo2.headers).json()[
            "approved_by"
        ]
        == "bee"
    )
    assert session.get_one(Campaign, cid).approved_recipients == 4
    # Launched with 4, as approved; then 40 more people are imported before fan-out.
    assert (
        client.post(f"/api/v1/campaigns/{cid}/launch", headers=world.bokeo.headers).status_code
        == 200
    )
    _grow(session, 40, 5100)
    assert factories.fanned_out(session, cid) == 0
    session.commit()
    stopped = session.get_one(Campaign, cid)
    session.refresh(stopped)
    assert stopped.state == "stopped"
    assert "waiting for a new approval: 44 recipients is more than the 4 approved" in (
        stopped.error or ""
    )
    assert session.scalar(select(Delivery.id).where(Delivery.campaign_id == cid)) is None
    # Its creator cannot approve the larger audience; the second official can, then it goes.
    own = client.post(f"/api/v1/campaigns/{cid}/approve", headers=world.bokeo.headers)
    assert own.status_code == 409
    assert cid in _ids(client, world.bokeo2, "/api/v1/campaigns/awaiting-approval")
    again = client.post(f"/api/v1/campaigns/{cid}/approve", headers=world.bokeo2.headers)
    assert again.status_code == 200, again.text
    resumed = client.post(f"/api/v1/campaigns/{cid}/resume", headers=world.bokeo.headers)
    assert resumed.status_code == 200 and resumed.json()["state"] == "fanning_out"
    assert fanout_page(session, cid, page_size=1000, batch_size=100).created == 44


def test_a_small_campaign_that_grows_after_launch_stops_at_fan_out(
    client: TestClient, world: World, session: Session, fanout_threshold: None
) -> None:
    cid = _create(client, world.bokeo, ["bokeo"])  # 3 people: no approval needed
    launched = client.post(f"/api/v1/campaigns/{cid}/launch", headers=world.bokeo.headers)
    assert launched.status_code == 200, launched.text
    _grow(session, 20, 6000)
    assert factories.fanned_out(session, cid) == 0
    session.commit()
    campaign = session.get_one(Campaign, cid)
    session.refresh(campaign)
    assert campaign.state == "stopped"
    assert "23 recipients is more than 3" in (campaign.error or "")


def test_schedule_refuses_an_audience_grown_past_its_approval(
    client: TestClient, world: World, session: Session
) -> None:
    _grow(session, 1, 7000)  # 4 in Bokeo
    cid = _create(client, world.bokeo, ["bokeo"])
    client.post(f"/api/v1/campaigns/{cid}/approve", headers=world.bokeo2.headers)
    _grow(session, 1, 7100)
    refused = client.post(f"/api/v1/campaigns/{cid}/launch", headers=world.bokeo.headers)
    assert refused.status_code == 409
    assert "5 recipients is more than the 4 approved" in refused.json()["error"]
    assert campaigns.needs_approval(session, session.get_one(Campaign, cid))


def test_an_operator_lists_the_deliveries_in_doubt_of_their_areas_only(
    client: TestClient, world: World, session: Session
) -> None:
    bokeo = _create(client, world.bokeo, ["houayxay"])
    savan = _create(client, world.savan, ["kaysone"])
    for cid, who in ((bokeo, world.bokeo), (savan, world.savan)):
        assert (
            client.post(f"/api/v1/campaigns/{cid}/launch", headers=who.headers).status_code == 200
        )
        assert factories.fanned_out(session, cid) > 0
    an_hour_ago = utcnow() - timedelta(hours=1)
    session.execute(
        update(Delivery).values(state="sending", sending_at=an_hour_ago, provider_sid=None)
    )
    session.commit()

    def listed(who: Person) -> set[int]:
        answer = client.get("/api/v1/stats", headers=who.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["queue"]["in_doubt"]["count"] == 3  # the fleet's figure
        return {d["campaign_id"] for d in body["in_doubt_deliveries"]}

    assert listed(world.operator_bokeo) == {bokeo}


def test_an_admin_gives_people_an_organisation_and_areas(
    client: TestClient, world: World, session: Session
) -> None:
    admin = _person(session, "ada", "admin", org=None, areas=None)
    session.commit()
    org = client.post(
        "/api/v1/organisations",
        json={"slug": "iom", "name": "Migration agency"},
        headers=admin.headers,
    )
    assert org.status_code == 201, org.text
    made = client.post(
        "/api/v1/users",
        json={"name": "kham", "role": "operator", "organisation": "iom", "areas": ["savannakhet"]},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    areas = client.get("/api/v1/users/kham/areas", headers=admin.headers).json()
    assert areas == {
        "name": "kham",
        "organisation": "iom",
        "national": False,
        "areas": ["savannakhet"],
    }
    _, own = auth.accept_invitation(
        session, "kham", made.json()["invitation"], password=None, source="test"
    )
    session.commit()
    assert own is not None
    kham = {"Authorization": f"Bearer {own[1]}"}
    slugs = {c["slug"] for c in client.get("/api/v1/communities", headers=kham).json()}
    assert slugs == {"savannakhet", "kaysone"}

    moved = client.put("/api/v1/users/kham/areas", json={"areas": ["bokeo"]}, headers=admin.headers)
    assert moved.status_code == 200 and moved.json()["areas"] == ["bokeo"]
    slugs = {c["slug"] for c in client.get("/api/v1/communities", headers=kham).json()}
    assert slugs == {"bokeo", "houayxay"}  # at once: areas are read on every request
    national = client.put("/api/v1/users/kham/areas", json={"areas": None}, headers=admin.headers)
    assert national.json()["national"] is True

    # Only an admin hands out areas; an admin has no areas; the communities must exist.
    denied = client.put(
        "/api/v1/users/boun/areas", json={"areas": None}, headers=world.bokeo.headers
    )
    assert denied.status_code == 403
    bad = client.put("/api/v1/users/ada/areas", json={"areas": ["bokeo"]}, headers=admin.headers)
    assert bad.status_code == 422
    missing = client.put(
        "/api/v1/users/kham/areas", json={"areas": ["atlantis"]}, headers=admin.headers
    )
    assert missing.status_code == 422 and "atlantis" in missing.json()["error"]
    audit = session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "ada")).all()
    assert {"organisation.create", "user.create", "user.areas"} <= set(audit)


def test_an_import_places_people_in_the_importers_areas_only(
    client: TestClient, world: World, session: Session
) -> None:
    def upload(who: Person, text: str, **params: str) -> Any:
        return client.post(
            "/api/v1/contacts/import",
            params=params,
            files={"file": ("people.csv", text.encode(), "text/csv")},
            headers=who.headers,
        )

    rows = (
        "phone,communities\n"
        f"{factories.lao_number(8001)},houayxay\n"  # Bokeo: kept
        f"{factories.lao_number(8002)},kaysone\n"  # Savannakhet: outside
        f"{factories.lao_number(8003)},\n"  # nowhere: outside every area
    )
    answer = upload(world.bokeo, rows)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["imported"], body["rejected"]) == (1, 2)
    reasons = {e["line"]: e["reason"] for e in body["errors"]}
    assert reasons == {
        3: "community 'kaysone' is outside your areas",
        4: "name a community in your areas",
    }
    elsewhere = upload(world.bokeo, "phone\n" + factories.lao_number(8004), community="kaysone")
    assert elsewhere.status_code == 403
    placed = upload(world.bokeo, "phone\n" + factories.lao_number(8005) + "\n", community="bokeo")
    assert placed.json()["imported"] == 1
    # A national official places people anywhere, or nowhere, as before.
    national = upload(world.national, rows)
    assert national.json()["rejected"] == 0
