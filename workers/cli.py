"""The ``riskcast`` console script: the service's commands plus the processes that run it
(worker, scheduler, API, all-in-one ``serve``, and the Twilio simulator)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broadcaster.cli import app, console, fail, friendly
from broadcaster.config import ConfigError, get_settings, provider_notice
from broadcaster.logging import configure_logging
from workers.queues import QUEUES

if TYPE_CHECKING:
    from fastapi import FastAPI

# Each command imports what it runs when it runs: ``riskcast --help`` and the service's
# own commands load neither the web stack, nor Celery, nor the simulator, nor the benchmark.

log = logging.getLogger("riskcast")


@app.command("worker")
@friendly
def worker(
    queues: Annotated[str, typer.Option(help="Queues to consume, comma-separated.")] = ",".join(
        QUEUES
    ),
    concurrency: Annotated[int, typer.Option(help="Processes (or threads) to run.")] = 4,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo.")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """A Celery worker on the configured broker (RISKCAST_BROKER_URL)."""
    from workers.app import celery_app

    settings = get_settings()
    if not settings.broker_url:
        fail(
            "RISKCAST_BROKER_URL: a worker needs a shared broker such as redis://127.0.0.1:6379/0 (riskcast serve runs everything in one process without one)"
        )
    log.info(provider_notice(settings))
    # No gossip or mingle: workers need nothing from each other (the database and Redis
    # hold all shared state), and gossip has every worker read every other one's events.
    args = ["worker", "-Q", queues, "-c", str(concurrency), "-P", pool, "--loglevel", loglevel]
    args += ["--without-gossip", "--without-mingle"]
    if settings.task_events:
        args.append("-E")
    celery_app.worker_main(args)


@app.command("scheduler")
@friendly
def scheduler(
    heartbeat_file: Annotated[
        Path | None,
        typer.Option(
            help="Touch this file at every tick, for `riskcast health scheduler` (a "
            "container healthcheck); removed when the scheduler stops."
        ),
    ] = None,
) -> None:
    """The scheduler: starts due campaigns and reconciles lost work, every few seconds.
    Run one or more (they share a lock); it needs no worker slot of its own."""
    settings = get_settings()
    if not settings.broker_url:
        fail(
            "RISKCAST_BROKER_URL: the scheduler needs a shared broker such as redis://127.0.0.1:6379/0"
        )
    from workers import tasks
    from workers.scheduler import run_scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(
        f"scheduler: tick every {settings.scheduler_interval}s, "
        f"reconcile every {settings.reconcile_interval}s"
    )
    log.info(provider_notice(settings))
    try:
        run_scheduler(tasks.context(), stop, heartbeat=heartbeat_file)
    except KeyboardInterrupt:
        stop.set()


@app.command("api")
@friendly
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes. Each status callback costs CPU: run more than one when "
            "a campaign sends faster than one process can take its callbacks in.",
        ),
    ] = 1,
) -> None:
    """The HTTP API, dashboard and Twilio webhooks."""
    import uvicorn

    from broadcaster.runtime import get_runtime
    from broadcaster.web.app import create_app

    log.info(provider_notice(get_settings()))
    # log_config=None: uvicorn logs through our handler, where numbers are masked.
    if workers == 1:
        app_ = create_app(get_runtime())
        uvicorn.run(app_, host=host, port=port, log_level="info", log_config=None)
        return
    if not os.environ.get("RISKCAST_SECRET_KEY"):
        fail(
            "RISKCAST_SECRET_KEY: set it when the API runs in more than one process, so a "
            "dashboard login holds in all of them"
        )
    uvicorn.run(
        "workers.cli:server_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        log_config=None,
    )


def server_app() -> FastAPI:
    """The app of one API server process started by ``riskcast api --workers N``."""
    from broadcaster.runtime import get_runtime
    from broadcaster.web.app import create_app

    configure_logging(os.environ.get("RISKCAST_LOG_LEVEL", "INFO"))
    return create_app(get_runtime())


@app.command("simulator")
@friendly
def simulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    rate_429: Annotated[
        float, typer.Option("--rate-429", help="Share of requests answered 429.")
    ] = 0.0,
    rate_500: Annotated[
        float, typer.Option("--rate-500", help="Share of requests answered 500.")
    ] = 0.0,
    latency_ms: Annotated[float, typer.Option(help="Added latency per request, ms.")] = 0.0,
    queue_delay: Annotated[
        float | None,
        typer.Option(
            help="Seconds a message stays queued before 'sent' (Twilio's queue behind a "
            "sender's MPS limit). Default: RISKCAST_SIMULATOR_QUEUE_DELAY."
        ),
    ] = None,
    answer_delay: Annotated[
        float | None,
        typer.Option(
            help="Seconds between storing a message and answering the request (the window "
            "in which a send is in doubt). Default: RISKCAST_SIMULATOR_ANSWER_DELAY."
        ),
    ] = None,
    read_rate_500: Annotated[
        float, typer.Option("--read-rate-500", help="Share of read API requests answered 500.")
    ] = 0.0,
) -> None:
    """A Twilio-compatible Messages API (send, list and fetch) with signed status callbacks,
    for tests and demos. Like Twilio, no callback for the initial status.

    It accepts TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN (or the built-in simulator pair)."""
    from workers.providers.simulator.core import SimulatorCore
    from workers.providers.simulator.server import run_simulator

    settings = get_settings()
    rates = {k: v for k, v in ((429, rate_429), (500, rate_500)) if v > 0}
    core = SimulatorCore(
        settings.account_sid,
        settings.auth_token,
        error_rates=rates,
        latency=latency_ms / 1000,
        queue_delay=settings.simulator_queue_delay if queue_delay is None else queue_delay,
        answer_delay=settings.simulator_answer_delay if answer_delay is None else answer_delay,
        read_error_rates={500: read_rate_500} if read_rate_500 > 0 else None,
    )
    console.print(f"Twilio simulator on http://{host}:{port} (account {settings.account_sid})")
    run_simulator(host, port, core)


@app.command("serve")
@friendly
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    concurrency: Annotated[int, typer.Option(help="Sending threads.")] = 4,
) -> None:
    """Everything in one process: API, worker, scheduler and the Twilio simulator."""
    import uvicorn

    from broadcaster.runtime import get_runtime
    from broadcaster.schema import upgrade
    from broadcaster.web.app import create_app
    from workers import tasks
    from workers.app import celery_app
    from workers.scheduler import start_in_thread

    settings = get_settings()
    if "RISKCAST_PUBLIC_URL" not in os.environ:
        # Status callbacks from the in-process simulator come back to this very server.
        os.environ["RISKCAST_PUBLIC_URL"] = f"http://{host}:{port}"
        get_settings.cache_clear()
        settings = get_settings()
    runtime = get_runtime()
    upgrade(runtime.engine)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime), host=host, port=port, log_level="warning", log_config=None
        )
    )
    api_thread = threading.Thread(target=server.run, name="api", daemon=True)
    api_thread.start()
    _ticks, stop_ticks = start_in_thread(tasks.context())
    console.print(f"riskcast is running at [bold]http://{host}:{port}[/bold]")
    console.print(
        f"data: {runtime.engine.url.render_as_string(hide_password=True)}", soft_wrap=True
    )
    console.print(
        f"queue: {settings.broker_url or 'in-process'}; provider: {settings.provider}; stop with Ctrl-C"
    )
    worker = celery_app.Worker(
        pool="threads",
        concurrency=concurrency,
        queues=list(QUEUES),
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    try:
        worker.start()
    finally:
        stop_ticks.set()
        server.should_exit = True
        api_thread.join(timeout=5)


@app.command("bench")
@friendly
def bench(
    recipients: Annotated[
        int | None,
        typer.Option(help="Recipients of the bulk campaign (default 200,000; --quick 3,000)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A smoke run: a few thousand recipients, short windows.")
    ] = False,
    scale: Annotated[
        bool, typer.Option("--scale", help="Also fan out 1,000,000 recipients (memory stays flat).")
    ] = False,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write the figures to this file as JSON.")
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Measure only these figures, comma-separated: p1 (fan-out), p2 (send), "
            "p3 (urgent), p4 (rate), p5 (import); e.g. --only p1 or --only p1,p2.",
        ),
    ] = None,
    import_rows: Annotated[
        int | None,
        typer.Option(
            "--import-rows",
            help="Rows of P5's CSV (default 200,000; --quick 3,000); 1000000 shows the "
            "import's memory does not grow with the file.",
        ),
    ] = None,
) -> None:
    """Benchmark fan-out, send throughput, urgent latency, rate accuracy and CSV import
    against the configured PostgreSQL and Redis (in a database and Redis DB 14 of its own).
    Exits 1 when a figure could not be measured (its row says ERROR)."""
    # The benchmark is a tool, not the service: loaded only when it runs.
    from bench.config import BenchConfig, BenchError, parse_only
    from bench.report import table, write_json
    from bench.run import run_benchmark

    try:
        cfg = BenchConfig.make(
            recipients=recipients,
            quick=quick,
            scale=scale,
            only=parse_only(only),
            import_rows=import_rows,
        )
        results = run_benchmark(
            get_settings(), cfg, say=lambda line: console.print(line, highlight=False, markup=False)
        )
    except BenchError as exc:
        fail(str(exc))
        return
    console.print(table(results))
    if json_out:
        write_json(results, json_out)
        console.print(f"figures written to {json_out}")
    if failed := results.failed():
        fail(f"{', '.join(failed)} could not be measured (see ERROR above)")


health = typer.Typer(
    help="Liveness checks for container healthchecks: exit 0 when alive, 1 when not.",
    no_args_is_help=True,
)
app.add_typer(health, name="health")


@health.command("scheduler")
def health_scheduler(
    heartbeat_file: Annotated[
        Path, typer.Argument(help="The file given to `riskcast scheduler --heartbeat-file`.")
    ],
    max_age: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds since the last tick after which the scheduler counts as stuck. "
            "Default: 60, or three RISKCAST_SCHEDULER_INTERVAL if longer.",
        ),
    ] = None,
) -> None:
    """Exit 0 if the scheduler that writes HEARTBEAT_FILE ticked within MAX_AGE seconds,
    else 1 (stuck, stopped, or not started yet)."""
    import time

    limit = max_age if max_age is not None else max(60.0, 3 * get_settings().scheduler_interval)
    try:
        age = time.time() - heartbeat_file.stat().st_mtime
    except FileNotFoundError:
        fail(f"{heartbeat_file}: no heartbeat (the scheduler has not ticked yet, or it stopped)")
        return
    if age > limit:
        fail(f"the scheduler last ticked {age:.0f}s ago (limit {limit:g}s): stuck or stopped")
    console.print(f"scheduler alive: last tick {age:.1f}s ago")


def main() -> None:
    configure_logging(os.environ.get("RISKCAST_LOG_LEVEL", "INFO"))
    try:
        get_settings()
    except ConfigError as exc:
        sys.stderr.write(f"riskcast: configuration error: {exc}\n")
        raise SystemExit(2) from None
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    app()


if __name__ == "__main__":
    main()
