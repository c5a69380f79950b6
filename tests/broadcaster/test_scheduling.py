"""Scheduling: due campaigns claimed exactly once; orphaned work found again."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.db import make_session_factory, session_scope, utcnow
from broadcaster.errors import IllegalState
from broadcaster.models import Campaign, CampaignState, Delivery
from broadcaster.users import auth
from tests import factories
from tests.services import migrated_database


def test_not_due_is_not_claimed(session: Session) -> None:
    factories.community(session, "village")
    camp = factories.campaign(session, ["village"])
    campaigns.schedule(session, camp.id, send_at=utcnow() + timedelta(hours=1))
    assert scheduling.claim_due(session, utcnow()) == []
    assert scheduling.claim_due(session, utcnow() + timedelta(hours=2)) == [(camp.id, "bulk")]


def test_urgent_is_claimed_first(session: Session) -> None:
    factories.community(session, "village")
    bulk = factories.campaign(session, ["village"])
    urgent = factories.campaign(session, ["village"], key="covid-test", priority="urgent")
    approver = auth.create_user(session, "approver", role="admin")  # two-person rule
    campaigns.approve(session, urgent.id, approver.id)
    campaigns.schedule(session, bulk.id)
    campaigns.schedule(session, urgent.id)
    assert [c for c, _ in scheduling.claim_due(session, utcnow(), limit=1)] == [urgent.id]


def test_only_a_draft_can_be_launched(session: Session) -> None:
    factories.community(session, "village")
    camp = factories.campaign(session, ["village"])
    campaigns.schedule(session, camp.id)
    with pytest.raises(IllegalState, match="only a draft"):
        campaigns.schedule(session, camp.id)


def test_lost_batches_go_back_to_the_pool(session: Session) -> None:
    factories.community(session, "village")
    for _ in range(5):
        factories.contact(session, community_slugs=("village",))
    camp = factories.campaign(session, ["village"])
    campaigns.schedule(session, camp.id)
    scheduling.claim_due(session, utcnow())
    page = fanout_page(session, camp.id, page_size=100, batch_size=2)
    later = utcnow() + timedelta(minutes=1)
    open_tokens = {b.token for b in scheduling.open_batches(session, later)}
    assert open_tokens == set(page.batches)
    assert scheduling.forget_batches(session, list(open_tokens)) == 5
    assert scheduling.open_batches(session, later) == []
    again = scheduling.assign_batches(session, utcnow(), batch_size=2)
    assert sorted(len(b.token) for b in again) == [32, 32, 32]
    ids = session.scalars(select(Delivery.batch).where(Delivery.campaign_id == camp.id)).all()
    assert all(ids) and len(set(ids)) == 3


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_schedulers_never_claim_one_campaign_twice(kind: str, tmp_path: object) -> None:
    """Real concurrency: several threads, each its own connection and transaction."""
    with migrated_database(kind, str(tmp_path)) as (_url, engine):
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            factories.community(session, "village")
            key = factories.template(session)
            ids = []
            for n in range(20):
                camp = campaigns.create_campaign(
                    session, name=f"c{n}", template_key=key, community_slugs=["village"]
                )
                campaigns.schedule(session, camp.id)
                ids.append(camp.id)
        claims: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(4)

        def scheduler() -> None:
            barrier.wait()
            for _ in range(10):
                with session_scope(factory) as s:
                    got = scheduling.claim_due(s, utcnow(), limit=3)
                with lock:
                    claims.extend(c for c, _ in got)

        threads = [threading.Thread(target=scheduler) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claims) == sorted(ids)  # every one claimed, none twice
        _assert_all_fanning_out(engine)


def _assert_all_fanning_out(engine: Engine) -> None:
    with session_scope(make_session_factory(engine)) as s:
        states = set(s.scalars(select(Campaign.state)))
    assert states == {CampaignState.FANNING_OUT.value}
