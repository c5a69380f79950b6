"""What a run measures against, made fresh and removed afterwards: a PostgreSQL database
and a Redis DB of its own, the HTTP Twilio simulator (in this process, noting when it
accepts each message), the template and synthetic contacts the campaigns go to, and the
processes started through :class:`bench.processes.Supervisor`.

Phone numbers are never printed: the contacts are synthetic, and only counts and timings
leave the bench.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.config import BenchError
from bench.processes import Proc, Supervisor, free_port
from broadcaster.campaigns import service as campaigns
from broadcaster.communities import service as communities
from broadcaster.config import Settings, load_settings
from broadcaster.errors import IllegalState
from broadcaster.models import Delivery, User
from broadcaster.runtime import Runtime
from broadcaster.schema import upgrade
from broadcaster.users import auth
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.server import SimulatorServer

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token"  # noqa: S105 - the benchmark simulator's own throwaway secret
FROM_NUMBER = "+15005550006"
BENCH_REDIS_DB = 14
DB_PREFIX = "riskcast_bench_"
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


def phone(n: int) -> str:
    return f"+85620{n:08d}"


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


# -- the environment -------------------------------------------------------------------------
class BenchEnv:
    """Everything the figures run against; :meth:`close` removes all of it."""

    LOCK = "riskcast:bench:running"

    def __init__(self, settings: Settings, workdir: Path, say: Callable[[str], None]) -> None:
        self.say = say
        self.workdir = workdir
        self.admin_url, self.database_url, self.redis_url = _bench_targets(settings)
        self._created_db = False
        self.campaign_ids: list[int] = []
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
            self.processes = Supervisor(workdir, self._env())
        except BaseException:
            self.close()
            raise

    # -- one bench per Redis DB ---------------------------------------------------------
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

    # -- the processes ------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        """The environment of every process started: this database, Redis DB and simulator."""
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

    def start_services(self) -> None:
        """The API (callbacks land there) and the scheduler."""
        self.api, self.scheduler = self.processes.start_services(self.api_port)

    def recover(self) -> None:
        """After a figure failed: stop the workers it started, cancel the campaigns still
        going and empty the queues, so the next figure starts as if it had not run."""
        self.processes.stop(self.processes.workers())
        for campaign_id in self.campaign_ids:
            self.cancel(campaign_id)
        self.reset_queues()

    def close(self) -> None:
        """Stop everything started and remove the database; safe on a half-made env."""
        if hasattr(self, "processes"):
            self.processes.stop(self.processes.procs)
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

    def logs(self) -> Iterator[Proc]:
        """Every process started, for its log."""
        yield from (self.processes.procs if hasattr(self, "processes") else [])

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
            self.campaign_ids.append(camp.id)
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
        """Cancel the campaign unless it is over already."""
        with self.runtime.session() as session, contextlib.suppress(IllegalState):
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


@contextlib.contextmanager
def bench_env(settings: Settings, say: Callable[[str], None]) -> Iterator[BenchEnv]:
    """A :class:`BenchEnv` in a temporary directory; on an error, the tail of every process's
    log is said before everything is removed."""
    with tempfile.TemporaryDirectory(prefix="riskcast-bench-") as tmp:
        env: BenchEnv | None = None
        try:
            env = BenchEnv(settings, Path(tmp), say)
            yield env
        except BaseException:
            if env is not None:
                for proc in env.logs():
                    say(f"--- {proc.name} log (tail) ---\n{proc.tail()}")
            raise
        finally:
            if env is not None:
                env.close()


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
