"""Deliveries in doubt, without Celery: the reconciler asks the provider before any resend.

Plain functions on both databases, with the in-process simulator (Twilio's timing: no
callback for the initial status, ``sent`` only when its queue releases the message) as the
provider. A "request that left" is made by sending through the provider after the claim
and not recording the answer, exactly what a worker killed in the in-doubt window leaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.contacts import privacy
from broadcaster.db import utcnow
from broadcaster.deliveries import in_doubt
from broadcaster.deliveries import service as deliveries
from broadcaster.models import Campaign, Contact, Delivery
from tests import factories
from tests.services import migrated_database
from tests.workers.harness import Harness
from workers.pipeline import reconcile, tick
from workers.providers.base import Lookup, OutboundMessage, ProviderMessage, collect_lookup
from workers.ratelimit import MemoryRateLimiter
from workers.sending import FENCE_AFTER, Outcome, prepare, record_sent, send_batch, send_one
from workers.settling import match, settle_in_doubt

A, B, C, D = (factories.lao_number(n) for n in (1, 2, 3, 4))
IN_DOUBT_AFTER = 30.0


class SettleHarness(Harness):
    """Twilio's timing: an accepted message stays queued, with no callback, for an hour."""

    def __init__(self, url: str) -> None:
        super().__init__(
            url,
            core={"queue_delay": 3600},
            sending_timeout=IN_DOUBT_AFTER,
            twilio_timeout=5,
            reconcile_interval=1,
            lookup_skew=5,
        )

    def launch(self, phones: list[str], **campaign: Any) -> int:
        """A fanned-out campaign whose deliveries no send task holds yet (the scheduler
        tick hands out batches); made twice, the second reuses the first's people."""
        with self.runtime.session() as s:
            if s.scalar(select(Contact.id).limit(1)) is None:
                factories.community(s, "village", timezone="Asia/Vientiane")
                for p in phones:
                    factories.contact(s, p, community_slugs=("village",), language="lo")
            camp = factories.campaign(s, ["village"], **campaign)
            campaigns.schedule(s, camp.id)
            scheduling.claim_due(s, utcnow())
            fanout_page(s, camp.id, page_size=1000, batch_size=100)
            s.execute(update(Delivery).values(batch=None))
            return camp.id

    def delivery(self, campaign_id: int, phone: str) -> Delivery:
        with self.runtime.session() as s:
            return s.scalars(
                select(Delivery)
                .join(Contact, Contact.id == Delivery.contact_id)
                .where(Delivery.campaign_id == campaign_id, Contact.phone == phone)
            ).one()

    def claim(self, campaign_id: int, phone: str, *, request_leaves: bool) -> int:
        """A worker claims the delivery and dies: after its request reached the provider
        (``request_leaves``) or before. The claim is then older than the in-doubt age."""
        delivery_id = self.delivery(campaign_id, phone).id
        with self.runtime.session() as s:
            prepared = prepare(self.ctx, s, delivery_id)
        assert not isinstance(prepared, Outcome)
        if request_leaves:
            self.ctx.provider.send(prepared.message)
        self.age(delivery_id, IN_DOUBT_AFTER + 10)
        return delivery_id

    def age(self, delivery_id: int, seconds: float) -> None:
        """Make the claim ``seconds`` old."""
        with self.runtime.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(sending_at=utcnow() - timedelta(seconds=seconds))
            )

    def send_what_is_queued(self) -> None:
        tick(self.ctx)
        for name, (token, campaign_id, priority), _queue in self.enqueued:
            if name == "riskcast.send_batch":
                send_batch(self.ctx, token, campaign_id, priority)
        self.enqueued.clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SettleHarness]:
    with migrated_database(request.param, str(tmp_path)) as (url, _engine):
        made = SettleHarness(url)
        yield made
        made.core.stop(drain=False)
        made.runtime.dispose()


