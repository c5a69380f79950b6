"""``riskcast bench``: the numbers a user asks before trusting riskcast with a national campaign.

One run against the configured PostgreSQL and Redis, in a database and a Redis DB of its own
(both created fresh and removed afterwards): real worker and scheduler processes
(``python -m workers.cli worker``), the API receiving status callbacks as a process of its
own, and the HTTP Twilio simulator (in this process) spoken to by the real twilio SDK.

One plain function per figure:

- :func:`measure_fanout` (P1): launch to every delivery queued, for a 3-language campaign
  with a per-contact ``{{ name }}``; the peak RSS of the worker; and the floor, a server-side
  ``INSERT ... SELECT`` of as many delivery rows (:func:`measure_floor`).
- :func:`measure_raw` and :func:`measure_send` (P2): deliveries per second end to end against
  the same processes x threads calling ``client.messages.create`` in a loop.
- :func:`measure_urgent` (P3): launch to first provider request of 20 urgent alerts while
  the bulk campaign sends.
- :func:`measure_rate` (P4): accepted messages per 1-second window at ``RISKCAST_SEND_RATE=100``
  with three worker processes.
- :func:`measure_import` (P5): CSV import, rows per second.

Phone numbers are never printed: the benchmark's own contacts are synthetic, and only counts
and timings leave this module.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import importlib
import json
import logging
import math
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests
from rich.table import Table
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from broadcaster import auth, campaigns, communities, templates
from broadcaster.config import Settings, load_settings
from broadcaster.models import CampaignMessage, Delivery, User
from broadcaster.runtime import Runtime
from broadcaster.schema import upgrade
from broadcaster.webhooks import STATUS_PATH
from messages import parse_template
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.server import SimulatorServer
from workers.ratelimit import FLEET_KEY

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token"  # noqa: S105 - the benchmark simulator's own throwaway secret
FROM_NUMBER = "+15005550006"
BENCH_REDIS_DB = 14
DB_PREFIX = "riskcast_bench_"
# The API in two processes, as in production: one takes about 200 callbacks/s on this
# machine, and every message brings two.
API_PROCESSES = 2
CALLBACK_THREADS = 8

TEMPLATE_KEY = "bench-alert"
# Three languages and one per-contact variable; every variant stays one SMS segment with a
# name, so the rate figure counts messages and segments alike.
TEMPLATE: dict[str, object] = {
    "key": TEMPLATE_KEY,
    "name": "Benchmark alert",
    "default_language": "en",
    "variables": {"hotline": "1166"},
    "variants": {
        "en": "{{ name }}: free COVID-19 testing near you. Call {{ hotline }}.",
        "lo": "{{ name }}: ກວດ COVID-19 ຟຣີ. ໂທ {{ hotline }}.",
        "th": "{{ name }}: ตรวจโควิด-19 ฟรี โทร {{ hotline }}",
    },
}
LANGUAGES = ("lo", "th", "en")
FIRST_NAMES = ("Somchai", "Bounmy", "Khamla", "Noy", "Vanh", "Malee", "Sombat", "Keo")

# Synthetic numbers (Lao mobile format), one block per audience so they never collide.
BULK_BASE = 0
RATE_BASE = 7_000_000
ALERT_BASE = 8_000_000
RAW_BASE = 9_000_000

TARGETS = {
    "fanout_seconds": 10.0,
    "fanout_floor_ratio": 25.0,
    "worker_rss_mb": 250.0,
    "send_ratio": 0.6,
    "urgent_p95_s": 2.0,
    "rate_mean_tolerance": 0.05,
    "rate_window_max": 110,
    "import_rows_per_s": 20_000.0,
}


FIGURES = ("p1", "p2", "p3", "p4", "p5")


class BenchError(RuntimeError):
    """The benchmark cannot run (a service is missing or misconfigured); one line, no trace."""


def parse_only(value: str | None) -> frozenset[str]:
    """``"p1,p2"`` -> the figures to measure; None or empty means all of them."""
    if not value or not value.strip():
        return frozenset(FIGURES)
    chosen = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = sorted(chosen - set(FIGURES))
    if unknown:
        raise BenchError(
            f"--only: unknown figure {', '.join(unknown)}; choose from {', '.join(FIGURES)}"
        )
    return frozenset(chosen)


def phone(n: int) -> str:
    return f"+85620{n:08d}"


# -- configuration -------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    recipients: int = 200_000
    quick: bool = False
    scale: bool = False
    scale_recipients: int = 1_000_000
    send_workers: int = 2
    send_concurrency: int = 4
    raw_seconds: float = 15.0
    send_warmup: float = 3.0
    send_window: float = 30.0
    alerts: int = 20
    alert_size: int = 3
    alert_gap: float = 0.5
    rate: int = 100
    rate_workers: int = 3
    rate_concurrency: int = 4
    rate_warmup: float = 2.0
    rate_seconds: int = 60
    import_rows: int = 200_000
    only: frozenset[str] = frozenset(FIGURES)

    @classmethod
    def make(
        cls,
        *,
        recipients: int | None,
        quick: bool,
        scale: bool,
        only: frozenset[str] = frozenset(FIGURES),
    ) -> BenchConfig:
        if quick:
            return cls(
                recipients=recipients or 3000,
                quick=True,
                scale=scale,
                only=only,
                scale_recipients=20_000,
                send_concurrency=2,
                raw_seconds=2.0,
                send_warmup=1.0,
                send_window=2.0,
                alert_gap=0.1,
                rate_concurrency=1,
                rate_warmup=1.0,
                rate_seconds=10,
                import_rows=3000,
            )
        return cls(recipients=recipients or 200_000, scale=scale, only=only)

    def wants(self, figure: str) -> bool:
        return figure in self.only

    @property
    def rate_audience(self) -> int:
        # Enough to keep sending through warm-up, every window and a margin.
        return int(self.rate * (self.rate_warmup + self.rate_seconds + 5))


# -- the simulator, timing what it accepts --------------------------------------------------
class TimedSimulatorCore(SimulatorCore):
    """The simulator, also noting when each message was accepted (this process's monotonic
    clock, the one the benchmark launches campaigns by) and when watched numbers first
    reached it."""

    def __init__(self) -> None:
        # Twilio posts callbacks with far more concurrency than the simulator's default.
        super().__init__(
            ACCOUNT_SID, AUTH_TOKEN, callback_delay=0.05, callback_threads=CALLBACK_THREADS
        )
        self.accepted_at: list[float] = []
        self.watch: set[str] = set()
        self.first_seen: dict[str, float] = {}

    def create_message(
        self,
        account_sid: str,
        auth: tuple[str, str] | None,
        form: Mapping[str, str],
        *,
        simulate_latency: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        status, payload = super().create_message(
            account_sid, auth, form, simulate_latency=simulate_latency
        )
        if status == 201:
            now = time.monotonic()
            self.accepted_at.append(now)
            to = form.get("To", "")
            if to in self.watch:
                self.first_seen.setdefault(to, now)
        return status, payload

    def reset(self, *, config: bool = False) -> None:
        super().reset(config=config)
        self.accepted_at = []
        self.first_seen = {}


# -- processes -----------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc; psutil is not a dependency)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of ``pid`` in MB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_peak_rss(pid: int) -> dict[str, float]:
    """Peak RSS of a worker's main process and each of its pool processes, in MB."""
    peaks: dict[str, float] = {}
    main = peak_rss_mb(pid)
    if main is not None:
        peaks[f"main:{pid}"] = round(main, 1)
    for child in _children(pid):
        rss = peak_rss_mb(child)
        if rss is not None:
            peaks[f"child:{child}"] = round(rss, 1)
    return peaks


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def cpu_snapshot(groups: Mapping[str, list[int]]) -> dict[str, float]:
    """CPU seconds per group of processes."""
    return {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}


