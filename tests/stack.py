"""A whole riskcast on this machine for pipeline tests: real worker and scheduler processes
on real Redis, a real database, the HTTP Twilio simulator (spoken to by the real twilio SDK)
and the API receiving the simulator's signed status callbacks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import insert, select

from broadcaster.campaigns import service as campaigns
from broadcaster.communities import service as communities
from broadcaster.config import load_settings
from broadcaster.db import utcnow
from broadcaster.models import Community, Contact, Membership
from broadcaster.runtime import Runtime
from broadcaster.templates import service as templates
from broadcaster.users import auth
from broadcaster.web.app import create_app
from messages import parse_template
from tests.factories import THREE_LANGUAGES
from tests.services import REDIS_URL, migrated_database, redis_client
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.server import SimulatorServer

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
FROM_NUMBER = "+15005550006"
ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class ApiServer:
    """The API on a loopback port bound at once, so its URL is known before it starts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, runtime: Runtime) -> ApiServer:
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(runtime), log_level="warning", lifespan="off", log_config=None
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "the API to start", 0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class Stack:
    def __init__(
        self,
        tmp_path: Path,
        *,
        db: str = "postgresql",
        env: dict[str, str] | None = None,
        sim: dict[str, Any] | None = None,
    ) -> None:
        """``sim``: the simulator's configuration (``queue_delay``, ``answer_delay``...)."""
        self.tmp_path = tmp_path
        self.db_kind = db
        self.redis = redis_client()
        self.redis.flushdb()
        self._db = migrated_database(db, str(tmp_path))
        self.database_url, self.engine = self._db.__enter__()
        self.core = SimulatorCore(
            ACCOUNT_SID, AUTH_TOKEN, **{"callback_delay": 0.05, **(sim or {})}
        )
        self.sim = SimulatorServer(self.core).start()
        self.env = {
            **os.environ,
            "RISKCAST_DATABASE_URL": self.database_url,
            "RISKCAST_BROKER_URL": REDIS_URL,
            "RISKCAST_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "RISKCAST_TWILIO_BASE_URL": self.sim.url,
            "RISKCAST_SCHEDULER_INTERVAL": "0.5",
            "RISKCAST_RECONCILE_INTERVAL": "2",
            "RISKCAST_SENDING_TIMEOUT": "5",
            "RISKCAST_SEND_RATE": "2000",
            "RISKCAST_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.env.pop("RISKCAST_PUBLIC_URL", None)
        # The API in this process receives the simulator's callbacks.
        self.api = ApiServer()
        self.runtime = Runtime(
            load_settings(
                database_url=self.database_url,
                twilio_auth_token=AUTH_TOKEN,
                public_url=self.api.url,
            )
        )
        self.api.start(self.runtime)
        self.env["RISKCAST_PUBLIC_URL"] = self.api.url
        # The CLI runs as a signed-in admin (its own login file would be the tester's).
        with self.runtime.session() as session:
            _row, token = auth.issue_token(session, auth.create_user(session, "sam", role="admin"))
        self.env["RISKCAST_TOKEN"] = token
        self.env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    # -- processes -----------------------------------------------------------------
    def spawn(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", *args],
                env=self.env,
                cwd=self.tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 takes its children
            )
        self.processes.append(proc)
        return proc

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self.spawn(
            "worker", "--concurrency", str(concurrency), "--loglevel", "WARNING", name="worker"
        )

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        return self.spawn("scheduler", name="scheduler")

    @staticmethod
    def kill9(proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "workers.cli", *args],
            env=self.env,
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"riskcast {' '.join(args)} failed: {result.stderr}{result.stdout}"
            )
        return result

    def status(self, campaign_id: int) -> dict[str, Any]:
        with self.runtime.session() as session:
            return campaigns.status(session, campaign_id)

    def wait_completed(
        self, campaign_id: int, timeout: float = 120, *, delivered: int | None = None
    ) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            st = self.status(campaign_id)
            if st["state"] != "completed":
                return None
            if delivered is not None and st["counts"]["delivered"] < delivered:
                return None
            return st

        return wait_for(done, timeout, f"campaign {campaign_id} to complete")

    def dump_logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs if p.exists()
        )

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        self.api.stop()
        self.sim.stop()
        # Messages held in the simulated Twilio queue (a long queue_delay) are not waited for.
        self.core.stop(drain=False)
        self.runtime.dispose()
        self._db.__exit__(None, None, None)
        self.redis.flushdb()


