"""Fleet-wide send rate: a GCRA limiter in Redis (or in memory for a one-process run).

Each send reserves ``cost`` slots (its SMS segments: a 3-part Lao message costs 3, as
carriers and Twilio count them) on a shared schedule and is told how long to wait for its
slot. One Lua script makes the reservation atomic across every worker on every machine, and
Redis's own clock is used so workers' clocks do not matter. Celery's ``rate_limit`` would be
per worker; this is per fleet.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis

# KEYS[1]: theoretical arrival time (µs). ARGV: interval per unit (µs), cost, burst (µs).
# Returns µs to wait before sending; the slot is reserved either way.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local start = tat
local new_tat = tat + interval * cost
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
local wait = start - now - burst
if wait < 0 then wait = 0 end
return wait
"""


class RateLimiter(Protocol):
    def reserve(self, cost: int = 1) -> float:
        """Reserve ``cost`` units; return seconds to wait before using them."""
        ...

    def acquire(self, cost: int = 1) -> float:
        """Reserve and wait; return the seconds waited."""
        ...


class _Base:
    def reserve(self, cost: int = 1) -> float:
        raise NotImplementedError

    def acquire(self, cost: int = 1) -> float:
        wait = self.reserve(cost)
        if wait > 0:
            time.sleep(wait)
        return wait


class RedisRateLimiter(_Base):
    def __init__(
        self,
        client: redis.Redis,
        rate: float,
        *,
        key: str = "riskcast:rate:fleet",
        burst: float = 0.0,
    ) -> None:
        self._client = client
        self._script = client.register_script(_GCRA)
        self.key = key
        self.interval_us = 1_000_000 / rate
        self.burst_us = burst * 1_000_000

    def reserve(self, cost: int = 1) -> float:
        wait_us = self._script(
            keys=[self.key], args=[f"{self.interval_us:.3f}", cost, f"{self.burst_us:.0f}"]
        )
        return int(wait_us) / 1_000_000


class MemoryRateLimiter(_Base):
    """The same schedule for a single process (``riskcast serve``)."""

    def __init__(self, rate: float, *, burst: float = 0.0) -> None:
        self.interval = 1 / rate
        self.burst = burst
        self._tat = 0.0
        self._lock = threading.Lock()

    def reserve(self, cost: int = 1) -> float:
        with self._lock:
            now = time.monotonic()
            start = max(self._tat, now)
            self._tat = start + self.interval * cost
            return max(0.0, start - now - self.burst)