def _die_with_parent() -> None:
    """In a spawned process: SIGKILL it when the bench dies, even by SIGKILL, so no orphan
    worker is left consuming Redis DB 14 for the next run (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class BenchEnv:
    """Everything the figures run against; :meth:`close` removes all of it."""

    def __init__(self, settings: Settings, workdir: Path, say: Callable[[str], None]) -> None:
        self.say = say
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.admin_url, self.database_url, self.redis_url = _bench_targets(settings)
        self._created_db = False
        self.redis = _connect_redis(self.redis_url)
        self._lock_redis_db()
        self.redis.flushdb()
        self._take_lock()
        try:
            _check_postgres(self.admin_url)
            self.db_name = f"{DB_PREFIX}{uuid.uuid4().hex[:10]}"
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')
            self._created_db = True
            self.database_url = (
                make_url(self.database_url)
                .set(database=self.db_name)
                .render_as_string(hide_password=False)
            )
            self.core = TimedSimulatorCore()
            self.sim = SimulatorServer(self.core).start()
            self.api_port = free_port()
            self.api_url = f"http://127.0.0.1:{self.api_port}"
            self.runtime = Runtime(
                load_settings(
                    database_url=self.database_url,
                    broker_url=self.redis_url,
                    redis_url=self.redis_url,
                    provider="simulator",
                    twilio_auth_token=AUTH_TOKEN,
                    public_url=self.api_url,
                )
            )
            upgrade(self.runtime.engine)
            self.base_env = self._env()
        except BaseException:
            self.close()
            raise

    # -- one bench per Redis DB ---------------------------------------------------------
    LOCK = "riskcast:bench:running"

    def _lock_redis_db(self) -> None:
        """Refuse to flush a Redis DB another bench on this machine is using."""
        holder = self.redis.get(self.LOCK)
        if holder is None:
            return
        text_holder = holder.decode() if isinstance(holder, bytes) else str(holder)
        host, _, pid = text_holder.partition(":")
        alive = host != socket.gethostname() or Path(f"/proc/{pid}").exists()
        if alive:
            raise BenchError(
                f"another riskcast bench (pid {pid} on {host}) is using Redis DB "
                f"{BENCH_REDIS_DB}; wait for it to finish"
            )

    def _take_lock(self) -> None:
        self.redis.set(self.LOCK, f"{socket.gethostname()}:{os.getpid()}", ex=6 * 3600)

    # -- environment of the processes ---------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RISKCAST_", "TWILIO_")) or k == "RISKCAST_LOG_LEVEL"
        }
        env.update(
            {
                "RISKCAST_DATABASE_URL": self.database_url,
                "RISKCAST_BROKER_URL": self.redis_url,
                "RISKCAST_PROVIDER": "twilio",
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": FROM_NUMBER,
                "RISKCAST_TWILIO_BASE_URL": self.sim.url,
                "RISKCAST_PUBLIC_URL": self.api_url,
                "RISKCAST_SEND_RATE": "100000",
                "RISKCAST_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "workers.cli", *args],
                env={**self.base_env, **(env or {})},
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopping it takes its pool too
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_workers(
        self, n: int, concurrency: int, *, queues: str | None = None, rate: float | None = None
    ) -> list[Proc]:
        args = ["worker", "--concurrency", str(concurrency), "--loglevel", "WARNING"]
        if queues:
            args += ["--queues", queues]
        env = {"RISKCAST_SEND_RATE": str(rate)} if rate else None
        return [self.spawn("worker", *args, env=env) for _ in range(n)]

    def stop(self, procs: list[Proc], timeout: float = 20.0) -> None:
        """SIGTERM (a warm shutdown) to each process group, SIGKILL what outlives it."""
        live = [p for p in procs if p.popen.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in live:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(10)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)  # pool children left behind

    def check_alive(self, procs: list[Proc]) -> bool:
        """Raise if any of ``procs`` has exited; True otherwise (usable in a predicate)."""
        for proc in procs:
            if proc.popen.poll() is not None:
                raise BenchError(
                    f"{proc.name} exited with {proc.popen.returncode}: {self.tail(proc)}"
                )
        return True

    @staticmethod
    def tail(proc: Proc, size: int = 1500) -> str:
        try:
            return proc.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def start_services(self) -> None:
        """The API (callbacks land there) and the scheduler (Celery beat)."""
        self.api = self.spawn(
            "api",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.api_port),
            "--workers",
            str(API_PROCESSES),
            env={"RISKCAST_SECRET_KEY": secrets.token_hex(16)},
        )
        self.scheduler = self.spawn("scheduler", "scheduler")

        def api_up() -> bool:
            self.check_alive([self.api, self.scheduler])
            try:
                return requests.get(f"{self.api_url}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(api_up, 60, "the API to start", 0.1)

    def wait_worker_ready(self, procs: list[Proc], concurrency: int, timeout: float = 60) -> None:
        """Ready once every worker has its pool processes and Celery's consumer is up
        (the master registers in Redis's kombu bindings; a short settle covers the rest)."""

        def pools_up() -> bool:
            self.check_alive(procs)
            return all(len(_children(p.popen.pid)) >= concurrency for p in procs)

        wait_until(pools_up, timeout, "the workers to start", 0.1)
        time.sleep(1.0)

    def close(self) -> None:
        """Stop everything started and remove the database; safe on a half-made env."""
        self.stop(self.procs)
        if hasattr(self, "sim"):
            with contextlib.suppress(Exception):
                self.sim.stop()
        if hasattr(self, "core"):
            with contextlib.suppress(Exception):
                self.core.stop(drain=False)
        if hasattr(self, "runtime"):
            with contextlib.suppress(Exception):
                self.runtime.dispose()
        with contextlib.suppress(Exception):
            self.redis.flushdb()  # the lock goes with it
        if self._created_db:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn,
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    # -- data -------------------------------------------------------------------------------
    def pg(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(_libpq_url(self.database_url), autocommit=True)

    def seed(self, slug: str, first: int, n: int, *, create: bool = True) -> float:
        """``n`` active contacts in community ``slug`` by COPY; returns seconds taken."""
        started = time.perf_counter()
        if create:
            with self.runtime.session() as session:
                communities.add_community(session, slug, name=slug, language="lo")
        now = datetime.now(UTC).isoformat()
        with self.pg() as conn, conn.transaction():
            community_id = conn.execute(
                "SELECT id FROM community WHERE slug = %s", (slug,)
            ).fetchone()
            assert community_id is not None  # noqa: S101 - created above
            before = conn.execute("SELECT coalesce(max(id), 0) FROM contact").fetchone()
            assert before is not None  # noqa: S101
            with conn.cursor().copy(
                "COPY contact (phone, name, language, country, status, channel,"
                " created_at, updated_at) FROM STDIN"
            ) as copy:
                chunk: list[str] = []
                for i in range(first, first + n):
                    name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {i}"
                    chunk.append(
                        f"{phone(i)}\t{name}\t{LANGUAGES[i % 3]}\tLA\tactive\tsms\t{now}\t{now}\n"
                    )
                    if len(chunk) >= 10_000:
                        copy.write("".join(chunk))
                        chunk = []
                if chunk:
                    copy.write("".join(chunk))
            conn.execute(
                "INSERT INTO membership (contact_id, community_id, created_at)"
                " SELECT id, %s, now() FROM contact WHERE id > %s ORDER BY id",
                (community_id[0], before[0]),
            )
        with self.pg() as conn:
            conn.execute("ANALYZE contact")
            conn.execute("ANALYZE membership")
        return time.perf_counter() - started

    def campaign(self, slug: str, *, priority: str = "bulk", name: str = "bench") -> int:
        with self.runtime.session() as session:
            camp = campaigns.create_campaign(
                session,
                name=name,
                template_key=TEMPLATE_KEY,
                community_slugs=[slug],
                priority=priority,
            )
            if campaigns.needs_approval(session, camp):
                # The two-person rule (urgent, or above the threshold): a second official
                # approves the draft now, so the timed launch is the launch alone.
                campaigns.approve(session, camp.id, self._approver(session))
            return camp.id

    def _approver(self, session: Session) -> int:
        user = session.scalar(select(User).where(User.name == "bench-approver"))
        if user is None:
            user = auth.create_user(session, "bench-approver", role="official")
        return user.id

    def launch(self, campaign_id: int) -> float:
        """Schedule the campaign now; the monotonic time its launch committed."""
        with self.runtime.session() as session:
            campaigns.schedule(session, campaign_id)
        return time.monotonic()

    def cancel(self, campaign_id: int) -> None:
        with self.runtime.session() as session, contextlib.suppress(Exception):
            campaigns.cancel(session, campaign_id)

    def campaign_row(self, campaign_id: int) -> tuple[str, int]:
        with self.pg() as conn:
            row = conn.execute(
                "SELECT state, recipients FROM campaign WHERE id = %s", (campaign_id,)
            ).fetchone()
        assert row is not None  # noqa: S101
        return str(row[0]), int(row[1])

    def count(self, campaign_id: int, states: tuple[str, ...]) -> int:
        with self.runtime.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.campaign_id == campaign_id, Delivery.state.in_(states))
                )
                or 0
            )

    def reset_queues(self) -> None:
        """Drop queued tasks, leases and limiter state between figures."""
        self.redis.flushdb()
        self._take_lock()
        self.core.wait_for_callbacks(10)
        self.core.reset()


