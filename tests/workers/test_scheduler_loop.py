"""The scheduler's loop: it keeps running through a Redis outage and its ticks resume when
Redis is back; it erases contacts past retention on its own clock; a launch wakes it."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select, update

from broadcaster.campaigns import service as campaigns
from broadcaster.config import load_settings
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.models import AuditEvent, Campaign, CampaignState, Contact
from broadcaster.runtime import Runtime
from tests import factories
from tests.services import migrated_database, unavailable
from tests.stack import wait_for
from tests.workers.wiring import MakeWorker
from workers.leases import RedisLeases
from workers.pipeline import fanout_token
from workers.scheduler import run_scheduler
from workers.sending import FANOUT_TASK

LEASE_PREFIX = "riskcast:lease:"  # RedisLeases' default


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket closes


class PrivateRedis:
    """A redis-server of this test's own on a free loopback port, to kill and start again
    (the shared Redis on 6379 serves other test runs)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server", FileNotFoundError("redis-server is not on PATH"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "redis.log"),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.probe = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)

    def answers(self) -> bool:
        try:
            return bool(self.probe.ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        wait_for(self.answers, 10, f"redis-server on port {self.port}", 0.02)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def holds_lease(self, token: str) -> bool:
        return bool(self.probe.exists(LEASE_PREFIX + token))


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        server.probe.close()


def skipped_ticks(caplog: pytest.LogCaptureFixture) -> int:
    """Ticks the scheduler logged as skipped because it could not reach Redis."""
    return sum(
        r.name == "workers.scheduler" and r.getMessage().startswith("tick skipped")
        for r in caplog.records
    )


def started(runtime: Runtime, campaign_id: int) -> bool:
    with runtime.session() as s:
        return campaigns.get(s, campaign_id).state == CampaignState.FANNING_OUT


def launch(runtime: Runtime, key: str) -> int:
    with runtime.session() as s:
        campaign_id = factories.campaign(s, ["village"], key=key).id
        campaigns.schedule(s, campaign_id)
        return campaign_id


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_ticks_resume_when_redis_comes_back(
    kind: str,
    tmp_path: Path,
    private_redis: PrivateRedis,
    make_worker: MakeWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis dies under a running scheduler: each tick says it was skipped, the loop goes
    on, and once Redis is back at the same address the ticks run again: a campaign launched
    during the outage starts, its fan-out leased in the new Redis."""
    caplog.set_level(logging.WARNING, logger="workers.scheduler")
    with migrated_database(kind, str(tmp_path)) as (url, _engine):
        runtime = Runtime(
            load_settings(database_url=url, scheduler_interval=0.1, reconcile_interval=30)
        )
        # The client as workers.context.make_context configures it.
        client = redis.Redis.from_url(
            private_redis.url, socket_timeout=10, socket_connect_timeout=5, retry_on_timeout=True
        )
        worker = make_worker(runtime, leases=RedisLeases(client, prefix=LEASE_PREFIX))
        with runtime.session() as s:
            factories.community(s, "village")
            factories.contact(s, community_slugs=("village",))
            key = factories.template(s)
        first = launch(runtime, key)
        stop = threading.Event()
        thread = threading.Thread(target=run_scheduler, args=(worker.ctx, stop), daemon=True)
        thread.start()
        try:
            wait_for(
                lambda: started(runtime, first) and private_redis.holds_lease(fanout_token(first)),
                10,
                "the first campaign to start",
                0.02,
            )
            assert skipped_ticks(caplog) == 0

            private_redis.kill()
            second = launch(runtime, key)
            wait_for(
                lambda: skipped_ticks(caplog) >= 3 or not thread.is_alive(),
                10,
                "ticks skipped for want of Redis",
            )
            assert thread.is_alive(), "the scheduler died when Redis went away"

            private_redis.start()
            wait_for(
                lambda: (
                    started(runtime, second) and private_redis.holds_lease(fanout_token(second))
                ),
                10,
                "the campaign launched during the outage to start",
                0.02,
            )
        finally:
            stop.set()
            thread.join(5)
            client.close()
            runtime.dispose()
    assert not thread.is_alive(), "the scheduler did not stop when asked"
    assert (FANOUT_TASK, [second], "bulk") in worker.enqueued


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_scheduler_erases_contacts_past_retention(
    kind: str, tmp_path: Path, make_worker: MakeWorker
) -> None:
    """With RISKCAST_RETENTION_DAYS set, the scheduler erases inactive contacts on its own
    clock and says so in the audit log; recent and opted-out contacts stay."""
    with migrated_database(kind, str(tmp_path)) as (url, _engine):
        retention_run(url, make_worker)


def retention_run(url: str, make_worker: MakeWorker) -> None:
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
    ctx = make_worker(runtime).ctx
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
    with runtime.session() as s:
        left = set(s.scalars(select(Contact.phone)))
        events = s.scalars(select(AuditEvent).where(AuditEvent.actor == "retention")).all()
    runtime.dispose()
    assert left == {factories.lao_number(2), factories.lao_number(3)}
    assert [(e.action, e.detail) for e in events] == [
        ("contact.purge_inactive", {"days": 30, "erased": 1})
    ]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_launch_is_claimed_at_once_not_at_the_next_tick(
    kind: str, tmp_path: Path, make_worker: MakeWorker
) -> None:
    """With ticks 30 s apart, a campaign launched between them is claimed within a second
    on PostgreSQL (the launch's NOTIFY wakes the scheduler) and its fan-out enqueued; on
    SQLite it waits for the tick, as documented."""
    with migrated_database(kind, str(tmp_path)) as (url, _engine):
        runtime = Runtime(
            load_settings(database_url=url, scheduler_interval=30, reconcile_interval=30)
        )
        worker = make_worker(runtime)
        ctx, enqueued = worker.ctx, worker.enqueued
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
            runtime.dispose()
        if kind == "postgresql":
            assert waited < 1.0, f"claimed {waited:.2f}s after the launch"
            assert (FANOUT_TASK, [campaign_id], "bulk") in enqueued
        else:
            assert waited >= 3, "SQLite has no NOTIFY: the launch waits for the tick"
            assert not enqueued
