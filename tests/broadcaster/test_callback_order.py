"""Status callbacks as Twilio sends them, repeated and out of order: the simulator posts
signed callbacks (SimulatorCore.send_callback) to the API on a real socket, and a delivery
always ends in its furthest state, for SMS and for WhatsApp addresses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.models import Delivery
from tests import factories
from tests.broadcaster.twilio_kit import ACCOUNT, STATUS, Kit, kit_with_api

PHONE = factories.lao_number(401)


@pytest.fixture(params=["sqlite", "postgresql"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    with kit_with_api(request.param, str(tmp_path)) as k:
        with k.runtime.session() as s:
            factories.community(s, "village")
            factories.contact(s, PHONE, community_slugs=("village",), language="lo")
        yield k


def sent(kit: Kit, channel: str = "sms") -> tuple[int, str]:
    campaign_id, tokens = kit.launch("village", channel=channel)
    assert kit.send(campaign_id, tokens) == {"sent": 1}
    with kit.runtime.session() as s:
        delivery_id, sid = s.execute(select(Delivery.id, Delivery.provider_sid)).one()
    return delivery_id, sid


def state(kit: Kit) -> tuple[str, int | None]:
    with kit.runtime.session() as s:
        row = s.execute(select(Delivery.state, Delivery.error_code)).one()
    return row.state, row.error_code


def callbacks(kit: Kit, sid: str, *statuses: str | tuple[str, int]) -> list[int | None]:
    answers = []
    for item in statuses:
        status, code = item if isinstance(item, tuple) else (item, None)
        answers.append(kit.core.send_callback(sid, status, code))
    return answers


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
def test_late_and_repeated_callbacks_never_move_a_delivery_back(kit: Kit, channel: str) -> None:
    _, sid = sent(kit, channel)
    form = kit.core.request_form(sid)
    assert form is not None
    if channel == "whatsapp":
        assert form["To"] == f"whatsapp:{PHONE}" and form["From"].startswith("whatsapp:+")
    # delivered first, then the earlier statuses arrive late, then delivered again
    answers = callbacks(kit, sid, "delivered", "sent", "queued", "sending", "delivered")
    assert answers == [204] * 5
    assert state(kit) == ("delivered", None)
    # a final status never replaces another final one
    callbacks(kit, sid, ("undelivered", 30003), ("failed", 30008))
    assert state(kit) == ("delivered", None)
    if channel == "whatsapp":
        # WhatsApp reports "read" after "delivered": still delivered, and accepted
        assert callbacks(kit, sid, "read") == [204]
        assert state(kit) == ("delivered", None)


def test_a_failure_arriving_before_sent_wins_and_sent_after_it_is_ignored(kit: Kit) -> None:
    _, sid = sent(kit)
    assert callbacks(kit, sid, ("undelivered", 30005), "sent", "sent", "delivered") == [204] * 4
    assert state(kit) == ("undelivered", 30005)


def test_a_duplicate_sent_callback_keeps_the_delivery_sent(kit: Kit) -> None:
    _, sid = sent(kit)
    callbacks(kit, sid, "sent", "sent", "queued")
    assert state(kit) == ("sent", None)
    callbacks(kit, sid, ("failed", 30007), ("failed", 30007))
    assert state(kit) == ("failed", 30007)


def test_a_callback_for_a_message_we_do_not_know_is_acknowledged(kit: Kit) -> None:
    # Twilio would retry anything but a 2xx; an unknown SID has nothing to update.
    _, sid = sent(kit)
    with kit.runtime.session() as s:
        s.execute(Delivery.__table__.update().values(provider_sid="SMother"))
    params = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT}
    status = kit.post(STATUS, params).status_code
    assert status == 204
    assert state(kit) == ("sent", None)
