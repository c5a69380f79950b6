"""Fleet-wide send rates: GCRA limiters in Redis (or in memory for a one-process run).

Each send reserves ``cost`` slots (its SMS segments: a 3-part Lao message costs 3, as
carriers and Twilio count them) on shared schedules and is told how long to wait for its
slot. A send may be bound by several schedules at once (the fleet's and its campaign's); it
takes the first moment all of them allow. One Lua script makes the reservation atomic across
every worker on every machine, and Redis's clock is used so workers' clocks do not matter.
Celery's ``rate_limit`` would be per worker; this is per fleet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

import redis

FLEET_KEY = "riskcast:rate:fleet"

# KEYS: one theoretical-arrival-time key (µs) per schedule.
# ARGV: cost, then one interval per unit (µs) per key. Returns µs to wait; slots reserved.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local start = now
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat > start then start = tat end
end
for i, key in ipairs(KEYS) do
  local new_tat = start + tonumber(ARGV[i + 1]) * cost
  local ttl = math.ceil((new_tat - now) / 1000) + 1000
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', ttl)
end
return start - now
"""

Schedule = tuple[str, float]  # (name, units per second)


class RateLimiter(Protocol):
    def reserve(self, cost: int = 1, also: Sequence[Schedule] = ()) -> float:
        """Reserve ``cost`` units on the fleet's schedule and on ``also``; seconds to wait."""
        ...

    def acquire(self, cost: int = 1, also: Sequence[Schedule] = ()) -> float:
        """Reserve and wait; return the seconds waited."""
        ...


class _Waits:
    def reserve(self, cost: int = 1, also: Sequence[Schedule] = ()) -> float:
        raise NotImplementedError

    def acquire(self, cost: int = 1, also: Sequence[Schedule] = ()) -> float:
        wait = self.reserve(cost, also)
        if wait > 0:
            time.sleep(wait)
        return wait


class RedisRateLimiter(_Waits):
    def __init__(self, client: redis.Redis, rate: float, *, key: str = FLEET_KEY) -> None:
        self._script = client.register_script(_GCRA)
        self.key = key
        self.rate = rate

    def reserve(self, cost: int = 1, also: Sequence[Schedule] = ()) -> float:
        schedules = [(self.key, self.rate), *((f"riskcast:rate:{n}", r) for n, r in also)]
        wait_us = self._script(
            keys=[k for k, _ in schedules],
            args=[cost, *(f"{1_000_000 / r:.3f}" for _, r in schedules)],
        )
        return int(wait_us) / 1_000_000


class MemoryRateLimiter(_Waits):
    """The same schedules for a single process (``riskcast serve``)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, cost: int = 1, also: Sequence[Schedule] = ()) -> float:
        schedules = [("fleet", self.rate), *also]
        with self._lock:
            now = time.monotonic()
            start = max([now, *(self._tat.get(k, 0.0) for k, _ in schedules)])
            for key, rate in schedules:
                self._tat[key] = start + cost / rate
            return start - now