def state(h: SettleHarness, delivery_id: int) -> tuple[Any, ...]:
    with h.runtime.session() as s:
        d = s.get_one(Delivery, delivery_id)
        return d.state, d.provider_sid, d.reason, d.lookups, d.lookup_note


def test_accepted_before_the_worker_died_is_found_and_never_sent_again(h: SettleHarness) -> None:
    cid = h.launch([A, B])
    lost = h.claim(cid, A, request_leaves=True)
    assert h.core.accepted_by_to() == {A: 1}
    # Twilio has it queued: no callback came, and none will for an hour.
    report = reconcile(h.ctx)
    assert report.in_doubt.found == 1 and report.in_doubt.requeued == 0
    (sid,) = [m["sid"] for m in h.core.messages]
    st, recorded_sid, _reason, lookups, note = state(h, lost)
    assert (st, recorded_sid, lookups) == ("sent", sid, 1)
    assert note is not None and sid in note
    h.send_what_is_queued()  # B goes; A is not sent again
    assert h.core.accepted_by_to() == {A: 1, B: 1}
    with h.runtime.session() as s:
        assert campaigns.status(s, cid)["counts"]["sent"] == 2


def test_never_left_is_queued_again_and_sent_once(h: SettleHarness) -> None:
    cid = h.launch([A])
    lost = h.claim(cid, A, request_leaves=False)
    report = reconcile(h.ctx)
    assert (report.in_doubt.found, report.in_doubt.requeued) == (0, 1)
    assert state(h, lost)[0] == "queued"
    h.send_what_is_queued()
    assert h.core.accepted_by_to() == {A: 1}
    assert state(h, lost)[:2] == ("sent", h.core.messages[0]["sid"])


def test_a_claim_younger_than_the_in_doubt_age_is_not_looked_up(h: SettleHarness) -> None:
    cid = h.launch([A])
    delivery_id = h.delivery(cid, A).id
    with h.runtime.session() as s:
        assert not isinstance(prepare(h.ctx, s, delivery_id), Outcome)
    h.age(delivery_id, IN_DOUBT_AFTER - 5)  # the request could still be on its way
    assert not reconcile(h.ctx).in_doubt.requests
    assert state(h, delivery_id)[0] == "sending"


def test_read_api_down_keeps_it_in_doubt_then_settles_when_it_answers(h: SettleHarness) -> None:
    cid = h.launch([A, B])
    lost_a = h.claim(cid, A, request_leaves=True)
    lost_b = h.claim(cid, B, request_leaves=False)
    h.core.configure(read_error_rates={500: 1.0})
    for _ in range(3):
        report = settle_in_doubt(h.ctx)
        h.send_what_is_queued()
    # asked once each: the doubling wait holds them back on the next runs
    assert h.core.stats()["reads_refused"] == {"500": 2}
    assert report.unresolved == 0
    assert h.core.accepted_by_to() == {A: 1}  # B, never accepted, is not sent blindly either
    for lost in (lost_a, lost_b):
        st, sid, _reason, lookups, note = state(h, lost)
        assert (st, sid, lookups) == ("sending", None, 1)
        assert "did not answer" in note and "500" in note
    with h.runtime.session() as s:
        summary = in_doubt.summary(s, h.ctx.settings.in_doubt_after)
    assert summary.count == 2 and summary.oldest_seconds >= IN_DOUBT_AFTER
    assert "500" in (summary.last_note or "")
    # the wait is over and the provider answers again
    h.core.configure(read_error_rates={})
    with h.runtime.session() as s:
        s.execute(update(Delivery).values(looked_up_at=utcnow() - timedelta(minutes=5)))
    report = settle_in_doubt(h.ctx)
    assert (report.found, report.requeued) == (1, 1)
    h.send_what_is_queued()
    assert h.core.accepted_by_to() == {A: 1, B: 1}
    assert state(h, lost_a)[0] == state(h, lost_b)[0] == "sent"