@contextlib.contextmanager
def running_stack(tmp_path: Path, **kwargs: Any) -> Iterator[Stack]:
    """A :class:`Stack` for the length of the block, stopped afterwards; its processes' logs
    are printed if the block fails."""
    stack = Stack(tmp_path, **kwargs)
    try:
        yield stack
    except Exception:
        print(stack.dump_logs())
        raise
    finally:
        stack.stop()


def write_template(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False))  # JSON is YAML
    return path


# -- data and faults for pipeline tests ------------------------------------------------
PG_RESTART = "pg_ctlcluster --skip-systemctl-redirect {version} main restart"
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def seed_audience(stack: Stack, n: int, *, slug: str = "district", first: int = 0) -> list[str]:
    """``n`` active Lao contacts in community ``slug`` (made if missing), inserted in bulk."""

    phones = [f"+856205{first + i:07d}" for i in range(n)]
    with stack.runtime.session() as session:
        community_id = session.scalar(select(Community.id).where(Community.slug == slug))
        if community_id is None:
            community_id = communities.add_community(session, slug, name=slug, language="lo").id
        now = utcnow()
        ids = (
            session.execute(
                insert(Contact).returning(Contact.id),
                [
                    {
                        "phone": p,
                        "language": "lo",
                        "country": "LA",
                        "status": "active",
                        "channel": "sms",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for p in phones
                ],
            )
            .scalars()
            .all()
        )
        session.execute(
            insert(Membership),
            [{"contact_id": i, "community_id": community_id, "created_at": now} for i in ids],
        )
    return phones


def launch_campaign(
    stack: Stack, slug: str = "district", *, priority: str = "bulk", key: str = "covid-test"
) -> int:

    with stack.runtime.session() as session:
        templates.save_template(session, parse_template(THREE_LANGUAGES))
        camp = campaigns.create_campaign(
            session,
            name=f"{priority} campaign",
            template_key=key,
            community_slugs=[slug],
            priority=priority,
        )
        if campaigns.needs_approval(session, camp):
            # The two-person rule: an urgent (or large) campaign is approved by an admin first.
            approver = auth.create_user(session, f"approver-{camp.id}", role="admin")
            campaigns.approve(session, camp.id, approver.id)
        campaigns.schedule(session, camp.id)
        return camp.id


def restart_postgresql() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(PG_RESTART.format(version=version).split(), check=True, timeout=120)
    wait_for(
        lambda: (
            subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0
        ),
        60,
        "PostgreSQL",
    )


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], check=False, timeout=30)
    wait_for(
        lambda: (
            subprocess.run(["redis-cli", "ping"], capture_output=True, check=False).returncode != 0
        ),
        30,
        "Redis to stop",
    )
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(REDIS_START, check=True, timeout=30)
    wait_for(
        lambda: (
            subprocess.run(["redis-cli", "ping"], capture_output=True, check=False).returncode == 0
        ),
        30,
        "Redis to start",
    )


@contextlib.contextmanager
def api_process(
    cwd: Path, database_url: str, **settings: str
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """`riskcast api` in a process of its own on a free port, on ``database_url``, with
    ``RISKCAST_<NAME>`` settings: (port, process, the file its output goes to), once it
    answers /healthz; stopped afterwards."""
    import httpx  # noqa: PLC0415 - only the tests that start a server need it

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RISKCAST_", "TWILIO_"))},
        "RISKCAST_DATABASE_URL": database_url,
        **{f"RISKCAST_{k.upper()}": v for k, v in settings.items()},
    }
    log = cwd / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "api", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the API to start")
        yield port, proc, log
    finally:
        proc.terminate()
        proc.wait(10)
