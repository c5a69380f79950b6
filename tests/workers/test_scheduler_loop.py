"""The scheduler keeps running through a Redis outage (its ticks resume when Redis is back)."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select, update

from broadcaster import contacts
from broadcaster.config import load_settings
from broadcaster.db import utcnow
from broadcaster.models import AuditEvent, Contact
from broadcaster.runtime import Runtime
from tests import factories
from tests.services import migrated_database
from workers.context import Context
from workers.leases import Leases, MemoryLeases, RedisLeases
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.ratelimit import MemoryRateLimiter
from workers.scheduler import run_scheduler


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket closes


def scheduler_context(runtime: Runtime, leases: Leases) -> tuple[SimulatorCore, Context]:
    core = SimulatorCore("AC" + "3" * 32, "t", deliver_callbacks=False)
    ctx = Context(
        runtime=runtime,
        provider=SimulatorProvider(
            core, account_sid="AC" + "3" * 32, auth_token="t", from_number="+15005550006"
        ),
        limiter=MemoryRateLimiter(10),
        leases=leases,
        enqueue=lambda *_: None,
    )
    return core, ctx


def test_scheduler_survives_an_unreachable_redis(tmp_path: Path) -> None:
    runtime = Runtime(
        load_settings(
            database_url=f"sqlite:///{tmp_path}/x.db",
            scheduler_interval=0.05,
            reconcile_interval=0.05,
        )
    )
    dead = redis.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.2)
    core, ctx = scheduler_context(runtime, RedisLeases(dead))
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(ctx, stop), daemon=True)
    thread.start()
    time.sleep(1.0)
    alive = thread.is_alive()
    stop.set()
    thread.join(5)
    core.stop(drain=False)
    runtime.dispose()
    assert alive, "the scheduler died when Redis was unreachable"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_scheduler_erases_contacts_past_retention(kind: str, tmp_path: Path) -> None:
    """With RISKCAST_RETENTION_DAYS set, the scheduler erases inactive contacts on its own
    clock and says so in the audit log; recent and opted-out contacts stay."""
    with migrated_database(kind, str(tmp_path)) as (url, _engine):
        retention_run(url)


def retention_run(url: str) -> None:
    runtime = Runtime(
        load_settings(
            database_url=url,
            retention_days=30,
            retention_interval=0.1,
            scheduler_interval=5,
            reconcile_interval=5,
        )
    )
    long_ago = utcnow() - timedelta(days=45)
    with runtime.session() as s:
        factories.community(s, "village")
        old = factories.contact(s, factories.lao_number(1), community_slugs=("village",))
        quiet_but_out = factories.contact(s, factories.lao_number(2))
        contacts.opt_out(s, quiet_but_out, source="keyword")
        factories.contact(s, factories.lao_number(3))  # new: stays
        s.execute(
            update(Contact)
            .where(Contact.id.in_([old.id, quiet_but_out.id]))
            .values(created_at=long_ago, last_activity_at=long_ago)
        )
    core, ctx = scheduler_context(runtime, MemoryLeases())
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(ctx, stop), daemon=True)
    thread.start()
    try:

        def erased() -> bool:
            with runtime.session() as s:
                return s.scalar(select(func.count()).select_from(Contact)) == 2

        deadline = time.monotonic() + 10
        while not erased() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
        core.stop(drain=False)
    with runtime.session() as s:
        left = set(s.scalars(select(Contact.phone)))
        events = s.scalars(select(AuditEvent).where(AuditEvent.actor == "retention")).all()
    runtime.dispose()
    assert left == {factories.lao_number(2), factories.lao_number(3)}
    assert [(e.action, e.detail) for e in events] == [
        ("contact.purge_inactive", {"days": 30, "erased": 1})
    ]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_launch_is_claimed_at_once_not_at_the_next_tick(kind: str, tmp_path: Path) -> None:
    """With ticks 30 s apart, a campaign launched between them is claimed within a second
    on PostgreSQL (the launch's NOTIFY wakes the scheduler) and its fan-out enqueued; on
    SQLite it waits for the tick, as documented."""
    from broadcaster import campaigns  # noqa: PLC0415
    from broadcaster.models import Campaign  # noqa: PLC0415
    from workers.sending import FANOUT_TASK  # noqa: PLC0415

    with migrated_database(kind, str(tmp_path)) as (url, _engine):
        runtime = Runtime(
            load_settings(database_url=url, scheduler_interval=30, reconcile_interval=30)
        )
        core, ctx = scheduler_context(runtime, MemoryLeases())
        enqueued: list[tuple[str, list[object], str]] = []
        ctx.enqueue = lambda name, args, queue: enqueued.append((name, list(args), queue))
        with runtime.session() as s:
            factories.community(s, "village")
            factories.contact(s, factories.lao_number(1), community_slugs=("village",))
            campaign_id = factories.campaign(s, ["village"]).id
        stop = threading.Event()
        thread = threading.Thread(target=run_scheduler, args=(ctx, stop), daemon=True)
        thread.start()
        try:
            time.sleep(1.0)  # the first tick has run; the next is 30 s away
            with runtime.session() as s:
                campaigns.schedule(s, campaign_id)
            launched = time.monotonic()

            def claimed() -> bool:
                with runtime.session() as s:
                    return s.get_one(Campaign, campaign_id).state != "scheduled"

            while not claimed() and time.monotonic() - launched < 3:
                time.sleep(0.02)
            waited = time.monotonic() - launched
        finally:
            stop.set()
            thread.join(5)
            core.stop(drain=False)
            runtime.dispose()
        if kind == "postgresql":
            assert waited < 1.0, f"claimed {waited:.2f}s after the launch"
            assert (FANOUT_TASK, [campaign_id], "bulk") in enqueued
        else:
            assert waited >= 3, "SQLite has no NOTIFY: the launch waits for the tick"
            assert not enqueued
