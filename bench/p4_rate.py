"""P4, rate accuracy: accepted messages per 1-second window at ``RISKCAST_SEND_RATE=100``
with three worker processes sharing the fleet-wide limit."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.config import TARGETS, BenchConfig
from bench.environment import BenchEnv
from bench.processes import wait_until
from workers.ratelimit import FLEET_KEY


def measure_rate(env: BenchEnv, slug: str, cfg: BenchConfig) -> dict[str, Any]:
    """Messages accepted per 1-second window with the fleet-wide limit at ``cfg.rate`` and
    ``cfg.rate_workers`` worker processes sharing it."""
    campaign_id = env.campaign(slug, name="rate")
    workers = env.processes.start_workers(cfg.rate_workers, cfg.rate_concurrency, rate=cfg.rate)
    env.processes.wait_worker_ready(workers, cfg.rate_concurrency)
    env.core.reset()
    env.launch(campaign_id)
    wait_until(
        lambda: env.processes.check_alive(workers) and env.core.accepted_at, 60, "the first send"
    )
    t0 = env.core.accepted_at[0] + cfg.rate_warmup
    end = t0 + cfg.rate_seconds
    # The limiter is what holds sends back when its schedule runs ahead of now (sends wait
    # for their slot); when it lags behind, slots go unused: the fleet is too slow.
    # With every sender waiting for a slot the schedule runs about (senders / rate) ahead.
    leads: list[float] = []
    while time.monotonic() < end + 0.5:
        env.processes.check_alive(workers)
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
    env.processes.stop(workers)
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