def test_429_on_reads_ends_the_run(h: SettleHarness) -> None:
    cid = h.launch([A, B, C])
    for phone in (A, B, C):
        h.claim(cid, phone, request_leaves=True)
    h.core.configure(read_error_rates={429: 1.0})
    report = settle_in_doubt(h.ctx)
    assert report.rate_limited and report.requests == 1 and report.unresolved == 1
    assert h.core.stats()["reads"] == 1
    assert h.core.accepted_count == 3


def test_same_text_twice_to_one_person_takes_one_message_each(h: SettleHarness) -> None:
    """Two campaigns with the same text, both sends to A in doubt, one of which reached the
    provider: one is found, the other (provably absent) goes once."""
    first = h.launch([A])
    second = h.launch([A])
    d1 = h.claim(first, A, request_leaves=True)
    d2 = h.claim(second, A, request_leaves=False)
    report = settle_in_doubt(h.ctx)
    assert (report.found, report.requeued) == (1, 1)
    assert {state(h, d1)[0], state(h, d2)[0]} == {"sent", "queued"}
    h.send_what_is_queued()
    assert h.core.accepted_by_to() == {A: 2}  # one message per campaign, as promised


def test_unanswered_past_valid_until_fails_unconfirmed_and_is_never_retried(
    h: SettleHarness,
) -> None:
    cid = h.launch([A], valid_until=utcnow() + timedelta(hours=1))
    lost = h.claim(cid, A, request_leaves=True)
    with h.runtime.session() as s:  # its validity ended while it was in doubt
        s.execute(update(Campaign).where(Campaign.id == cid).values(valid_until=utcnow()))
    h.core.configure(read_error_rates={503: 1.0})
    report = settle_in_doubt(h.ctx)
    assert report.given_up == 1
    st, _sid, reason, _lookups, note = state(h, lost)
    assert (st, reason) == ("failed", "unconfirmed")
    assert "gave up" in note
    with h.runtime.session() as s:
        assert campaigns.retry_failed(s, cid) == 0
    h.send_what_is_queued()
    assert h.core.accepted_by_to() == {A: 1}


def test_erased_person_in_doubt_is_skipped_not_looked_up(h: SettleHarness) -> None:
    cid = h.launch([A])
    lost = h.claim(cid, A, request_leaves=True)
    with h.runtime.session() as s:
        privacy.erase_contact(s, s.scalars(select(Contact)).one())
    report = settle_in_doubt(h.ctx)
    assert report.skipped == 1 and report.requests == 0
    assert state(h, lost)[:3] == ("skipped", None, "opted_out")


def test_absent_in_a_cancelled_campaign_is_skipped(h: SettleHarness) -> None:
    cid = h.launch([A, B])
    lost = h.claim(cid, A, request_leaves=False)
    with h.runtime.session() as s:
        campaigns.cancel(s, cid)
    settle_in_doubt(h.ctx)
    assert state(h, lost)[:3] == ("skipped", None, "cancelled")
    with h.runtime.session() as s:
        assert campaigns.status(s, cid)["counts"]["sending"] == 0


def test_a_callback_that_arrives_first_wins(h: SettleHarness) -> None:
    cid = h.launch([A])
    lost = h.claim(cid, A, request_leaves=True)
    sid = h.core.messages[0]["sid"]
    with h.runtime.session() as s:
        deliveries.apply_provider_status(s, delivery_id=lost, sid=sid, status="delivered")
    report = settle_in_doubt(h.ctx)
    assert report.requests == 0
    assert state(h, lost)[:2] == ("delivered", sid)


