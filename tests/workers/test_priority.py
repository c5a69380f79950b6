"""An urgent alert is never stuck behind a bulk campaign (separate queues, sliced batches)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack, launch_campaign, seed_audience, wait_for

pytestmark = pytest.mark.pipeline


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, db="postgresql", env={"RISKCAST_SEND_RATE": "300"})
    try:
        yield s
    finally:
        s.stop()


def test_urgent_alert_overtakes_a_bulk_campaign(stack: Stack) -> None:
    bulk_phones = seed_audience(stack, 3000, slug="everyone")
    urgent_phones = set(seed_audience(stack, 20, slug="border", first=100_000))
    stack.start_worker(concurrency=2)
    stack.start_scheduler()
    bulk = launch_campaign(stack, "everyone", priority="bulk")
    wait_for(lambda: stack.core.accepted_count >= 300, 60, "the bulk campaign to be under way")
    launched = time.monotonic()
    urgent = launch_campaign(stack, "border", priority="urgent")
    wait_for(
        lambda: urgent_phones & set(stack.core.accepted_by_to()),
        30,
        "the first urgent message",
        0.02,
    )
    first = time.monotonic() - launched
    stack.wait_completed(urgent, timeout=60)
    done = time.monotonic() - launched
    bulk_sent = len(set(stack.core.accepted_by_to()) & set(bulk_phones))
    print(
        f"urgent: first request {first:.2f}s, all 20 in {done:.2f}s after launch; bulk had sent {bulk_sent}/3000"
    )
    # the urgent campaign finished while most of the bulk one was still waiting
    assert bulk_sent < 2400
    stack.wait_completed(bulk, timeout=120)
