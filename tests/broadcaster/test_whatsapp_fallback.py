"""WhatsApp that fails for good is followed by one SMS: from a signed status callback on a
real socket, from a refusal when sending, and from retries running out; never for an
opted-out person, a cancelled campaign or twice for the same delivery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.models import Campaign, Contact, Delivery
from tests import factories
from tests.broadcaster.twilio_kit import Kit, kit_with_api

ON_WHATSAPP = factories.lao_number(501)  # prefers WhatsApp
NO_WHATSAPP = factories.lao_number(502)  # prefers WhatsApp, but WhatsApp cannot reach them
SMS_ONLY = factories.thai_number(503)  # prefers SMS


@pytest.fixture(params=["sqlite", "postgresql"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    with kit_with_api(request.param, str(tmp_path), max_attempts=3, retry_base=0.001) as k:
        with k.runtime.session() as s:
            factories.community(s, "village")
            for phone, channel in (
                (ON_WHATSAPP, "whatsapp"),
                (NO_WHATSAPP, "whatsapp"),
                (SMS_ONLY, "sms"),
            ):
                contacts.add_contact(
                    s, phone, region="LA", communities=["village"], channel=channel
                )
        yield k


def rows(kit: Kit, campaign_id: int) -> list[tuple[str, str, str, int | None, bool]]:
    """(phone, channel, state, error code, is a fallback) per delivery, in id order."""
    with kit.runtime.session() as s:
        found = s.execute(
            select(
                Contact.phone,
                Delivery.channel,
                Delivery.state,
                Delivery.error_code,
                Delivery.fallback_of,
            )
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
            .order_by(Delivery.id)
        ).all()
    return [(p, ch, st, code, fb is not None) for p, ch, st, code, fb in found]


def send_queued(kit: Kit) -> dict[str, int]:
    """What the scheduler tick does for queued work without a batch, then the send."""
    with kit.runtime.session() as s:
        batches = scheduling.assign_batches(s, utcnow(), batch_size=100)
    out: dict[str, int] = {}
    for batch in batches:
        for key, n in kit.send(batch.campaign_id, [batch.token]).items():
            out[key] = out.get(key, 0) + n
    return out


def sid_of(kit: Kit, to: str) -> str:
    [sid] = [m["sid"] for m in kit.core.messages if m["to"] == to]
    return str(sid)


def campaign_state(kit: Kit, campaign_id: int) -> str:
    with kit.runtime.session() as s:
        return str(s.get_one(Campaign, campaign_id).state)


def test_whatsapp_failing_in_a_callback_is_followed_by_one_sms(kit: Kit) -> None:
    campaign_id, tokens = kit.launch("village", channel="preferred")
    assert kit.send(campaign_id, tokens) == {"sent": 3}
    # each on their own channel
    assert kit.core.accepted_by_to() == {
        f"whatsapp:{ON_WHATSAPP}": 1,
        f"whatsapp:{NO_WHATSAPP}": 1,
        SMS_ONLY: 1,
    }
    assert campaign_state(kit, campaign_id) == "completed"

    # WhatsApp reports it cannot find the person: a signed callback, as Twilio sends it
    failed_sid = sid_of(kit, f"whatsapp:{NO_WHATSAPP}")
    assert kit.core.send_callback(failed_sid, "failed", 63003) == 204
    assert campaign_state(kit, campaign_id) == "sending"  # reopened for the fallback
    assert send_queued(kit) == {"sent": 1}
    assert kit.core.accepted_by_to()[NO_WHATSAPP] == 1
    # the SMS carries the same text
    bodies = {m["to"]: m["body"] for m in kit.core.messages}
    assert bodies[NO_WHATSAPP] == bodies[f"whatsapp:{NO_WHATSAPP}"]
    assert kit.core.send_callback(sid_of(kit, NO_WHATSAPP), "delivered") == 204
    for sid in (sid_of(kit, f"whatsapp:{ON_WHATSAPP}"), sid_of(kit, SMS_ONLY)):
        kit.core.send_callback(sid, "delivered")

    # the same failure reported again, late, or as undelivered: still only one SMS
    assert kit.core.send_callback(failed_sid, "failed", 63003) == 204
    assert kit.core.send_callback(failed_sid, "undelivered", 63016) == 204
    assert send_queued(kit) == {}
    assert rows(kit, campaign_id) == [
        (ON_WHATSAPP, "whatsapp", "delivered", None, False),
        (NO_WHATSAPP, "whatsapp", "failed", 63003, False),
        (SMS_ONLY, "sms", "delivered", None, False),
        (NO_WHATSAPP, "sms", "delivered", None, True),
    ]
    with kit.runtime.session() as s:
        campaigns.complete_if_done(s, campaign_id)
    assert campaign_state(kit, campaign_id) == "completed"


def test_whatsapp_refused_when_sent_falls_back_at_once(kit: Kit) -> None:
    kit.core.force_error(f"whatsapp:{NO_WHATSAPP}", 400, 63003)
    campaign_id, tokens = kit.launch("village", channel="whatsapp")
    # the refusal only holds on WhatsApp: the fallback goes in the same round
    assert kit.send(campaign_id, tokens) == {"sent": 2, "failed": 1}
    assert send_queued(kit) == {"sent": 1}
    assert kit.core.accepted_by_to() == {
        f"whatsapp:{ON_WHATSAPP}": 1,
        f"whatsapp:{SMS_ONLY}": 1,
        NO_WHATSAPP: 1,
    }
    assert (NO_WHATSAPP, "sms", "sent", None, True) in rows(kit, campaign_id)


def test_whatsapp_out_of_retries_falls_back_and_retry_failed_does_not_resend_it(
    kit: Kit,
) -> None:
    kit.core.force_error(f"whatsapp:{NO_WHATSAPP}", 503, 20503)
    campaign_id, tokens = kit.launch("village", channel="preferred")
    kit.send(campaign_id, tokens)
    for _ in range(20):  # the retries (each after its tiny backoff), then the fallback
        time.sleep(0.01)
        if not send_queued(kit) and not any(
            st == "queued" for *_, st, _c, _f in rows(kit, campaign_id)
        ):
            break
    found = rows(kit, campaign_id)
    assert (NO_WHATSAPP, "whatsapp", "failed", 20503, False) in found
    assert (NO_WHATSAPP, "sms", "sent", None, True) in found
    kit.core.clear_forced()
    with kit.runtime.session() as s:
        # the WhatsApp failure is retryable, but an SMS already replaced it
        assert campaigns.retry_failed(s, campaign_id) == 0
    assert kit.core.accepted_by_to()[NO_WHATSAPP] == 1


def test_no_fallback_for_sms_or_for_an_opted_out_person(kit: Kit) -> None:
    kit.core.force_error(f"whatsapp:{ON_WHATSAPP}", 400, 21610)  # unsubscribed on WhatsApp
    campaign_id, tokens = kit.launch("village", channel="preferred")
    assert kit.send(campaign_id, tokens) == {"sent": 2, "failed": 1}
    # an SMS failure is final: SMS has nothing to fall back to
    assert kit.core.send_callback(sid_of(kit, SMS_ONLY), "undelivered", 30003) == 204
    assert send_queued(kit) == {}
    assert not any(fallback for *_, fallback in rows(kit, campaign_id))
    with kit.runtime.session() as s:
        opted = s.scalar(select(Contact.status).where(Contact.phone == ON_WHATSAPP))
    assert opted == "opted_out"
    assert set(kit.core.accepted_by_to()) == {f"whatsapp:{NO_WHATSAPP}", SMS_ONLY}


def test_no_fallback_once_the_campaign_is_cancelled(kit: Kit) -> None:
    kit.core.force_error(SMS_ONLY, 503, 20503)  # keeps the campaign sending, with a retry
    campaign_id, tokens = kit.launch("village", channel="preferred")
    assert kit.send(campaign_id, tokens) == {"sent": 2, "retry": 1}
    with kit.runtime.session() as s:
        campaigns.cancel(s, campaign_id)
    # WhatsApp fails after the official cancelled the campaign
    assert kit.core.send_callback(sid_of(kit, f"whatsapp:{NO_WHATSAPP}"), "failed", 63003) == 204
    assert send_queued(kit) == {}
    assert not any(fallback for *_, fallback in rows(kit, campaign_id))
    assert kit.core.accepted_by_to() == {
        f"whatsapp:{ON_WHATSAPP}": 1,
        f"whatsapp:{NO_WHATSAPP}": 1,
    }
