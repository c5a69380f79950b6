"""The promise under real faults: exactly one provider request per recipient, nothing lost.

Real worker and scheduler processes on real Redis and PostgreSQL, the HTTP simulator spoken
to by the real twilio SDK, with Twilio's timing: no callback for the initial status, ``sent``
only when its queue releases the message (after the in-doubt age here, so a send cut short
is settled by asking the read API, not by a callback), and the answer leaving after the
message is stored. Faults are real: kill -9, FLUSHALL, a Redis restart, a PostgreSQL
restart, 429/500 storms, a STOP arriving mid-campaign. Every service is restored after its
test. The counts each test measured are printed (pytest -s shows them).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from broadcaster.db import utcnow
from broadcaster.models import Contact, Delivery, Membership
from tests.stack import (
    Stack,
    launch_campaign,
    restart_postgresql,
    restart_redis,
    seed_audience,
    wait_for,
)

pytestmark = [pytest.mark.pipeline, pytest.mark.fault]

FAST_RECOVERY = {
    "RISKCAST_LEASE_TTL": "3",
    "RISKCAST_VISIBILITY_TIMEOUT": "10",
    "RISKCAST_RECONCILE_INTERVAL": "1",
    "RISKCAST_SENDING_TIMEOUT": "8",
    "RISKCAST_TWILIO_TIMEOUT": "2",  # in doubt after max(8, 2 x 2 + 3) = 8 s
    "RISKCAST_RETRY_BASE": "0.3",
    "RISKCAST_CONFIRM_AFTER": "10",
    "RISKCAST_LOOKUP_RATE": "50",
}
# Twilio's queue releases a message (its first callback, "sent") after the in-doubt age.
TWILIO_TIMING = {"queue_delay": 10.0, "answer_delay": 0.02}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, db="postgresql", env=FAST_RECOVERY, sim=TWILIO_TIMING)
    try:
        yield s
    except BaseException:
        print(s.dump_logs())
        raise
    finally:
        s.stop()


def exactly_once(stack: Stack, phones: list[str]) -> None:
    counts = stack.core.accepted_by_to()
    missing = [p for p in phones if counts.get(p, 0) == 0]
    twice = {p: n for p, n in counts.items() if n > 1}
    print(
        f"accepted {sum(counts.values())} for {len(phones)} recipients; lost {len(missing)}; duplicates {len(twice)}"
    )
    assert not missing, f"{len(missing)} recipients got nothing"
    assert not twice, f"{len(twice)} recipients got more than one message"
    assert set(counts) == set(phones)


def accepted_at_least(stack: Stack, n: int, timeout: float = 120) -> None:
    wait_for(lambda: stack.core.accepted_count >= n, timeout, f"{n} messages accepted", 0.05)


def test_kill_9_three_times_during_5000(stack: Stack) -> None:
    phones = seed_audience(stack, 5000)
    workers = [stack.start_worker(), stack.start_worker()]
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    for kill in range(3):
        accepted_at_least(stack, 900 * (kill + 1))
        victim = workers.pop(0)
        stack.kill9(victim)
        print(f"kill -9 #{kill + 1} at {stack.core.accepted_count} accepted")
        workers.append(stack.start_worker())
    status = stack.wait_completed(campaign_id, timeout=240, delivered=5000)
    print("counts:", status["counts"])
    exactly_once(stack, phones)
    assert status["counts"]["delivered"] == 5000


def test_flushall_mid_campaign(stack: Stack) -> None:
    phones = seed_audience(stack, 2000)
    stack.start_worker()
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    accepted_at_least(stack, 500)
    stack.redis.flushall()
    print(f"FLUSHALL at {stack.core.accepted_count} accepted")
    status = stack.wait_completed(campaign_id, timeout=180, delivered=2000)
    print("counts:", status["counts"])
    exactly_once(stack, phones)


def test_redis_restart_mid_campaign(stack: Stack) -> None:
    phones = seed_audience(stack, 2000)
    stack.start_worker()
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    accepted_at_least(stack, 500)
    try:
        restart_redis()
    finally:
        # whatever happened, Redis is up again for the next test
        if subprocess.run(["redis-cli", "ping"], capture_output=True, check=False).returncode:
            restart_redis()
    print(f"Redis restarted at {stack.core.accepted_count} accepted")
    status = stack.wait_completed(campaign_id, timeout=180, delivered=2000)
    print("counts:", status["counts"])
    exactly_once(stack, phones)


def test_postgresql_restart_mid_campaign(stack: Stack) -> None:
    phones = seed_audience(stack, 2000)
    stack.start_worker()
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    accepted_at_least(stack, 500)
    restart_postgresql()
    print(f"PostgreSQL restarted at {stack.core.accepted_count} accepted")
    status = stack.wait_completed(campaign_id, timeout=180, delivered=2000)
    print("counts:", status["counts"])
    exactly_once(stack, phones)


MAGIC = {"+15005550001": 21211, "+15005550004": 21610, "+15005550009": 21614}


def test_429_and_500_storm(stack: Stack) -> None:
    phones = seed_audience(stack, 1500)
    with stack.runtime.session() as session:
        community_id = session.scalar(select(Membership.community_id).limit(1))
        now = utcnow()
        ids = (
            session.execute(
                insert(Contact).returning(Contact.id),
                [
                    {
                        "phone": p,
                        "country": "US",
                        "status": "active",
                        "channel": "sms",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for p in MAGIC
                ],
            )
            .scalars()
            .all()
        )
        session.execute(
            insert(Membership),
            [{"contact_id": i, "community_id": community_id, "created_at": now} for i in ids],
        )
    stack.core.configure(error_rates={429: 0.20, 500: 0.05})
    stack.env["RISKCAST_MAX_ATTEMPTS"] = "30"
    stack.start_worker()
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    status = stack.wait_completed(campaign_id, timeout=240)
    print(
        "counts:",
        status["counts"],
        "rejected by status:",
        dict(stack.core.rejected),
        "by code:",
        dict(stack.core.rejected_codes),
    )
    exactly_once_for = {p: n for p, n in stack.core.accepted_by_to().items() if p in phones}
    assert exactly_once_for == dict.fromkeys(phones, 1)
    assert status["counts"]["sent"] + status["counts"]["delivered"] == 1500
    # permanent codes were asked once and never retried
    for code in MAGIC.values():
        assert stack.core.rejected_codes[code] == 1, code
    assert stack.core.rejected[429] > 100 and stack.core.rejected[500] > 20
    with stack.runtime.session() as session:
        failed = dict(
            session.execute(
                select(Contact.phone, Delivery.error_code)
                .join(Delivery, Delivery.contact_id == Contact.id)
                .where(Delivery.state == "failed")
            ).all()
        )
        assert failed == MAGIC
        assert (
            session.scalar(select(Contact.status).where(Contact.phone == "+15005550004"))
            == "opted_out"
        )
        retried = session.execute(
            select(Delivery.attempts, Delivery.created_at, Delivery.sent_at).where(
                Delivery.attempts > 1, Delivery.state.in_(["sent", "delivered"])
            )
        ).all()
    # backed off: a retried message left no sooner than the first backoff after its creation
    assert len(retried) > 100
    assert all((sent - created).total_seconds() >= 0.15 for _, created, sent in retried)
    print(f"{len(retried)} deliveries retried; max attempts {max(a for a, _, _ in retried)}")


def test_stop_mid_campaign_stops_sending_to_that_person(stack: Stack) -> None:
    stack.env["RISKCAST_SEND_RATE"] = "100"
    phones = seed_audience(stack, 800)
    stack.start_worker()
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    accepted_at_least(stack, 50)
    quitter = phones[-1]
    status, _text = stack.core.inject_inbound(
        f"{stack.api.url}/webhooks/twilio/inbound", quitter, "+15005550006", "stop"
    )
    assert status == 200
    stopped_at = stack.core.accepted_count
    status_after = stack.wait_completed(campaign_id, timeout=120)
    print(f"STOP recorded at {stopped_at} accepted; counts: {status_after['counts']}")
    assert stack.core.accepted_by_to().get(quitter, 0) == 0
    with stack.runtime.session() as session:
        row = session.execute(
            select(Delivery.state, Delivery.reason)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Contact.phone == quitter)
        ).one()
    assert tuple(row) == ("skipped", "opted_out")
    exactly_once(stack, phones[:-1])


def test_two_schedulers_never_dispatch_twice(stack: Stack) -> None:
    everyone: list[str] = []
    campaign_ids = []
    for n in range(6):
        everyone += seed_audience(stack, 150, slug=f"village-{n}", first=n * 1000)
    stack.start_scheduler()
    stack.start_scheduler()
    stack.start_worker()
    stack.start_worker()
    time.sleep(1)
    for n in range(6):
        campaign_ids.append(
            launch_campaign(stack, f"village-{n}", priority="urgent" if n % 2 else "bulk")
        )
    for cid in campaign_ids:
        stack.wait_completed(cid, timeout=120)
    exactly_once(stack, everyone)
    with stack.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 900
