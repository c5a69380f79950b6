"""The fleet-wide limiter on real Redis: slots never closer than the rate allows, whoever asks."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
import redis

from tests.services import REDIS_URL, redis_client
from workers.ratelimit import MemoryRateLimiter, RedisRateLimiter


@pytest.fixture
def client() -> redis.Redis:
    c = redis_client()
    c.delete("riskcast:rate:fleet", "riskcast:rate:campaign:7")
    return c


def _slots(limiter: RedisRateLimiter | MemoryRateLimiter, n: int, **kw: object) -> list[float]:
    out = []
    for _ in range(n):
        asked = time.monotonic()
        out.append(asked + limiter.reserve(**kw))  # type: ignore[arg-type]
    return out


def _gaps(slots: list[float]) -> list[float]:
    s = sorted(slots)
    return [b - a for a, b in itertools.pairwise(s)]


def test_slots_follow_the_rate(client: redis.Redis) -> None:
    slots = _slots(RedisRateLimiter(client, 100), 30)
    assert min(_gaps(slots)) >= 0.009
    assert 0.27 <= slots[-1] - slots[0] <= 0.35


def test_segments_cost_their_number(client: redis.Redis) -> None:
    limiter = RedisRateLimiter(client, 100)
    first = time.monotonic() + limiter.reserve(3)
    second = time.monotonic() + limiter.reserve(1)
    assert second - first >= 0.029  # a 3-part message took three slots


def test_campaign_rate_binds_below_the_fleet_rate(client: redis.Redis) -> None:
    slots = _slots(RedisRateLimiter(client, 1000), 5, also=[("campaign:7", 20)])
    assert min(_gaps(slots)) >= 0.049


def test_many_workers_share_one_schedule(client: redis.Redis) -> None:
    """Separate connections (as separate worker processes have) in parallel threads."""
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        limiter = RedisRateLimiter(redis.Redis.from_url(REDIS_URL), 200)
        got = _slots(limiter, 25)
        with lock:
            slots.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(slots) == 100
    # 100 slots at 200/s span about half a second, however the four asked
    span = max(slots) - min(slots)
    assert 0.45 <= span <= 0.6
    # no one-second window could hold more than the rate (plus clock jitter between calls)
    assert sorted(_gaps(slots))[5] >= 0.003


def test_memory_limiter_keeps_the_same_schedule() -> None:
    slots = _slots(MemoryRateLimiter(100), 20, also=[("campaign:1", 50)])
    assert min(_gaps(slots)) >= 0.0195