def test_a_send_that_waited_long_for_the_limiter_gives_way_to_the_reconciler(
    h: SettleHarness,
) -> None:
    """The worker is alive but its rate-limiter wait outlasted the in-doubt age: the
    reconciler found nothing and queued it again. The worker re-confirms its claim before
    its request leaves, and does not send."""
    cid = h.launch([A])
    delivery_id = h.delivery(cid, A).id
    slow = MemoryRateLimiter(1.0)
    slow.reserve(2)  # the next slot is two seconds away
    h.ctx.limiter = slow

    settled: list[Any] = []

    def reconciler() -> None:  # in the scheduler process, with a limiter of its own
        time.sleep(0.3)
        h.age(delivery_id, IN_DOUBT_AFTER + 10)
        settled.append(settle_in_doubt(replace(h.ctx, limiter=MemoryRateLimiter(10_000))))

    thread = threading.Thread(target=reconciler)
    thread.start()
    started = time.monotonic()
    outcome = send_one(h.ctx, delivery_id, cid)
    thread.join()
    assert outcome is Outcome.NOT_MINE, settled
    assert settled[0].requeued == 1, settled
    assert time.monotonic() - started > FENCE_AFTER
    assert h.core.accepted_count == 0
    assert state(h, delivery_id)[0] == "queued"


# -- the pure parts ----------------------------------------------------------------------


def message(
    sid: str, body: str, minutes_ago: float, sender: str = "+15005550006"
) -> ProviderMessage:
    return ProviderMessage(
        sid=sid,
        to=A,
        sender=sender,
        messaging_service_sid=None,
        body=body,
        status="queued",
        error_code=None,
        created_at=utcnow() - timedelta(minutes=minutes_ago),
    )


def test_match_takes_the_oldest_unclaimed_message_with_the_same_body() -> None:
    found = Lookup(
        (message("SM3", "hello", 1), message("SM2", "other", 2), message("SM1", "hello", 3)),
        complete=True,
        requests=1,
    )
    assert match(found, "hello", set()).sid == "SM1"  # type: ignore[union-attr]
    assert match(found, "hello", {"SM1"}).sid == "SM3"  # type: ignore[union-attr]
    assert match(found, "hello", {"SM1", "SM3"}) is None
    assert match(found, "bye", set()) is None


def test_collect_lookup_proves_absence_only_with_the_whole_list_in_one_answer() -> None:
    since = utcnow() - timedelta(minutes=10)
    requested: list[int] = []

    def pages(n: int) -> Iterator[list[ProviderMessage]]:
        for page in range(n):
            requested.append(page)
            yield [message(f"SM{page}{i}", "x", page * 6 + i) for i in range(3)]

    one = collect_lookup(pages(1), since, lambda m: True)
    assert one.complete and one.requests == 1
    assert [m.sid for m in one.messages] == ["SM00", "SM01", "SM02"]
    # over two pages a message could move between them: found ones count, absence is not
    # proven; and the list is read to its end whatever its order (no early stop on dates)
    requested.clear()
    two = collect_lookup(pages(2), since, lambda m: True)
    assert not two.complete and two.requests == 2 and requested == [0, 1]
    assert {m.sid for m in two.messages} == {"SM00", "SM01", "SM02", "SM10", "SM11", "SM12"}
    capped = collect_lookup(pages(10), since, lambda m: True, max_pages=3)
    assert not capped.complete and capped.requests == 3
    mine = collect_lookup(pages(1), since, lambda m: m.sid.endswith("1"))
    assert [m.sid for m in mine.messages] == ["SM01"]


def settled_then_claimed(h: SettleHarness, delivery_id: int, claims: list[Any]) -> None:
    """While a worker waits: its claim ages past the in-doubt age, the reconciler (with a
    limiter of its own) puts the delivery back, and another worker claims it."""
    time.sleep(0.3)
    h.age(delivery_id, IN_DOUBT_AFTER + 10)
    fast = replace(h.ctx, limiter=MemoryRateLimiter(10_000))
    settle_in_doubt(fast)
    with h.runtime.session() as s:
        claims.append(prepare(fast, s, delivery_id))


