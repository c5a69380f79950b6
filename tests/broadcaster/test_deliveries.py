"""The delivery state machine: moves only where the diagram allows; callbacks only forward."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.db import utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.models import CampaignState, Delivery, DeliveryState
from tests import factories


def _one_delivery(session: Session) -> Delivery:
    factories.community(session, "village")
    factories.contact(session, community_slugs=("village",), language="lo")
    camp = factories.campaign(session, ["village"])
    campaigns.schedule(session, camp.id)
    scheduling.claim_due(session, utcnow())
    fanout_page(session, camp.id, page_size=100, batch_size=100)
    return session.scalars(select(Delivery).where(Delivery.campaign_id == camp.id)).one()


def _state(session: Session, delivery_id: int) -> str:
    return session.scalar(select(Delivery.state).where(Delivery.id == delivery_id)) or ""


def test_only_one_of_two_claims_wins(session: Session) -> None:
    d = _one_delivery(session)
    this = Delivery.id == d.id
    first = deliveries.move(session, this, DeliveryState.SENDING, only_from=[DeliveryState.QUEUED])
    second = deliveries.move(session, this, DeliveryState.SENDING, only_from=[DeliveryState.QUEUED])
    assert (first, second) == (1, 0)


def test_a_move_the_diagram_forbids_changes_nothing(session: Session) -> None:
    d = _one_delivery(session)
    deliveries.move(session, Delivery.id == d.id, DeliveryState.SKIPPED)
    # skipped is final: nothing moves it on
    assert deliveries.move(session, Delivery.id == d.id, DeliveryState.DELIVERED) == 0
    assert deliveries.move(session, Delivery.id == d.id, DeliveryState.QUEUED) == 0
    assert _state(session, d.id) == "skipped"


def test_only_from_cannot_widen_the_diagram(session: Session) -> None:
    d = _one_delivery(session)
    # skipped -> sent is not in the diagram: asking for it is a programming error
    with pytest.raises(ValueError, match="no state may move to sent"):
        deliveries.move(
            session, Delivery.id == d.id, DeliveryState.SENT, only_from=[DeliveryState.SKIPPED]
        )
    assert _state(session, d.id) == "queued"


@pytest.mark.parametrize("status", ["queued", "sent", "delivered", "partially_delivered", "new"])
def test_a_provider_report_for_a_queued_delivery_takes_it_out_of_the_queue(
    session: Session, status: str
) -> None:
    """The provider has the message after all (a late answer, a callback, for a delivery
    that was put back): it is recorded as the provider reports it and never sent again."""
    d = _one_delivery(session)
    state = deliveries.apply_provider_status(session, delivery_id=d.id, sid="SM7", status=status)
    assert state in ("sent", "delivered")
    row = session.get_one(Delivery, d.id, populate_existing=True)
    assert (row.state, row.provider_sid) == (state, "SM7")


def test_callbacks_move_forward_only_and_repeat_harmlessly(session: Session) -> None:
    d = _one_delivery(session)
    deliveries.move(session, Delivery.id == d.id, DeliveryState.SENDING)
    # the worker died after the provider accepted: the callback (by id) still finds it
    assert (
        deliveries.apply_provider_status(session, delivery_id=d.id, sid="SM1", status="delivered")
        == "delivered"
    )
    # a late "sent" and a duplicate "delivered" never move it back
    deliveries.apply_provider_status(session, delivery_id=None, sid="SM1", status="sent")
    deliveries.apply_provider_status(session, delivery_id=d.id, sid="SM1", status="delivered")
    row = session.get_one(Delivery, d.id, populate_existing=True)
    assert (row.state, row.provider_sid) == ("delivered", "SM1")


def test_callback_matched_by_sid_alone(session: Session) -> None:
    d = _one_delivery(session)
    deliveries.move(session, Delivery.id == d.id, DeliveryState.SENDING)
    deliveries.move(
        session, Delivery.id == d.id, DeliveryState.SENT, values={"provider_sid": "SM9"}
    )
    deliveries.apply_provider_status(
        session, delivery_id=None, sid="SM9", status="undelivered", error_code=30003
    )
    row = session.get_one(Delivery, d.id, populate_existing=True)
    assert (row.state, row.error_code) == ("undelivered", 30003)


def test_unknown_callback_is_ignored(session: Session) -> None:
    assert (
        deliveries.apply_provider_status(
            session, delivery_id=None, sid="SMnope", status="delivered"
        )
        is None
    )


@pytest.mark.parametrize("state", ["delivered", "undelivered", "skipped"])
def test_terminal_states_have_no_way_out(state: str) -> None:
    assert deliveries.sources_of(DeliveryState.QUEUED).isdisjoint({state})


def test_cancel_skips_what_is_not_yet_sent(session: Session) -> None:
    d = _one_delivery(session)
    campaigns.cancel(session, d.campaign_id)
    row = session.get_one(Delivery, d.id, populate_existing=True)
    assert (row.state, row.reason) == ("skipped", "cancelled")
    assert campaigns.get(session, d.campaign_id).state == CampaignState.CANCELLED