def _libpq_url(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _bench_targets(settings: Settings) -> tuple[str, str, str]:
    """(admin libpq URL, SQLAlchemy URL to rewrite, Redis URL on the bench DB)."""
    if not settings.database_url.startswith("postgresql"):
        raise BenchError(
            "RISKCAST_DATABASE_URL: riskcast bench needs PostgreSQL, e.g. "
            "postgresql://postgres@127.0.0.1:5432/postgres (it creates and drops a database "
            "of its own there)"
        )
    broker = settings.broker_url or ""
    if not broker.startswith(("redis://", "rediss://")):
        raise BenchError(
            "RISKCAST_BROKER_URL: riskcast bench needs Redis, e.g. redis://127.0.0.1:6379/0 "
            f"(it uses DB {BENCH_REDIS_DB} and flushes it)"
        )
    parts = urlsplit(broker)
    redis_url = urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", parts.query, ""))
    return _libpq_url(settings.database_url), settings.database_url, redis_url


def _check_postgres(admin_url: str) -> None:
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        where = make_url(admin_url).render_as_string(hide_password=True)
        raise BenchError(
            f"PostgreSQL is not reachable at {where} ({exc.__class__.__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'})"
        ) from None


def _connect_redis(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BenchError(
            f"Redis is not reachable at {url.rsplit('@', maxsplit=1)[-1]} ({exc.__class__.__name__}: {exc})"
        ) from None
    return client


# -- P1: fan-out -----------------------------------------------------------------------------
def measure_fanout(env: BenchEnv, slug: str, recipients: int) -> dict[str, Any]:
    """Launch to every delivery queued, with one worker on ``bulk`` (one pool process, so
    nothing sends while it fans out) and the scheduler ticking at its default interval."""
    campaign_id = env.campaign(slug, name=f"fan-out {recipients}")
    # One pool process on ``bulk`` fans out, so nothing sends until it is done (the
    # scheduler process claims the campaign and enqueues the fan-out there).
    worker = env.start_workers(1, 1, queues="bulk")
    env.wait_worker_ready(worker, 1)
    launched = env.launch(campaign_id)
    claimed: float | None = None

    def fanned_out() -> bool:
        nonlocal claimed
        env.check_alive(worker)
        state, created = env.campaign_row(campaign_id)
        if claimed is None and state != "scheduled":
            claimed = time.monotonic()
        return state not in ("scheduled", "fanning_out") and created >= recipients

    wait_until(fanned_out, max(120, recipients / 500), f"the fan-out of {recipients:,}", 0.05)
    seconds = time.monotonic() - launched
    rss = tree_peak_rss(worker[0].popen.pid)
    batches = int(env.redis.llen("bulk"))
    env.stop(worker)
    with env.runtime.session() as session:
        rendered = session.scalar(
            select(func.count())
            .select_from(CampaignMessage)
            .where(CampaignMessage.campaign_id == campaign_id)
        )
        parts = session.scalar(
            select(func.max(CampaignMessage.parts)).where(
                CampaignMessage.campaign_id == campaign_id
            )
        )
    return {
        "campaign_id": campaign_id,
        "recipients": recipients,
        "languages": len(LANGUAGES),
        "seconds": round(seconds, 3),
        "launch_to_claim_s": round((claimed or launched) - launched, 3),
        "deliveries_per_s": round(recipients / seconds, 1),
        "bodies_rendered": int(rendered or 0),
        "max_segments": int(parts or 0),
        "batches_queued": batches,
        "worker_peak_rss_mb": {"fan-out worker": rss},
        "max_worker_rss_mb": max(rss.values(), default=0.0),
    }


def measure_floor(env: BenchEnv, slug: str, rows: int) -> dict[str, Any]:
    """The floor: one server-side INSERT ... SELECT of ``rows`` delivery rows (same table,
    indexes and foreign keys as the fan-out writes), then rolled back."""
    with env.runtime.session() as session:
        camp = campaigns.create_campaign(
            session, name="floor", template_key=TEMPLATE_KEY, community_slugs=[slug]
        )
        message = CampaignMessage(
            campaign_id=camp.id,
            digest="floor",
            language="en",
            body="floor",
            encoding="GSM-7",
            parts=1,
        )
        session.add(message)
        session.flush()
        community_id = communities.get_by_slug(session, slug).id
        started = time.perf_counter()
        result = session.execute(
            text(
                "INSERT INTO delivery (campaign_id, contact_id, message_id, channel, state,"
                " batch, attempts, queued_at, created_at, updated_at)"
                " SELECT :campaign, c.id, :message, 'sms', 'queued',"
                " md5((c.id / 100)::text), 0, now(), now(), now()"
                " FROM contact c JOIN membership m ON m.contact_id = c.id"
                " WHERE m.community_id = :community AND c.status = 'active'"
                " ORDER BY c.id LIMIT :rows"
            ),
            {"campaign": camp.id, "message": message.id, "community": community_id, "rows": rows},
        )
        seconds = time.perf_counter() - started
        inserted = int(result.rowcount)  # type: ignore[attr-defined]
        session.rollback()
    return {"rows": inserted, "seconds": round(seconds, 3)}


# -- P2: send throughput ---------------------------------------------------------------------
def raw_sender(
    base_url: str, duration: float, index: int, status_callback: str | None = None
) -> tuple[int, float]:
    """One process of the raw ceiling: ``client.messages.create`` in a loop, as fast as the
    simulator answers (with ``status_callback``, each message asks for its callbacks).
    Says ``ready`` on stdout, waits for a start time (wall clock) on stdin, then returns how
    many it created in the window and its own CPU seconds."""
    from twilio.rest import Client  # noqa: PLC0415 - only the raw sender processes need it

    from workers.providers.twilio import BaseUrlHttpClient  # noqa: PLC0415

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=BaseUrlHttpClient(base_url, timeout=10.0))
    body = "Somchai 12: ກວດ COVID-19 ຟຣີ. ໂທ 1166."
    client.messages.create(to=phone(RAW_BASE + index * 100_000), from_=FROM_NUMBER, body=body)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    start_at = float(sys.stdin.readline())
    while time.time() < start_at:
        time.sleep(0.002)
    cpu_0 = sum(os.times()[:2])
    end = start_at + duration
    sent = 0
    while time.time() < end:
        client.messages.create(
            to=phone(RAW_BASE + index * 100_000 + sent % 100_000),
            from_=FROM_NUMBER,
            body=body,
            **({"status_callback": status_callback} if status_callback else {}),
        )
        sent += 1
    return sent, sum(os.times()[:2]) - cpu_0


def measure_raw(
    env: BenchEnv, processes: int, seconds: float, *, callbacks: bool = False
) -> dict[str, Any]:
    """The ceiling: ``processes`` processes (one thread each, as a prefork pool process)
    creating messages against the same simulator, with no queue and no database.

    With ``callbacks``, each message names the API's status callback URL (for a delivery
    that does not exist), so the simulator posts its two signed callbacks and the API
    checks and applies them: the ceiling of any design that takes Twilio's callbacks on
    this machine. Its rate is the lower of messages created and callbacks taken (halved).
    """
    env.core.reset()
    extra = [f"{env.api_url}{STATUS_PATH}?d=0"] if callbacks else []
    taken_0 = env.core.callbacks_delivered
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "workers.bench",
                "raw",
                env.sim.url,
                repr(seconds),
                str(i),
                *extra,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
        )
        for i in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdin is not None  # noqa: S101
            if proc.stdout.readline().strip() != "ready":
                raise BenchError(
                    f"a raw sender failed to start: {proc.stderr and proc.stderr.read()[-500:]}"
                )
        start_at = time.time() + 0.2
        sim_cpu_0 = sum(os.times()[:2])
        for proc in procs:
            assert proc.stdin is not None  # noqa: S101
            proc.stdin.write(f"{start_at!r}\n")
            proc.stdin.flush()
        counts, cpus = [], []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 60)
            if proc.returncode != 0:
                raise BenchError(f"a raw sender failed: {err.strip()[-500:]}")
            count, cpu = out.strip().splitlines()[-1].split()
            counts.append(int(count))
            cpus.append(float(cpu))
        sim_cpu = sum(os.times()[:2]) - sim_cpu_0
        callbacks_taken = env.core.callbacks_delivered - taken_0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    if callbacks:
        env.core.wait_for_callbacks(60)
    env.core.reset()
    total = max(1, sum(counts))
    per_s = sum(counts) / seconds
    if callbacks:
        per_s = min(per_s, callbacks_taken / 2 / seconds)
    return {
        "processes": processes,
        "threads_per_process": 1,
        "seconds": seconds,
        "requests": sum(counts),
        "with_callbacks": callbacks,
        "callbacks_taken": callbacks_taken if callbacks else None,
        "per_s": round(per_s, 1),
        "cpu_ms_per_request": {
            "senders (SDK)": round(1000 * sum(cpus) / total, 2),
            "bench + simulator": round(1000 * sim_cpu / total, 2),
        },
    }


