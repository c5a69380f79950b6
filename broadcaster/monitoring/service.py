"""Workers alive and the send rate: what operators watch besides the queues, shared by the
operator page, ``GET /api/v1/workers``, ``/metrics`` and ``riskcast queue``.

Heartbeats. Every worker process (``riskcast worker``, and the worker thread of
``riskcast serve``) writes a :class:`WorkerBeat` every ``RISKCAST_HEARTBEAT_INTERVAL``
seconds, under the Redis key ``riskcast:worker:<hostname>:<pid>`` with a time-to-live of
:data:`MISSED_BEATS` intervals, and deletes it when it stops. A worker is alive while its
key exists: one killed outright drops out once its key expires. Without Redis (the
in-process ``riskcast serve``) the beats are kept in this process's memory, where the API of
the same process reads them.

Send rate. :func:`sent_per_minute` counts deliveries by the minute of their ``sent_at`` (one
grouped query on SQLite and PostgreSQL); :func:`rate_chart` lays the counts out as a bar
chart that the page draws as inline SVG.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from sqlalchemy import String, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from broadcaster.db import utcnow
from broadcaster.models import Delivery

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "riskcast:worker:"
# A worker unheard of for this many heartbeat intervals is no longer counted alive.
MISSED_BEATS = 3


# -- heartbeats -----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerBeat:
    """One worker process as its last heartbeat described it."""

    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_at: datetime
    seen_at: datetime
    tasks: int = 0

    @property
    def key(self) -> str:
        return f"{HEARTBEAT_PREFIX}{self.hostname}:{self.pid}"

    def to_json(self) -> str:
        data = asdict(self)
        data["queues"] = list(self.queues)
        data["started_at"] = self.started_at.isoformat()
        data["seen_at"] = self.seen_at.isoformat()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerBeat:
        data = json.loads(text)
        return cls(
            hostname=str(data["hostname"]),
            pid=int(data["pid"]),
            queues=tuple(str(q) for q in data["queues"]),
            concurrency=int(data["concurrency"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            seen_at=datetime.fromisoformat(data["seen_at"]),
            tasks=int(data.get("tasks", 0)),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``riskcast queue --json``."""
        return json.loads(self.to_json())


class HeartbeatStore(Protocol):
    def put(self, beat: WorkerBeat, ttl: float) -> None: ...

    def remove(self, hostname: str, pid: int) -> None: ...

    def alive(self) -> list[WorkerBeat]: ...

    def close(self) -> None: ...


class RedisHeartbeats:
    """Heartbeats as Redis keys that expire: shared by every process on the same Redis."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def put(self, beat: WorkerBeat, ttl: float) -> None:
        self.client.set(beat.key, beat.to_json(), px=max(1, round(ttl * 1000)))

    def remove(self, hostname: str, pid: int) -> None:
        self.client.delete(f"{HEARTBEAT_PREFIX}{hostname}:{pid}")

    def alive(self) -> list[WorkerBeat]:
        keys = list(self.client.scan_iter(match=f"{HEARTBEAT_PREFIX}*", count=500))
        if not keys:
            return []
        return _parsed(v for v in self.client.mget(keys) if v is not None)

    def close(self) -> None:
        self.client.close()


class MemoryHeartbeats:
    """Heartbeats kept in this process, for a worker and an API sharing one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beats: dict[str, tuple[str, float]] = {}

    def put(self, beat: WorkerBeat, ttl: float) -> None:
        with self._lock:
            self._beats[beat.key] = (beat.to_json(), time.monotonic() + ttl)

    def remove(self, hostname: str, pid: int) -> None:
        with self._lock:
            self._beats.pop(f"{HEARTBEAT_PREFIX}{hostname}:{pid}", None)

    def alive(self) -> list[WorkerBeat]:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (_, expires) in self._beats.items() if expires <= now]:
                del self._beats[key]
            values = [text for text, _ in self._beats.values()]
        return _parsed(values)

    def close(self) -> None:
        pass


LOCAL_HEARTBEATS = MemoryHeartbeats()


def _parsed(values: Any) -> list[WorkerBeat]:
    beats: list[WorkerBeat] = []
    for value in values:
        try:
            beats.append(WorkerBeat.from_json(value))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed worker heartbeat")
    return sorted(beats, key=lambda b: (b.hostname, b.pid))


def heartbeat_store(redis_url: str | None) -> HeartbeatStore:
    """Redis when there is one, else this process's memory (``riskcast serve``)."""
    return RedisHeartbeats(redis_url) if redis_url else LOCAL_HEARTBEATS


@dataclass(frozen=True)
class WorkersAlive:
    workers: list[WorkerBeat]
    error: str | None = None

    @property
    def count(self) -> int | None:
        """How many are alive, or None when that is unknown (Redis unavailable)."""
        return None if self.error else len(self.workers)


NO_REDIS = "no Redis configured and no worker in this process: workers elsewhere are not seen"


