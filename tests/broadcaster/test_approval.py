# ruff: noqa: F811 - pytest fixtures imported by name
"""The two-person rule: urgent campaigns, and those above the approval threshold, need a
second official or admin (not the creator) before they can be launched or scheduled."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.errors import IllegalState
from broadcaster.users import auth
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, app, client, people  # noqa: F401


def setup(session: Session, n: int) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    for i in range(n):
        factories.contact(session, factories.lao_number(700 + i), community_slugs=("laos",))


def test_small_bulk_campaign_needs_no_approval(session: Session) -> None:
    setup(session, 3)
    camp = factories.campaign(session, ["laos"])
    assert campaigns.count_recipients(session, camp) == 3
    assert not campaigns.needs_approval(session, camp, threshold=3)
    assert campaigns.schedule(session, camp.id, approval_threshold=3).state == "scheduled"


def test_above_threshold_or_urgent_needs_a_second_person(session: Session) -> None:
    setup(session, 4)
    creator = auth.create_user(session, "creator", role="official")
    other = auth.create_user(session, "second", role="official")
    operator = auth.create_user(session, "watcher", role="operator")
    large = factories.campaign(session, ["laos"], created_by=creator.id)
    urgent = factories.campaign(session, ["laos"], priority="urgent", created_by=creator.id)
    assert campaigns.needs_approval(session, large, threshold=3)
    assert campaigns.needs_approval(session, urgent, threshold=1000)
    with pytest.raises(IllegalState, match="two-person rule: 4 recipients is more than 3"):
        campaigns.schedule(session, large.id, approval_threshold=3)
    with pytest.raises(IllegalState, match="every urgent campaign"):
        campaigns.schedule(session, urgent.id, approval_threshold=1000)
    with pytest.raises(IllegalState, match="second person"):
        campaigns.approve(session, urgent.id, creator.id)
    with pytest.raises(IllegalState, match="only an official or admin"):
        campaigns.approve(session, urgent.id, operator.id)
    assert campaigns.approve(session, urgent.id, other.id).approved_by == other.id
    with pytest.raises(IllegalState, match="already approved"):
        campaigns.approve(session, urgent.id, other.id)
    assert campaigns.schedule(session, urgent.id, approval_threshold=1000).state == "scheduled"


def test_approval_over_the_api(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    setup(session, 6)  # the test app's threshold is 5
    factories.template(session)
    session.commit()
    first, second = people["official"], people["official2"]
    body = {"name": "Flood warning", "template": "covid-test", "communities": ["laos"]}
    cid = client.post("/api/v1/campaigns", json=body, headers=first.headers).json()["id"]
    rule = client.get(f"/api/v1/campaigns/{cid}/approval", headers=first.headers).json()
    assert rule == {
        "needs_approval": True,
        "rule": "6 recipients is more than 5",
        "recipients": 6,
        "approved_by": None,
    }
    refused = client.post(f"/api/v1/campaigns/{cid}/launch", headers=first.headers)
    assert refused.status_code == 409 and "two-person rule" in refused.json()["error"]
    own = client.post(f"/api/v1/campaigns/{cid}/approve", headers=first.headers)
    assert own.status_code == 409
    operator = client.post(f"/api/v1/campaigns/{cid}/approve", headers=people["operator"].headers)
    assert operator.status_code == 403
    approved = client.post(f"/api/v1/campaigns/{cid}/approve", headers=second.headers)
    assert approved.status_code == 200 and approved.json()["approved_by"] == "omar"
    launched = client.post(f"/api/v1/campaigns/{cid}/launch", headers=first.headers)
    assert launched.status_code == 200 and launched.json()["state"] == "scheduled"
    # The approver follows the campaign they let go, launched and no longer a draft.
    seen = client.get(f"/api/v1/campaigns/{cid}", headers=second.headers)
    assert seen.status_code == 200 and seen.json()["approved_by"] == "omar"
    listed = client.get("/api/v1/campaigns", headers=second.headers).json()
    assert cid in [c["id"] for c in listed]
