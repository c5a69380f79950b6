"""Exactly once with Twilio's real timing, under real faults.

The simulator behaves as Twilio does where it matters here: no status callback for a
message's initial status, ``sent`` only when its queue releases the message (here: later
than the test lasts), and the answer to a send leaving well after the message was stored
(150 ms, as from Vientiane). A worker killed in that window leaves a delivery ``sending``
with no SID and no callback coming: in doubt. Each test asserts, from the simulator's own
record, that every recipient got exactly one accepted message and nobody was lost. Real
worker and scheduler processes on real Redis and PostgreSQL; the real twilio SDK over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from broadcaster.deliveries import in_doubt
from broadcaster.models import Delivery
from tests.stack import Stack, launch_campaign, seed_audience, wait_for
from tests.workers.test_faults import accepted_at_least, exactly_once

pytestmark = [pytest.mark.pipeline, pytest.mark.fault]

QUICK = {
    "RISKCAST_LEASE_TTL": "3",
    "RISKCAST_VISIBILITY_TIMEOUT": "10",
    "RISKCAST_RECONCILE_INTERVAL": "1",
    "RISKCAST_SENDING_TIMEOUT": "5",
    "RISKCAST_TWILIO_TIMEOUT": "1",  # in doubt after max(5, 2 x 1 + 3) = 5 s
    "RISKCAST_RETRY_BASE": "0.3",
    "RISKCAST_LOOKUP_RATE": "50",
}
# Twilio from Vientiane: the answer leaves 150 ms after the message is stored, and the
# queue holds it (no callback) longer than any test here runs.
TWILIO_TIMING = {"queue_delay": 3600.0, "answer_delay": 0.15}


def make_stack(tmp_path: Path, sim: dict[str, Any], **env: str) -> Stack:
    return Stack(tmp_path, db="postgresql", env={**QUICK, **env}, sim=sim)


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    made: list[Stack] = []
    try:
        yield made
    except BaseException:
        for s in made:
            print(s.dump_logs())
        raise
    finally:
        for s in made:
            s.stop()


def lookup_notes(stack: Stack) -> dict[str, int]:
    """How many deliveries ended with each kind of lookup note (found, queued again...)."""
    with stack.runtime.session() as session:
        rows = session.execute(
            select(Delivery.lookup_note, func.count())
            .where(Delivery.lookup_note.is_not(None))
            .group_by(Delivery.lookup_note)
        ).all()
    kinds: dict[str, int] = {}
    for note, n in rows:
        kind = note.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + n
    return kinds


def kill_three_times(stack: Stack, total: int) -> int:
    workers = [stack.start_worker(), stack.start_worker()]
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    for kill in range(3):
        accepted_at_least(stack, total * (kill + 1) // 4)
        victim = workers.pop(0)
        stack.kill9(victim)
        print(f"kill -9 #{kill + 1} at {stack.core.accepted_count} accepted")
        workers.append(stack.start_worker())
    status = stack.wait_completed(campaign_id, timeout=240)
    print("counts:", status["counts"], "lookups:", lookup_notes(stack))
    assert status["counts"]["sent"] + status["counts"]["delivered"] == total
    return campaign_id


def test_kill_9_three_times_with_twilios_timing(tmp_path: Path, stacks: list[Stack]) -> None:
    stack = make_stack(tmp_path, TWILIO_TIMING)
    stacks.append(stack)
    phones = seed_audience(stack, 600)
    kill_three_times(stack, 600)
    exactly_once(stack, phones)
    # the kills did leave sends in doubt, and the provider's records settled them
    assert lookup_notes(stack).get("found at the provider", 0) >= 1
    assert stack.core.stats()["callbacks_delivered"] == 0  # none came: Twilio's queue holds them


def test_kill_9_three_times_when_callbacks_never_arrive(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """``RISKCAST_PUBLIC_URL`` is wrong: Twilio posts every callback to nowhere. Messages
    whose answer came are confirmed by the read API (``RISKCAST_CONFIRM_AFTER``); the ones in
    doubt are found there too."""
    stack = make_stack(
        tmp_path,
        {"queue_delay": 1.0, "answer_delay": 0.15},
        RISKCAST_CONFIRM_AFTER="5",
    )
    stacks.append(stack)
    stack.env["RISKCAST_PUBLIC_URL"] = "http://127.0.0.1:9"  # nothing listens there
    phones = seed_audience(stack, 400)
    campaign_id = kill_three_times(stack, 400)
    exactly_once(stack, phones)
    assert lookup_notes(stack).get("found at the provider", 0) >= 1
    assert stack.core.stats()["callbacks_delivered"] == 0
    # without a single callback, the read API still brings every final status in
    wait_for(
        lambda: stack.status(campaign_id)["counts"]["delivered"] == 400,
        180,
        "every delivery confirmed delivered by the read API",
        1.0,
    )
    exactly_once(stack, phones)


def test_read_api_down_means_no_resend_until_it_answers(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    stack = make_stack(tmp_path, {"queue_delay": 3600.0, "answer_delay": 0.3})
    stacks.append(stack)
    phones = seed_audience(stack, 120)
    stack.core.configure(read_error_rates={500: 0.5, 429: 0.5})
    worker = stack.start_worker()
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    accepted_at_least(stack, 30)
    stack.kill9(worker)
    at_kill = stack.core.accepted_count
    print(f"kill -9 at {at_kill} accepted")
    stack.start_worker()

    def everything_else_done() -> bool:
        counts = stack.status(campaign_id)["counts"]
        return counts["queued"] == counts["pending"] == 0 and counts["sent"] >= 100

    wait_for(everything_else_done, 120, "the rest of the campaign to be sent", 0.5)
    with stack.runtime.session() as session:
        waiting = in_doubt.summary(session, 5.0)
    assert waiting.count >= 1, "the kill left no send in doubt"
    # several reconciler runs while the provider answers every read with 500 or 429
    time.sleep(12)
    with stack.runtime.session() as session:
        waiting = in_doubt.summary(session, 5.0)
    print(
        f"in doubt: {waiting.count}, oldest {waiting.oldest_seconds:.0f} s, "
        f"last: {waiting.last_note}; reads refused {stack.core.stats()['reads_refused']}"
    )
    assert waiting.count >= 1
    assert all(d.lookups >= 1 for d in waiting.deliveries)
    assert waiting.last_note and "did not answer" in waiting.last_note
    assert max(stack.core.accepted_by_to().values()) == 1  # nothing sent twice meanwhile
    assert stack.status(campaign_id)["state"] == "sending"  # and not given up
    stack.core.configure(read_error_rates={})
    status = stack.wait_completed(campaign_id, timeout=120)
    print("counts:", status["counts"], "lookups:", lookup_notes(stack))
    exactly_once(stack, phones)


def test_every_answer_timing_out_is_settled_by_lookups(tmp_path: Path, stacks: list[Stack]) -> None:
    """Twilio answers after the SDK gave up: every send is ambiguous (it may have been
    accepted), stays in doubt, and is found at the provider. Nothing is sent twice."""
    stack = make_stack(
        tmp_path, {"queue_delay": 3600.0, "answer_delay": 2.0}, RISKCAST_TWILIO_TIMEOUT="1"
    )
    stacks.append(stack)
    phones = seed_audience(stack, 30)
    stack.start_worker()
    stack.start_scheduler()
    campaign_id = launch_campaign(stack)
    status = stack.wait_completed(campaign_id, timeout=180)
    print("counts:", status["counts"], "lookups:", lookup_notes(stack))
    exactly_once(stack, phones)
    assert lookup_notes(stack).get("found at the provider", 0) == 30