def measure_send(
    env: BenchEnv, campaign_id: int, cfg: BenchConfig, raw: dict[str, Any]
) -> tuple[dict[str, Any], list[Proc]]:
    """Deliveries per second end to end (worker -> SDK -> simulator -> signed callback ->
    API -> database), sending the fanned-out campaign; the workers keep running for P3."""
    workers = env.start_workers(cfg.send_workers, cfg.send_concurrency)
    wait_until(
        lambda: env.check_alive(workers) and env.core.accepted_count > 0,
        90,
        "the first message to be sent",
    )
    time.sleep(cfg.send_warmup)
    groups = {
        "workers (Celery main)": [w.popen.pid for w in workers],
        "workers (pool)": [p for w in workers for p in _children(w.popen.pid)],
        "api": [env.api.popen.pid, *_children(env.api.popen.pid)],
        "postgres (all backends)": pids_named("postgres"),
        "redis": pids_named("redis-server"),
        "bench + simulator": [os.getpid()],
    }
    delivered_0 = env.count(campaign_id, ("delivered",))
    accepted_0 = env.core.accepted_count
    cpu_0 = cpu_snapshot(groups)
    started = time.monotonic()
    time.sleep(cfg.send_window)
    accepted_1 = env.core.accepted_count
    cpu_1 = cpu_snapshot(groups)
    delivered_1 = env.count(campaign_id, ("delivered",))
    window = time.monotonic() - started
    sent = max(1, accepted_1 - accepted_0)
    cpu_ms = {k: round(1000 * (cpu_1[k] - cpu_0[k]) / sent, 2) for k in groups}
    env.check_alive(workers)
    accepted_per_s = (accepted_1 - accepted_0) / window
    delivered_per_s = (delivered_1 - delivered_0) / window
    end_to_end = min(accepted_per_s, delivered_per_s)
    with_callbacks = raw.get("with_callbacks_ceiling", {}).get("per_s")
    return {
        "processes": cfg.send_workers * cfg.send_concurrency,
        "workers": cfg.send_workers,
        "concurrency": cfg.send_concurrency,
        "threads_per_process": 1,
        "window_s": round(window, 2),
        "accepted_per_s": round(accepted_per_s, 1),
        "delivered_per_s": round(delivered_per_s, 1),
        "per_s": round(end_to_end, 1),
        "raw_per_s": raw["per_s"],
        "raw": raw,
        "cpu_ms_per_delivery": cpu_ms,
        "cpu_ms_per_delivery_total": round(sum(cpu_ms.values()), 2),
        "machine_cpu_ms_per_s": round(1000 * sum(cpu_1[k] - cpu_0[k] for k in groups) / window, 0),
        "ratio": round(end_to_end / raw["per_s"], 3) if raw["per_s"] else 0.0,
        "ratio_of": "end-to-end deliveries/s (min of accepted and delivered) / raw creates/s",
        # The same loop with each message's two callbacks posted and taken by the API.
        "raw_with_callbacks_per_s": with_callbacks,
        "ratio_to_raw_with_callbacks": (
            round(end_to_end / with_callbacks, 3) if with_callbacks else None
        ),
        "target": f">= {TARGETS['send_ratio']} x raw",
        "meets_target": end_to_end >= TARGETS["send_ratio"] * raw["per_s"],
    }, workers


