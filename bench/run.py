"""One run: build the environment, seed the audiences, start the services, measure the
chosen figures in order and collect them. P2 sends the campaign P1 fans out and P3 runs
during that send, so any of the three fans the bulk campaign out first.

A figure that raises has failed: its traceback is said, its row reads ``ERROR`` with the
error, and the run goes on with the next figure once the environment is put back
(:meth:`~bench.environment.BenchEnv.recover`); ``riskcast bench`` then exits 1. An
environment that cannot be built (a service missing) ends the run with
:class:`~bench.config.BenchError`.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import p1_fanout
from bench.config import FIGURE_KEYS, TARGETS, BenchConfig, BenchError
from bench.environment import (
    ALERT_BASE,
    BENCH_REDIS_DB,
    BULK_BASE,
    RATE_BASE,
    TEMPLATE,
    BenchEnv,
    bench_env,
    phone,
)
from bench.p2_send import measure_raw, measure_send
from bench.p3_urgent import measure_urgent
from bench.p4_rate import measure_rate
from bench.p5_import import measure_import
from bench.processes import tree_peak_rss
from bench.report import FIGURES, Results, failure
from broadcaster.config import Settings
from broadcaster.templates import service as templates
from messages import parse_template

Figures = dict[str, dict[str, Any]]
Say = Callable[[str], None]


def _seed(env: BenchEnv, cfg: BenchConfig, say: Say) -> list[tuple[int, list[str]]]:
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
    figures: Figures,
    say: Say,
) -> None:
    """P1, P2 and P3: fan the bulk campaign out, then send it with the alerts launched;
    each figure goes into ``figures`` as soon as it is measured."""
    say(f"P1 fan-out of {cfg.recipients:,} recipients...")
    fan = p1_fanout.measure_fanout(env, "bench-everyone", cfg.recipients)
    bulk_id = int(fan["campaign_id"])
    if cfg.wants("p1"):
        floor = p1_fanout.measure_floor(env, "bench-everyone", cfg.recipients)
        say(f"   {fan['seconds']:.2f}s (floor {floor['seconds']:.2f}s)")
        figures["p1_fanout"] = p1_fanout.figure(fan, floor)
    else:
        say(f"   {fan['seconds']:.2f}s")
    if not (cfg.wants("p2") or cfg.wants("p3")):
        # Nothing sends it: its queued batches must not reach the workers of later figures.
        env.cancel(bulk_id)
        env.reset_queues()
        return
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
    env.processes.stop(workers)
    env.reset_queues()


def _scale(env: BenchEnv, cfg: BenchConfig, p1: dict[str, Any], say: Say) -> None:
    """P1 at ``cfg.scale_recipients``, into the P1 figure."""
    scale_fig = p1_fanout.measure_scale(env, cfg, say)
    p1["scale"] = scale_fig
    p1["meets_target"] = bool(
        p1["meets_target"] and scale_fig["max_worker_rss_mb"] <= TARGETS["worker_rss_mb"]
    )


def _attempt(env: BenchEnv, measure: Callable[[], None], say: Say) -> Exception | None:
    """Run ``measure``; if it raises, say why, put the environment back for the next
    figure, and return the exception for the report (the failure is reported, not lost)."""
    try:
        measure()
    except Exception as exc:  # becomes the figure's ERROR row and the exit code 1
        detail = str(exc) if isinstance(exc, BenchError) else traceback.format_exc()
        say(f"   failed: {detail}")
        env.recover()
        return exc
    return None


def _measure(
    env: BenchEnv,
    cfg: BenchConfig,
    figures: Figures,
    group: tuple[str, ...],
    measure: Callable[[], None],
    say: Say,
) -> None:
    """Run ``measure``, which puts the figures of ``group`` into ``figures``; those of them
    it did not measure before it raised are reported failed with its error."""
    error = _attempt(env, measure, say)
    if error is not None:
        for figure in group:
            if cfg.wants(figure):
                figures.setdefault(FIGURE_KEYS[figure], failure(error))


def _rate_figure(env: BenchEnv, cfg: BenchConfig, figures: Figures) -> None:
    figures["p4_rate"] = measure_rate(env, "bench-rate", cfg)
    env.reset_queues()


def run_benchmark(settings: Settings, cfg: BenchConfig, say: Say = print) -> Results:
    """Measure the figures in ``cfg.only``."""
    results = Results(cfg)
    started = time.monotonic()
    figures: Figures = {}
    with bench_env(settings, say) as env:
        say(f"bench database {env.db_name}, Redis DB {BENCH_REDIS_DB}, simulator {env.sim.url}")
        alert_campaigns = _seed(env, cfg, say)
        env.start_services()
        bulk = ("p1", "p2", "p3")
        if any(cfg.wants(f) for f in bulk):
            _measure(
                env,
                cfg,
                figures,
                bulk,
                lambda: _bulk_figures(env, cfg, alert_campaigns, figures, say),
                say,
            )
        if cfg.wants("p4"):
            say(f"P4 rate accuracy at {cfg.rate}/s for {cfg.rate_seconds}s...")
            _measure(env, cfg, figures, ("p4",), lambda: _rate_figure(env, cfg, figures), say)
        p1 = figures.get("p1_fanout")
        if cfg.scale and p1 is not None and "error" not in p1:
            error = _attempt(env, lambda: _scale(env, cfg, p1, say), say)
            if error is not None:
                p1.update(failure(error))
        if cfg.wants("p5"):
            say(f"P5 import of {cfg.import_rows:,} CSV rows...")
            _measure(
                env,
                cfg,
                figures,
                ("p5",),
                lambda: figures.update(p5_import=measure_import(env, cfg.import_rows)),
                say,
            )
    results.figures = {key: figures[key] for key in FIGURES if key in figures}
    results.meta = {
        "quick": cfg.quick,
        "scale": cfg.scale,
        "only": sorted(cfg.only),
        "recipients": cfg.recipients,
        "import_rows": cfg.import_rows,
        "failed": results.failed(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "seconds": round(time.monotonic() - started, 1),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return results
