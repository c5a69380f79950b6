"""Workers alive, from real ``riskcast worker`` processes on real Redis: a worker shows up
once it is ready (in ``GET /api/v1/workers``' store and ``riskcast queue``), and drops out
when it stops, at once on a clean stop and within three heartbeats when it is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.monitoring.service import MISSED_BEATS, WorkerBeat, workers_alive
from tests.services import REDIS_URL
from tests.stack import Stack, running_stack, wait_for

pytestmark = pytest.mark.pipeline

INTERVAL = 0.5


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(
        tmp_path, db="sqlite", env={"RISKCAST_HEARTBEAT_INTERVAL": str(INTERVAL)}
    ) as s:
        yield s


def beat_of(proc: subprocess.Popen[bytes]) -> WorkerBeat | None:
    seen = workers_alive(REDIS_URL)
    assert seen.error is None, seen.error
    return next((w for w in seen.workers if w.pid == proc.pid), None)


def test_a_worker_is_alive_while_it_runs_and_gone_once_stopped(stack: Stack) -> None:
    worker = stack.start_worker(concurrency=2)
    beat = wait_for(lambda: beat_of(worker), 60, "the worker's first heartbeat")
    assert beat.queues == ("bulk", "control", "urgent")
    assert beat.concurrency == 2 and beat.hostname.startswith("celery@")
    assert beat.started_at <= beat.seen_at

    # it keeps beating
    later = wait_for(
        lambda: (b := beat_of(worker)) is not None and b.seen_at > beat.seen_at and b,
        10,
        "a second heartbeat",
    )
    assert later.started_at == beat.started_at

    # riskcast queue shows it
    shown = json.loads(stack.cli("queue", "--json").stdout)
    assert shown["workers_error"] is None
    assert worker.pid in [w["pid"] for w in shown["workers"]]
    assert shown["workers_alive"] >= 1
    assert "workers alive:" in stack.cli("queue").stdout

    # a clean stop removes it at once
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(30)
    assert beat_of(worker) is None


def test_a_killed_worker_drops_out_when_its_heartbeat_expires(stack: Stack) -> None:
    worker = stack.start_worker(concurrency=1)
    wait_for(lambda: beat_of(worker), 60, "the worker's first heartbeat")
    stack.kill9(worker)
    killed_at = time.monotonic()
    wait_for(lambda: beat_of(worker) is None, 10, "the heartbeat to expire")
    assert time.monotonic() - killed_at <= INTERVAL * MISSED_BEATS + 1.5