# -- P3: urgent latency ----------------------------------------------------------------------
def measure_urgent(
    env: BenchEnv, alert_campaigns: list[tuple[int, list[str]]], bulk_id: int, gap: float
) -> dict[str, Any]:
    """Launch the urgent alerts ``gap`` seconds apart while the bulk campaign sends; the
    latency of each is from its launch commit to its first request at the provider.

    Each latency is split into stages from the database's own timestamps: launch to the
    scheduler's claim (``launched_at``), claim to its deliveries written (fan-out), and
    written to the first provider request (send queue wait + send)."""
    env.core.watch = {p for _, phones in alert_campaigns for p in phones}
    env.core.first_seen = {}
    bulk_before = env.core.accepted_count
    # (campaign, phones, launch on the monotonic clock, launch on the wall clock)
    launched: list[tuple[int, list[str], float, float]] = []
    for campaign_id, phones in alert_campaigns:
        at = env.launch(campaign_id)
        launched.append((campaign_id, phones, at, time.time() - (time.monotonic() - at)))
        time.sleep(gap)

    def all_seen() -> bool:
        return all(any(p in env.core.first_seen for p in phones) for _, phones, _, _ in launched)

    wait_until(all_seen, 120, "every urgent alert to reach the provider")
    stages: dict[str, list[float]] = {"claim": [], "fanout": [], "send": []}
    latencies = []
    for campaign_id, phones, at, wall in launched:
        first = min(env.core.first_seen[p] for p in phones if p in env.core.first_seen)
        latencies.append(first - at)
        with env.pg() as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM c.launched_at),"
                " extract(epoch FROM min(d.created_at))"
                " FROM campaign c JOIN delivery d ON d.campaign_id = c.id"
                " WHERE c.id = %s GROUP BY c.launched_at",
                (campaign_id,),
            ).fetchone()
        if row is not None and row[0] is not None:
            claimed, written = float(row[0]), float(row[1])
            stages["claim"].append(claimed - wall)
            stages["fanout"].append(written - claimed)
            stages["send"].append((first - at) - (written - wall))
    latencies.sort()
    bulk_left = env.count(bulk_id, ("queued", "sending"))
    p95 = _percentile(latencies, 95)
    return {
        "alerts": len(latencies),
        "p50_s": round(_percentile(latencies, 50), 3),
        "p95_s": round(p95, 3),
        "max_s": round(latencies[-1], 3),
        "latencies_s": [round(x, 3) for x in latencies],
        "stages_mean_s": {
            k: round(statistics.fmean(v), 3) if v else None for k, v in stages.items()
        },
        "stages_max_s": {k: round(max(v), 3) if v else None for k, v in stages.items()},
        "bulk_sent_meanwhile": env.core.accepted_count - bulk_before,
        "bulk_still_queued_after": bulk_left,
        "ratio": round(p95 / TARGETS["urgent_p95_s"], 3),
        "ratio_of": "p95 / 2 s target (no in-run reference)",
        "target": "p95 <= 2 s",
        "meets_target": p95 <= TARGETS["urgent_p95_s"],
    }


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(values)))
    return values[rank - 1]


