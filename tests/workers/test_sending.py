"""Sending, without Celery: the plain functions a send task calls, on both databases, with
the in-process simulator as provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.models import Contact, Delivery
from tests import factories
from tests.workers.harness import Harness, harness
from tests.workers.wiring import ACCOUNT
from workers.pipeline import tick
from workers.providers.simulator.provider import SimulatorProvider
from workers.sending import Outcome, send_batch


@pytest.fixture(params=["sqlite", "postgresql"])
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with harness(request.param, str(tmp_path)) as made:
        yield made


A, B, C = factories.lao_number(1), factories.lao_number(2), factories.lao_number(3)


def test_every_queued_delivery_sent_once(h: Harness) -> None:
    cid, tokens = h.audience([A, B, C])
    assert h.send(cid, tokens) == {"sent": 3}
    assert h.core.accepted_by_to() == {A: 1, B: 1, C: 1}
    # the same batch again (a redelivered task) sends nothing
    assert h.send(cid, tokens) == {}
    assert h.core.accepted_count == 3
    assert {s for s, _ in h.states(cid).values()} == {"sent"}


def test_opt_out_after_fan_out_is_respected_at_send_time(h: Harness) -> None:
    cid, tokens = h.audience([A, B])
    with h.runtime.session() as s:
        contacts.opt_out(s, contacts.find_by_phone(s, B, "LA", factories.SYSTEM), source="keyword")
    h.send(cid, tokens)
    assert h.core.accepted_by_to() == {A: 1}
    assert h.states(cid)[B] == ("skipped", "opted_out")


def test_retryable_error_waits_in_the_database_then_goes(h: Harness) -> None:
    cid, tokens = h.audience([A])
    h.core.force_error(A, 429, 20429, times=1)
    assert h.send(cid, tokens) == {"retry": 1}
    with h.runtime.session() as s:
        d = s.scalars(select(Delivery)).one()
        assert (d.state, d.batch, d.attempts, d.error_code) == ("queued", None, 1, 20429)
        assert d.next_attempt_at is not None and d.next_attempt_at > d.sending_at
    # the scheduler tick hands it a new batch once it is due, and it is sent
    with h.runtime.session() as s:
        s.execute(
            Delivery.__table__.update().values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    report = tick(h.ctx)
    assert report.batches == 1
    (name, (token, campaign_id, priority), queue) = h.enqueued[-1]
    assert (name, queue) == ("riskcast.send_batch", "bulk")
    send_batch(h.ctx, token, campaign_id, priority)
    assert h.core.accepted_by_to() == {A: 1}
    assert h.states(cid)[A] == ("sent", None)


def test_retries_run_out_and_retry_failed_brings_them_back(h: Harness) -> None:
    cid, tokens = h.audience([A, "+15005550001"])  # the second is Twilio's invalid-number
    h.core.force_error(A, 503, 20503)
    h.send(cid, tokens)
    for _ in range(6):
        with h.runtime.session() as s:
            s.execute(Delivery.__table__.update().values(next_attempt_at=None))
        tick(h.ctx)
        for name, (token, campaign_id, priority), _q in h.enqueued:
            if name == "riskcast.send_batch":
                send_batch(h.ctx, token, campaign_id, priority)
        h.enqueued.clear()
    states = h.states(cid)
    assert states[A] == ("failed", "retries_exhausted")
    assert states["+15005550001"] == ("failed", None)  # permanent: 21211
    tick(h.ctx)
    with h.runtime.session() as s:
        assert campaigns.get(s, cid).state == "completed"
    h.core.clear_forced(A)
    with h.runtime.session() as s:
        assert campaigns.retry_failed(s, cid) == 1  # only the one a retry can fix
    tick(h.ctx)
    for _name, (token, campaign_id, priority), _q in h.enqueued:
        send_batch(h.ctx, token, campaign_id, priority)
    assert h.states(cid)[A] == ("sent", None)
    assert h.core.accepted_by_to() == {A: 1}


def test_permanent_21610_fails_and_opts_the_contact_out(h: Harness) -> None:
    cid, tokens = h.audience(["+15005550004"])
    assert h.send(cid, tokens) == {"failed": 1}
    with h.runtime.session() as s:
        row = s.execute(
            select(
                Delivery.state, Delivery.error_code, Contact.status, Contact.opted_out_source
            ).join(Contact, Contact.id == Delivery.contact_id)
        ).one()
    assert tuple(row) == ("failed", 21610, "opted_out", "provider")


def test_configuration_error_stops_the_campaign_instead_of_retrying(h: Harness) -> None:
    cid, tokens = h.audience([A, B, C])
    h.ctx = replace(
        h.ctx,
        provider=SimulatorProvider(
            h.core, account_sid=ACCOUNT, auth_token="wrong", from_number="+15005550006"
        ),
    )
    assert h.send(cid, tokens) == {"stop": 1}
    assert h.core.accepted_count == 0 and h.core.requests_count == 1
    with h.runtime.session() as s:
        camp = campaigns.get(s, cid)
        assert camp.state == "stopped" and "20003" in (camp.error or "")
    assert {st for st, _ in h.states(cid).values()} == {"queued"}


def test_paused_campaign_sends_nothing_until_resumed(h: Harness) -> None:
    cid, tokens = h.audience([A, B])
    with h.runtime.session() as s:
        campaigns.pause(s, cid)
    assert h.send(cid, tokens) == {"not_mine": 2}
    assert h.core.accepted_count == 0
    with h.runtime.session() as s:
        campaigns.resume(s, cid)
    tick(h.ctx)
    for _name, (token, campaign_id, priority), _q in h.enqueued:
        send_batch(h.ctx, token, campaign_id, priority)
    assert h.core.accepted_by_to() == {A: 1, B: 1}


def test_cancel_mid_campaign_skips_the_rest(h: Harness) -> None:
    cid, tokens = h.audience([A, B])
    with h.runtime.session() as s:
        campaigns.cancel(s, cid)
    h.send(cid, tokens)
    assert h.core.accepted_count == 0
    assert h.states(cid) == {A: ("skipped", "cancelled"), B: ("skipped", "cancelled")}


def _quiet_now() -> tuple[int, int]:
    hour = datetime.now(ZoneInfo("Asia/Vientiane")).hour
    return hour, (hour + 2) % 24


def test_quiet_hours_hold_deliveries_and_release_them_after(h: Harness) -> None:
    cid, tokens = h.audience([A], quiet_hours=_quiet_now())
    assert tokens == [] and h.states(cid)[A] == ("pending", None)
    with h.runtime.session() as s:
        assert scheduling.release_quiet(s, utcnow()) == 0  # still quiet
        assert scheduling.release_quiet(s, utcnow() + timedelta(hours=3)) == 1
    assert h.states(cid)[A] == ("queued", None)


def test_quiet_hours_past_validity_expire(h: Harness) -> None:
    cid, _ = h.audience([A], quiet_hours=_quiet_now(), valid_until=utcnow() + timedelta(hours=1))
    with h.runtime.session() as s:
        scheduling.release_quiet(s, utcnow() + timedelta(hours=1, minutes=1))
    assert h.states(cid)[A] == ("skipped", "quiet_hours_expired")
    assert h.core.accepted_count == 0


def test_outcomes_enum_is_what_reports_use() -> None:
    assert Outcome.SENT.value == "sent"


def test_a_campaign_rate_spaces_its_sends(h: Harness) -> None:
    phones = [factories.lao_number(10 + n) for n in range(6)]
    cid, tokens = h.audience(phones, send_rate=25.0)
    started = time.monotonic()
    assert h.send(cid, tokens) == {"sent": 6}
    # six sends at 25/s need at least five gaps of 40 ms, though the fleet allows 10,000/s
    assert time.monotonic() - started >= 0.2


def _two_zone_contact(h: Harness, own_zone: str | None = None) -> tuple[int, list[str]]:
    """A contact in Vientiane's community (first by id, quiet now) and in a Lima one (12 h
    behind, not quiet now), sent a campaign to both with quiet hours now in Vientiane."""
    with h.runtime.session() as s:
        factories.community(s, "village", timezone="Asia/Vientiane")
        factories.community(s, "lima", timezone="America/Lima")
        person = factories.contact(s, A, community_slugs=("village", "lima"), language="lo")
        person.timezone = own_zone
        camp = factories.campaign(s, ["village", "lima"], quiet_hours=_quiet_now())
        campaigns.schedule(s, camp.id)
        scheduling.claim_due(s, utcnow())
        return camp.id, fanout_page(s, camp.id, page_size=1000, batch_size=100).batches


def _rounds(h: Harness, n: int) -> list[tuple[str, int, datetime]]:
    """``n`` scheduler ticks, each followed by the sends it enqueued: the delivery after each."""
    seen = []
    for _ in range(n):
        tick(h.ctx)
        for name, (token, campaign_id, priority), _q in h.enqueued:
            if name == "riskcast.send_batch":
                send_batch(h.ctx, token, campaign_id, priority)
        h.enqueued.clear()
        with h.runtime.session() as s:
            d = s.scalars(select(Delivery)).one()
            seen.append((d.state, d.attempts, d.updated_at))
    return seen


def test_a_contact_in_two_zones_waits_for_its_first_communitys_quiet_hours(h: Harness) -> None:
    """The release and the send read one zone (the first community's): the delivery stays
    pending, untouched, across rounds instead of cycling pending -> queued -> sending."""
    cid, tokens = _two_zone_contact(h)
    assert tokens == [] and h.states(cid)[A] == ("pending", None)
    seen = _rounds(h, 4)
    assert len(set(seen)) == 1 and seen[0][:2] == ("pending", 0)
    assert h.core.accepted_count == 0
    with h.runtime.session() as s:
        # when quiet hours end in Vientiane it is released
        assert scheduling.release_quiet(s, utcnow() + timedelta(hours=1)) == 0
        assert scheduling.release_quiet(s, utcnow() + timedelta(hours=3)) == 1
    assert h.states(cid)[A] == ("queued", None)


def test_a_contacts_own_zone_comes_before_its_communities(h: Harness) -> None:
    """Quiet in both communities' first zone, but the contact lives by Lima's clock: sent."""
    cid, tokens = _two_zone_contact(h, own_zone="America/Lima")
    assert h.send(cid, tokens) == {"sent": 1}
    assert h.states(cid)[A] == ("sent", None)
    assert h.core.accepted_by_to() == {A: 1}
