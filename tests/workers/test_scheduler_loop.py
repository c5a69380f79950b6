"""The scheduler keeps running through a Redis outage (its ticks resume when Redis is back)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import redis

from broadcaster.config import load_settings
from broadcaster.runtime import Runtime
from workers.context import Context
from workers.leases import RedisLeases
from workers.providers.simulator import SimulatorCore, SimulatorProvider
from workers.ratelimit import MemoryRateLimiter
from workers.scheduler import run_scheduler


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket closes


def test_scheduler_survives_an_unreachable_redis(tmp_path: Path) -> None:
    runtime = Runtime(
        load_settings(
            database_url=f"sqlite:///{tmp_path}/x.db",
            scheduler_interval=0.05,
            reconcile_interval=0.05,
        )
    )
    dead = redis.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.2)
    core = SimulatorCore("AC" + "3" * 32, "t", deliver_callbacks=False)
    ctx = Context(
        runtime=runtime,
        provider=SimulatorProvider(
            core, account_sid="AC" + "3" * 32, auth_token="t", from_number="+15005550006"
        ),
        limiter=MemoryRateLimiter(10),
        leases=RedisLeases(dead),
        enqueue=lambda *_: None,
    )
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