# -- P4: rate accuracy -----------------------------------------------------------------------
def measure_rate(env: BenchEnv, slug: str, cfg: BenchConfig) -> dict[str, Any]:
    """Messages accepted per 1-second window with the fleet-wide limit at ``cfg.rate`` and
    ``cfg.rate_workers`` worker processes sharing it."""
    campaign_id = env.campaign(slug, name="rate")
    workers = env.start_workers(cfg.rate_workers, cfg.rate_concurrency, rate=cfg.rate)
    env.wait_worker_ready(workers, cfg.rate_concurrency)
    env.core.reset()
    env.launch(campaign_id)
    wait_until(lambda: env.check_alive(workers) and env.core.accepted_at, 60, "the first send")
    t0 = env.core.accepted_at[0] + cfg.rate_warmup
    end = t0 + cfg.rate_seconds
    # The limiter is what holds sends back when its schedule runs ahead of now (sends wait
    # for their slot); when it lags behind, slots go unused: the fleet is too slow.
    # With every sender waiting for a slot the schedule runs about (senders / rate) ahead.
    leads: list[float] = []
    while time.monotonic() < end + 0.5:
        env.check_alive(workers)
        if t0 <= time.monotonic() < end:
            tat = env.redis.get(FLEET_KEY)
            secs, micros = env.redis.time()
            now_us = secs * 1_000_000 + micros
            leads.append(max(0.0, (int(tat) - now_us) / 1e6) if tat is not None else 0.0)
        time.sleep(0.2)
    senders = cfg.rate_workers * cfg.rate_concurrency
    lead = statistics.fmean(leads) if leads else 0.0
    stamps = list(env.core.accepted_at)
    windows = [0] * cfg.rate_seconds
    for stamp in stamps:
        if t0 <= stamp < end:
            windows[int(stamp - t0)] += 1
    env.cancel(campaign_id)
    env.stop(workers)
    mean = statistics.fmean(windows)
    error = abs(mean - cfg.rate) / cfg.rate
    return {
        "rate": cfg.rate,
        "workers": cfg.rate_workers,
        "concurrency": cfg.rate_concurrency,
        "seconds": cfg.rate_seconds,
        "windows": windows,
        "mean_per_s": round(mean, 2),
        "min_window": min(windows),
        "max_window": max(windows),
        "stdev": round(statistics.pstdev(windows), 2),
        "mean_error": round(error, 4),
        "limiter_lead_ms": round(1000 * lead, 1),
        "limiter_lead_if_saturated_ms": round(1000 * senders / cfg.rate, 1),
        "limited_by": "rate limiter" if lead >= 0.5 * senders / cfg.rate else "send capacity",
        "ratio": round(mean / cfg.rate, 4),
        "ratio_of": "mean per 1-s window / configured rate",
        "target": "mean within 5%, no window above 110",
        "meets_target": error <= TARGETS["rate_mean_tolerance"]
        and max(windows) <= TARGETS["rate_window_max"],
    }


# -- P5: import ------------------------------------------------------------------------------
IMPORTER = "broadcaster.importer"


