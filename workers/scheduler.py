"""The scheduler: runs the tick and the reconciler itself, on a clock, in its own process.

Celery beat would only publish tick messages into queues that the same workers drain; under
a bulk backlog every worker slot is busy with sends, the tick messages wait (or expire), and
a due urgent campaign waits with them. Here the ticks are plain function calls in the
scheduler process, so they run on time whatever the queues hold. Several schedulers may run
(a Redis lock makes one of them do each tick, and the database claims are exact anyway).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

from workers.context import Context
from workers.pipeline import apply_retention, reconcile, start_due, tick
from workers.wakeup import DueListener

log = logging.getLogger(__name__)


def _guarded(name: str, work: Callable[[], object]) -> None:
    try:
        work()
    except Exception:
        # A database or Redis outage must not end the scheduler: log and try next time.
        log.exception("%s failed; trying again at the next interval", name)


def _locked(ctx: Context, name: str, ttl: float) -> bool:
    try:
        return ctx.leases.try_lock(name, ttl)
    except Exception:
        log.warning("%s skipped: the lock could not be taken (Redis unreachable?)", name)
        return False


def _touch(path: Path, failing: bool) -> bool:
    """Touch the heartbeat file; whether it failed (logged once per failing spell)."""
    try:
        path.touch()
    except OSError as exc:
        if not failing:
            log.warning("scheduler heartbeat %s not written: %s", path, exc.strerror or exc)
        return True
    return False


def run_scheduler(ctx: Context, stop: threading.Event, *, heartbeat: Path | None = None) -> None:
    """Tick every ``scheduler_interval``, reconcile every ``reconcile_interval`` and, with
    ``retention_days`` set, erase inactive contacts every ``retention_interval``, until
    ``stop`` is set; between them, claim a launched campaign as soon as it is announced
    (:mod:`workers.wakeup`). With ``heartbeat``, touch that file at every tick (whichever
    scheduler took the tick's lock) and remove it on the way out, so a healthcheck can tell
    that this scheduler still turns (``riskcast health scheduler``)."""
    settings = ctx.settings
    listener = DueListener(settings.database_url)
    beat_failing = False
    next_tick = next_reconcile = time.monotonic()
    # Retention runs only when configured (and first at start-up).
    next_retention = time.monotonic() if settings.retention_days is not None else math.inf
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                if _locked(ctx, "tick", settings.scheduler_interval * 0.8):
                    _guarded("tick", lambda: tick(ctx))
                next_tick = now + settings.scheduler_interval
                if heartbeat is not None:
                    beat_failing = _touch(heartbeat, beat_failing)
            if now >= next_reconcile:
                if _locked(ctx, "reconcile", settings.reconcile_interval * 0.8):
                    _guarded("reconcile", lambda: reconcile(ctx))
                next_reconcile = now + settings.reconcile_interval
            if now >= next_retention:
                if _locked(ctx, "retention", settings.retention_interval * 0.8):
                    _guarded("retention", lambda: apply_retention(ctx))
                next_retention = now + settings.retention_interval
            wait = max(0.0, min(next_tick, next_reconcile, next_retention) - time.monotonic())
            if listener.wait(wait, stop):
                # A launch was committed: claim it now (no lock: claims are exact).
                _guarded("start", lambda: start_due(ctx))
    finally:
        listener.close()
        if heartbeat is not None:
            with contextlib.suppress(OSError):
                heartbeat.unlink(missing_ok=True)


def start_in_thread(ctx: Context) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(ctx, stop), name="scheduler", daemon=True)
    thread.start()
    return thread, stop