def test_a_long_wait_never_sends_a_delivery_another_worker_claimed_since(
    h: SettleHarness,
) -> None:
    """As above, and another worker has claimed the delivery again by the time the first
    one's wait ends: the first one's claim is not that one, and it does not send."""
    cid = h.launch([A])
    delivery_id = h.delivery(cid, A).id
    slow = MemoryRateLimiter(1.0)
    slow.reserve(2)
    h.ctx.limiter = slow
    claims: list[Any] = []

    thread = threading.Thread(target=settled_then_claimed, args=(h, delivery_id, claims))
    thread.start()
    outcome = send_one(h.ctx, delivery_id, cid)
    thread.join()
    assert not isinstance(claims[0], Outcome)  # the second worker holds it now
    assert outcome is Outcome.NOT_MINE
    assert h.core.accepted_count == 0
    assert state(h, delivery_id)[0] == "sending"


def test_a_late_answer_for_a_delivery_put_back_takes_it_out_of_the_queue(
    h: SettleHarness,
) -> None:
    """The reconciler proved absence and queued the delivery again; then the first
    request's answer arrives after all (or its callback). The provider has it: it is
    recorded as sent, never batched or sent again, and the campaign completes."""
    cid = h.launch([A])
    lost = h.claim(cid, A, request_leaves=False)
    assert settle_in_doubt(h.ctx).requeued == 1
    with h.runtime.session() as s:
        record_sent(s, lost, "SMlate", "queued")
    assert state(h, lost)[:2] == ("sent", "SMlate")
    h.send_what_is_queued()
    assert h.core.accepted_count == 0
    with h.runtime.session() as s:
        assert scheduling.assign_batches(s, utcnow(), batch_size=100) == []
        assert campaigns.status(s, cid)["state"] == "completed"


def test_unclaimed_message_with_another_text_is_not_proof_of_absence(h: SettleHarness) -> None:
    """The provider holds a message of ours to this person, since the send, that no
    delivery has, with a different text (Twilio shortened a link, say): not resent."""
    cid = h.launch([A])
    lost = h.claim(cid, A, request_leaves=False)
    h.ctx.provider.send(OutboundMessage(999, A, "the same message, its link shortened"))
    report = settle_in_doubt(h.ctx)
    assert (report.requeued, report.unresolved) == (0, 1)
    st, _sid, _reason, _lookups, note = state(h, lost)
    assert st == "sending" and "another text" in note
    assert h.core.accepted_count == 1


def test_a_run_stops_after_three_unanswered_lookups(h: SettleHarness) -> None:
    cid = h.launch([A, B, C, D])
    for phone in (A, B, C, D):
        h.claim(cid, phone, request_leaves=False)
    h.core.configure(read_error_rates={500: 1.0})
    report = settle_in_doubt(h.ctx)
    assert report.unresolved == 3 and report.requests == 3
    assert report.cut_short == "3 lookups in a row unanswered"


class FailingLimiter(MemoryRateLimiter):
    """Waits, then fails: Redis went away while the worker waited for its slot."""

    def acquire(self, cost: int = 1, also: Any = ()) -> float:
        time.sleep(1.5)
        raise ConnectionError("Redis went away")


def test_a_worker_whose_wait_failed_does_not_hand_back_another_workers_claim(
    h: SettleHarness,
) -> None:
    cid = h.launch([A])
    delivery_id = h.delivery(cid, A).id
    h.ctx.limiter = FailingLimiter(1.0)
    claims: list[Any] = []

    thread = threading.Thread(target=settled_then_claimed, args=(h, delivery_id, claims))
    thread.start()
    with pytest.raises(ConnectionError):
        send_one(h.ctx, delivery_id, cid)
    thread.join()
    second = claims[0]
    assert not isinstance(second, Outcome)
    # still the second worker's claim, which it goes on to send: once
    assert state(h, delivery_id)[0] == "sending"
    with h.runtime.session() as s:
        assert s.get_one(Delivery, delivery_id).sending_at == second.claimed_at