def _write_csv(path: Path, rows: int) -> None:
    """Numbers as people type them (national format, spaces), three languages, a name."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["phone", "name", "language"])
        for i in range(rows):
            writer.writerow(
                [f"020 {5000 + i // 10000:04d} {i % 10000:04d}", f"Import {i}", LANGUAGES[i % 3]]
            )


def call_importer(env: BenchEnv, path: Path, community: str) -> dict[str, int]:
    """THE call site of the CSV importer (``broadcaster.importer.import_contacts``)."""
    module = importlib.import_module(IMPORTER)
    quiet = logging.getLogger(IMPORTER)
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # it logs progress every chunk at INFO
    try:
        with env.runtime.session() as session, path.open("rb") as stream:
            summary = module.import_contacts(
                session, stream, region="LA", default_community=community
            )
    finally:
        quiet.setLevel(level)
    return {
        "imported": int(summary.imported),
        "updated": int(summary.updated),
        "rejected": int(summary.rejected),
    }


def measure_import(env: BenchEnv, rows: int) -> dict[str, Any]:
    try:
        importlib.import_module(IMPORTER)
    except ImportError:
        return {
            "available": False,
            "rows": rows,
            "rows_per_s": None,
            "ratio": None,
            "note": f"not available: {IMPORTER}.import_contacts does not exist yet; "
            "workers.bench.call_importer is the one call site to switch on",
            "target": ">= 20,000 rows/s",
            "meets_target": None,
        }
    with env.runtime.session() as session:
        communities.add_community(session, "imported", name="imported", language="lo")
    path = env.workdir / "import.csv"
    _write_csv(path, rows)
    started = time.perf_counter()
    try:
        counts = call_importer(env, path, "imported")
    except Exception as exc:  # the importer is being written: report, do not crash the run
        return {
            "available": False,
            "rows": rows,
            "rows_per_s": None,
            "ratio": None,
            "note": f"importer failed: {exc.__class__.__name__}: {str(exc)[:200]}",
            "target": ">= 20,000 rows/s",
            "meets_target": None,
        }
    seconds = time.perf_counter() - started
    per_s = rows / seconds
    note = f"{counts['rejected']} rows rejected" if counts["rejected"] else ""
    return {
        "available": True,
        "note": note,
        "rows": rows,
        **counts,
        "seconds": round(seconds, 3),
        "rows_per_s": round(per_s, 1),
        "ratio": round(per_s / TARGETS["import_rows_per_s"], 3),
        "ratio_of": "rows/s / 20,000 target (no in-run reference)",
        "target": ">= 20,000 rows/s",
        "meets_target": per_s >= TARGETS["import_rows_per_s"] and not counts["rejected"],
    }


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Results:
    config: BenchConfig
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.figures, "meta": self.meta}


def _p1_figure(fan: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    ratio = fan["seconds"] / floor["seconds"] if floor["seconds"] else 0.0
    fan.update(
        {
            "floor_seconds": floor["seconds"],
            "floor_rows": floor["rows"],
            "ratio": round(ratio, 2),
            "ratio_of": "fan-out seconds / INSERT ... SELECT floor seconds",
            "target": "<= 10 s, <= 25 x floor, worker peak RSS <= 250 MB",
            "meets_target": fan["seconds"] <= TARGETS["fanout_seconds"]
            and ratio <= TARGETS["fanout_floor_ratio"]
            and fan["max_worker_rss_mb"] <= TARGETS["worker_rss_mb"],
        }
    )
    return fan


@contextlib.contextmanager
def bench_env(settings: Settings, say: Callable[[str], None]) -> Iterator[BenchEnv]:
    with tempfile.TemporaryDirectory(prefix="riskcast-bench-") as tmp:
        env: BenchEnv | None = None
        try:
            env = BenchEnv(settings, Path(tmp), say)
            yield env
        except BaseException:
            if env is not None:
                for proc in env.procs:
                    say(f"--- {proc.name} log (tail) ---\n{env.tail(proc)}")
            raise
        finally:
            if env is not None:
                env.close()


def _seed(
    env: BenchEnv, cfg: BenchConfig, say: Callable[[str], None]
) -> list[tuple[int, list[str]]]:
    """The audiences of the chosen figures; the urgent alert campaigns with their phones."""
    with env.runtime.session() as session:
        templates.save_template(session, parse_template(TEMPLATE))
    if cfg.wants("p1") or cfg.wants("p2") or cfg.wants("p3"):
        seed_s = env.seed("bench-everyone", BULK_BASE, cfg.recipients)
        say(f"seeded {cfg.recipients:,} contacts by COPY in {seed_s:.1f}s")
    if cfg.wants("p4"):
        env.seed("bench-rate", RATE_BASE, cfg.rate_audience)
    alert_campaigns: list[tuple[int, list[str]]] = []
    if cfg.wants("p3"):
        for k in range(cfg.alerts):
            first = ALERT_BASE + k * cfg.alert_size
            env.seed(f"bench-alert-{k:02d}", first, cfg.alert_size)
            alert_campaigns.append(
                (
                    env.campaign(f"bench-alert-{k:02d}", priority="urgent", name=f"alert {k}"),
                    [phone(first + j) for j in range(cfg.alert_size)],
                )
            )
    return alert_campaigns


def _bulk_figures(
    env: BenchEnv,
    cfg: BenchConfig,
    alert_campaigns: list[tuple[int, list[str]]],
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """P1, P2 and P3: fan the bulk campaign out, then send it with the alerts launched."""
    figures: dict[str, dict[str, Any]] = {}
    say(f"P1 fan-out of {cfg.recipients:,} recipients...")
    fan = measure_fanout(env, "bench-everyone", cfg.recipients)
    bulk_id = int(fan["campaign_id"])
    if cfg.wants("p1"):
        floor = measure_floor(env, "bench-everyone", cfg.recipients)
        say(f"   {fan['seconds']:.2f}s (floor {floor['seconds']:.2f}s)")
        figures["p1_fanout"] = _p1_figure(fan, floor)
    else:
        say(f"   {fan['seconds']:.2f}s")
    if not (cfg.wants("p2") or cfg.wants("p3")):
        # Nothing sends it: its queued batches must not reach the workers of later figures.
        env.cancel(bulk_id)
        env.reset_queues()
        return figures
    raw: dict[str, Any] = {"per_s": 0.0}
    if cfg.wants("p2"):
        say(f"P2 raw ceiling ({cfg.send_workers * cfg.send_concurrency} processes)...")
        raw = measure_raw(env, cfg.send_workers * cfg.send_concurrency, cfg.raw_seconds)
        say(f"   {raw['per_s']:.0f}/s; with status callbacks taken by the API...")
        raw["with_callbacks_ceiling"] = measure_raw(
            env, cfg.send_workers * cfg.send_concurrency, cfg.raw_seconds, callbacks=True
        )
        say(f"   {raw['with_callbacks_ceiling']['per_s']:.0f}/s; P2 end to end...")
    send, workers = measure_send(env, bulk_id, cfg, raw)
    if cfg.wants("p2"):
        say(f"   {send['per_s']:.0f}/s")
    if cfg.wants("p3"):
        say(f"P3 {cfg.alerts} urgent alerts during the bulk send...")
        figures["p3_urgent"] = measure_urgent(env, alert_campaigns, bulk_id, cfg.alert_gap)
    send["worker_peak_rss_mb"] = {
        f"worker{i}": tree_peak_rss(w.popen.pid) for i, w in enumerate(workers)
    }
    if cfg.wants("p2"):
        figures["p2_send"] = send
    env.cancel(bulk_id)
    env.stop(workers)
    env.reset_queues()
    return figures


def _scale_figure(env: BenchEnv, cfg: BenchConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """P1 again at ``cfg.scale_recipients`` (the bulk audience grown to that size)."""
    say(f"P1 at scale: fan-out of {cfg.scale_recipients:,} recipients...")
    env.seed(
        "bench-everyone",
        BULK_BASE + cfg.recipients,
        cfg.scale_recipients - cfg.recipients,
        create=False,
    )
    big = measure_fanout(env, "bench-everyone", cfg.scale_recipients)
    big_floor = measure_floor(env, "bench-everyone", cfg.scale_recipients)
    env.cancel(int(big["campaign_id"]))
    env.reset_queues()
    say(f"   {big['seconds']:.2f}s (floor {big_floor['seconds']:.2f}s)")
    return _p1_figure(big, big_floor)


def run_benchmark(
    settings: Settings, cfg: BenchConfig, say: Callable[[str], None] = print
) -> Results:
    """Measure the figures in ``cfg.only``. P2 sends the campaign P1 fans out and P3 runs
    during that send, so either of them fans the bulk campaign out first."""
    results = Results(cfg)
    started = time.monotonic()
    figures: dict[str, dict[str, Any]] = {}
    with bench_env(settings, say) as env:
        say(f"bench database {env.db_name}, Redis DB {BENCH_REDIS_DB}, simulator {env.sim.url}")
        alert_campaigns = _seed(env, cfg, say)
        env.start_services()
        if cfg.wants("p1") or cfg.wants("p2") or cfg.wants("p3"):
            figures.update(_bulk_figures(env, cfg, alert_campaigns, say))
        if cfg.wants("p4"):
            say(f"P4 rate accuracy at {cfg.rate}/s for {cfg.rate_seconds}s...")
            figures["p4_rate"] = measure_rate(env, "bench-rate", cfg)
            env.reset_queues()
        if cfg.scale and cfg.wants("p1"):
            scale_fig = _scale_figure(env, cfg, say)
            p1 = figures["p1_fanout"]
            p1["scale"] = scale_fig
            p1["meets_target"] = bool(
                p1["meets_target"] and scale_fig["max_worker_rss_mb"] <= TARGETS["worker_rss_mb"]
            )
        if cfg.wants("p5"):
            say(f"P5 import of {cfg.import_rows:,} CSV rows...")
            figures["p5_import"] = measure_import(env, cfg.import_rows)
    results.figures = {key: figures[key] for key in SUMMARY_ROWS if key in figures}
    results.meta = {
        "quick": cfg.quick,
        "scale": cfg.scale,
        "only": sorted(cfg.only),
        "recipients": cfg.recipients,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "seconds": round(time.monotonic() - started, 1),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return results


# -- output ------------------------------------------------------------------------------------
def _p1_row(p1: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    measured = f"{p1['recipients']:,} in {p1['seconds']:.2f}s; worker peak {p1['max_worker_rss_mb']:.0f} MB"
    if "scale" in p1:
        s = p1["scale"]
        measured += (
            f"\n{s['recipients']:,} in {s['seconds']:.2f}s; worker peak "
            f"{s['max_worker_rss_mb']:.0f} MB (floor {s['floor_seconds']:.2f}s)"
        )
    return (
        "P1 fan-out",
        measured,
        f"INSERT…SELECT {p1['floor_rows']:,}: {p1['floor_seconds']:.2f}s",
        f"{p1['ratio']:.1f}x",
        "<= 10 s, <= 25x, <= 250 MB",
    )


def _p2_row(p2: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        "P2 send",
        f"{p2['per_s']:.0f}/s end to end (accepted {p2['accepted_per_s']:.0f}/s, "
        f"delivered {p2['delivered_per_s']:.0f}/s)",
        f"raw {p2['raw_per_s']:.0f}/s ({p2['processes']} processes x 1 thread)"
        + (
            f"; with callbacks {p2['raw_with_callbacks_per_s']:.0f}/s"
            if p2.get("raw_with_callbacks_per_s")
            else ""
        ),
        f"{p2['ratio']:.2f}",
        ">= 0.6x raw",
    )


def _p3_row(p3: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        "P3 urgent",
        f"p50 {p3['p50_s']:.2f}s, p95 {p3['p95_s']:.2f}s, max {p3['max_s']:.2f}s "
        f"({p3['alerts']} alerts)",
        "—",
        f"{p3['ratio']:.2f}",
        "p95 <= 2 s",
    )


def _p4_row(p4: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        "P4 rate",
        f"mean {p4['mean_per_s']:.1f}/s, windows {p4['min_window']}-{p4['max_window']} "
        f"({p4['seconds']} x 1 s, {p4['workers']} workers)",
        f"configured {p4['rate']}/s",
        f"{p4['ratio']:.3f}",
        "±5%, max <= 110",
    )


def _p5_row(p5: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        "P5 import",
        f"{p5['rows_per_s']:,.0f} rows/s ({p5['rows']:,} rows)"
        if p5.get("available")
        else str(p5.get("note", "not available")),
        "—",
        f"{p5['ratio']:.2f}" if p5.get("ratio") is not None else "—",
        ">= 20,000 rows/s",
    )


SUMMARY_ROWS: dict[str, Callable[[Mapping[str, Any]], tuple[str, str, str, str, str]]] = {
    "p1_fanout": _p1_row,
    "p2_send": _p2_row,
    "p3_urgent": _p3_row,
    "p4_rate": _p4_row,
    "p5_import": _p5_row,
}


def summary_rows(results: Results) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, measured, in-run reference, ratio, target, result) per measured figure."""

    def verdict(fig: Mapping[str, Any]) -> str:
        met = fig.get("meets_target")
        return "n/a" if met is None else ("pass" if met else "FAIL")

    return [
        (*row(results.figures[key]), verdict(results.figures[key]))
        for key, row in SUMMARY_ROWS.items()
        if key in results.figures
    ]


def table(results: Results) -> Table:
    """The figures as a Rich table."""
    out = Table(title="riskcast bench" + (" (--quick: smoke run)" if results.config.quick else ""))
    for column in ("figure", "measured", "in-run reference", "ratio", "target", "result"):
        out.add_column(column, overflow="fold")
    for row in summary_rows(results):
        style = {"pass": "green", "FAIL": "red"}.get(row[-1], "")
        out.add_row(*row[:-1], f"[{style}]{row[-1]}[/{style}]" if style else row[-1])
    return out


def write_json(results: Results, path: str | Path) -> None:
    Path(path).write_text(json.dumps(results.as_json(), indent=2, ensure_ascii=False) + "\n")


def _raw_main(argv: list[str]) -> None:
    base_url, duration, index, *callback = argv
    sent, cpu = raw_sender(base_url, float(duration), int(index), *callback)
    sys.stdout.write(f"{sent} {cpu:.3f}\n")


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "raw":
        _raw_main(sys.argv[2:])
    else:
        sys.stderr.write("usage: riskcast bench (this module's own entry is for raw senders)\n")
        raise SystemExit(2)
