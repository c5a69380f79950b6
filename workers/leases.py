"""Leases: a short-lived Redis key for each unit of work that has a task.

When a send batch or a fan-out is enqueued, its token gets a long lease (it may wait in a
busy queue); while a task works on it, the lease is renewed for a short time; when the
task ends it is released. If Redis is flushed or restarted, the queue and the leases vanish
together, and if a worker is killed its lease runs out: either way the reconciler sees
work in the database with no lease and enqueues it again. The database stays the truth;
a lease only says "someone has this".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Protocol

import redis

QUEUED_TTL = 6 * 3600  # a task may wait this long in a deep queue
HELD_TTL = 60  # a running task renews at least this often


class Leases(Protocol):
    def grant(self, token: str, ttl: float = QUEUED_TTL) -> None: ...
    def renew(self, token: str, ttl: float = HELD_TTL) -> None: ...
    def release(self, token: str) -> None: ...
    def live(self, tokens: Iterable[str]) -> set[str]: ...
    def try_lock(self, name: str, ttl: float) -> bool: ...


class RedisLeases:
    def __init__(self, client: redis.Redis, prefix: str = "riskcast:lease:") -> None:
        self._client = client
        self._prefix = prefix

    def grant(self, token: str, ttl: float = QUEUED_TTL) -> None:
        self._client.set(self._prefix + token, "1", px=int(ttl * 1000))

    def renew(self, token: str, ttl: float = HELD_TTL) -> None:
        self._client.set(self._prefix + token, "1", px=int(ttl * 1000))

    def release(self, token: str) -> None:
        self._client.delete(self._prefix + token)

    def live(self, tokens: Iterable[str]) -> set[str]:
        tokens = list(tokens)
        if not tokens:
            return set()
        pipe = self._client.pipeline(transaction=False)
        for token in tokens:
            pipe.exists(self._prefix + token)
        return {t for t, found in zip(tokens, pipe.execute(), strict=True) if found}

    def try_lock(self, name: str, ttl: float) -> bool:
        return bool(
            self._client.set(self._prefix + "lock:" + name, "1", nx=True, px=int(ttl * 1000))
        )


class MemoryLeases:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _set(self, key: str, ttl: float) -> None:
        with self._lock:
            self._until[key] = time.monotonic() + ttl

    def grant(self, token: str, ttl: float = QUEUED_TTL) -> None:
        self._set(token, ttl)

    def renew(self, token: str, ttl: float = HELD_TTL) -> None:
        self._set(token, ttl)

    def release(self, token: str) -> None:
        with self._lock:
            self._until.pop(token, None)

    def live(self, tokens: Iterable[str]) -> set[str]:
        now = time.monotonic()
        with self._lock:
            return {t for t in tokens if self._until.get(t, 0) > now}

    def try_lock(self, name: str, ttl: float) -> bool:
        key = "lock:" + name
        now = time.monotonic()
        with self._lock:
            if self._until.get(key, 0) > now:
                return False
            self._until[key] = now + ttl
            return True
