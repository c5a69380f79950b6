"""`riskcast scheduler --heartbeat-file` and `riskcast health scheduler`: the container
healthcheck passes while the scheduler ticks and fails once it stops or stalls."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broadcaster.config import load_settings
from broadcaster.runtime import Runtime
from tests.services import migrated_database
from tests.stack import wait_for
from workers.cli import app
from workers.context import Context
from workers.leases import MemoryLeases
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.ratelimit import MemoryRateLimiter
from workers.scheduler import run_scheduler


def health(path: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["health", "scheduler", str(path), *extra])
    return result.exit_code, result.output


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    with migrated_database("sqlite", str(tmp_path)) as (url, _engine):
        runtime = Runtime(load_settings(database_url=url, scheduler_interval=0.05))
        core = SimulatorCore("AC" + "3" * 32, "t", deliver_callbacks=False)
        yield Context(
            runtime=runtime,
            provider=SimulatorProvider(
                core, account_sid="AC" + "3" * 32, auth_token="t", from_number="+15005550006"
            ),
            limiter=MemoryRateLimiter(10),
            leases=MemoryLeases(),
            enqueue=lambda *_: None,
        )
        core.stop(drain=False)
        runtime.dispose()


def test_healthy_while_the_scheduler_ticks_unhealthy_once_it_stops(
    context: Context, tmp_path: Path
) -> None:
    beat = tmp_path / "scheduler.alive"
    assert health(beat)[0] == 1  # not started yet

    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler, args=(context, stop), kwargs={"heartbeat": beat}, daemon=True
    )
    thread.start()
    try:
        wait_for(beat.exists, 10, "the first heartbeat")
        # An old heartbeat is renewed by the next tick of a running scheduler.
        long_ago = time.time() - 3600
        os.utime(beat, (long_ago, long_ago))
        wait_for(lambda: beat.stat().st_mtime > long_ago, 10, "the heartbeat to be renewed")
        code, output = health(beat)
        assert code == 0, output
        assert "scheduler alive" in output
    finally:
        stop.set()
        thread.join(10)

    assert not thread.is_alive()
    code, output = health(beat)
    assert code == 1
    assert "no heartbeat" in output


def test_a_heartbeat_older_than_the_limit_is_unhealthy(tmp_path: Path) -> None:
    beat = tmp_path / "scheduler.alive"
    beat.touch()
    two_minutes_ago = time.time() - 120
    os.utime(beat, (two_minutes_ago, two_minutes_ago))

    code, output = health(beat)
    assert code == 1
    assert "last ticked 120s ago" in output
    assert health(beat, "--max-age", "300")[0] == 0