def workers_alive(redis_url: str | None) -> WorkersAlive:
    """The workers whose heartbeat has not expired. Without Redis only a worker in this
    very process can be seen; with none there, how many run elsewhere is unknown."""
    if not redis_url:
        local = LOCAL_HEARTBEATS.alive()
        return WorkersAlive(local, None if local else NO_REDIS)
    store = heartbeat_store(redis_url)
    try:
        return WorkersAlive(store.alive())
    except redis.RedisError as exc:
        log.warning("worker heartbeats unavailable: %s", exc.__class__.__name__)
        return WorkersAlive([], f"Redis unavailable: {exc.__class__.__name__}")
    finally:
        store.close()


# -- send rate ------------------------------------------------------------------------

RATE_MINUTES = 60
_MINUTE_FORMAT = "%Y-%m-%d %H:%M"


class minute_of(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it renders
    """A UTC timestamp column truncated to its minute, as text ``YYYY-MM-DD HH:MM``."""

    type = String()
    inherit_cache = True
    name = "minute_of"


@compiles(minute_of, "sqlite")
def _minute_of_sqlite(element: minute_of, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the UTC time as text without a zone (broadcaster.orm).
    return f"strftime('%Y-%m-%d %H:%M', {compiler.process(element.clauses, **kw)})"


@compiles(minute_of, "postgresql")
def _minute_of_postgresql(element: minute_of, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"


def sent_per_minute(
    session: Session, *, now: datetime | None = None, minutes: int = RATE_MINUTES
) -> list[int]:
    """Deliveries sent in each of the last ``minutes`` minutes, oldest first; the last one is
    the current minute, so far."""
    current = (now or utcnow()).astimezone(UTC).replace(second=0, microsecond=0)
    start = current - timedelta(minutes=minutes - 1)
    bucket: ColumnElement[str] = minute_of(Delivery.sent_at)
    rows = session.execute(
        select(bucket, func.count())
        .where(Delivery.sent_at >= start, Delivery.sent_at < current + timedelta(minutes=1))
        .group_by(bucket)
    )
    counts = [0] * minutes
    for label, n in rows:
        at = datetime.strptime(label, _MINUTE_FORMAT).replace(tzinfo=UTC)
        index = int((at - start).total_seconds() // 60)
        if 0 <= index < minutes:
            counts[index] += n
    return counts


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class RateChart:
    """A bar chart of sends per minute, in the SVG user units of ``width`` x ``height``."""

    width: int
    height: int
    total: int
    peak: int
    scale_max: int
    summary: str
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    plot_left: float
    plot_top: float
    plot_bottom: float
    plot_right: float


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... that is at least ``value`` (1 for 0)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _period(minutes: int) -> str:
    return "the last hour" if minutes == 60 else f"the last {minutes} minutes"


def rate_summary(counts: Sequence[int]) -> str:
    total, peak = sum(counts), max(counts, default=0)
    if total == 0:
        return f"Nothing sent in {_period(len(counts))}"
    return f"{total} sent in {_period(len(counts))}, peak {peak}/min"


def rate_chart(
    counts: Sequence[int],
    *,
    current_minute: datetime | None = None,
    width: int = 360,
    height: int = 150,
) -> RateChart:
    """Lay out ``counts`` (one per minute, oldest first, the last for ``current_minute``) as
    bars under a scale rounded up to a round number, with ticks every quarter of the span."""
    if any(n < 0 for n in counts):
        raise ValueError("counts cannot be negative")
    n = len(counts)
    total, peak = sum(counts), max(counts, default=0)
    scale_max = nice_ceiling(peak)
    left, right, top, bottom = 30.0, width - 8.0, 8.0, height - 22.0
    slot = (right - left) / n if n else 0.0
    gap = min(1.0, slot * 0.2)
    bars: list[Bar] = []
    for i, count in enumerate(counts):
        bar_height = (bottom - top) * count / scale_max
        if current_minute is not None:
            at = current_minute - timedelta(minutes=n - 1 - i)
            label = f"{at:%H:%M} UTC: {count} sent"
        else:
            label = f"{n - 1 - i} min ago: {count} sent" if i < n - 1 else f"now: {count} sent"
        bars.append(
            Bar(
                x=round(left + i * slot + gap / 2, 2),
                y=round(bottom - bar_height, 2),
                width=round(max(slot - gap, 0.5), 2),
                height=round(bar_height, 2),
                count=count,
                label=label,
            )
        )
    ticks: list[Tick] = []
    if n:
        for ago in sorted({a for a in (n, n * 3 // 4, n // 2, n // 4) if a > 0}, reverse=True):
            ticks.append(Tick(x=round(left + (n - ago) * slot, 2), text=f"-{ago} min"))
        ticks.append(Tick(x=right, text="now"))
    return RateChart(
        width=width,
        height=height,
        total=total,
        peak=peak,
        scale_max=scale_max,
        summary=rate_summary(counts),
        bars=tuple(bars),
        ticks=tuple(ticks),
        plot_left=left,
        plot_top=top,
        plot_bottom=bottom,
        plot_right=right,
    )
