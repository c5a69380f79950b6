"""CLI: ``riskcast queue [--watch]``, what operators watch: queue depths, workers alive and
deliveries by state."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from broadcaster import monitoring
from broadcaster.api import stats
from broadcaster.cli.common import console, friendly, unit_of_work
from broadcaster.runtime import get_runtime


def snapshot() -> dict[str, Any]:
    runtime = get_runtime()
    depths = stats.queue_depths(runtime.settings.effective_redis_url)
    seen = monitoring.workers_alive(runtime.settings.effective_redis_url)
    with unit_of_work() as session:
        by_state = stats.deliveries_by_state(session)
        stuck, _ = stats.stuck_sending(
            session, older_than=runtime.settings.sending_timeout, limit=0
        )
    return {
        "queues": depths.depths,
        "error": depths.error,
        "workers_alive": seen.count,
        "workers": [w.as_dict() for w in seen.workers],
        "workers_error": seen.error,
        "deliveries": by_state,
        "stuck_sending": stuck,
    }


def render(data: dict[str, Any]) -> Group:
    queues = Table("queue", "waiting", title="queues")
    for name, n in data["queues"].items():
        queues.add_row(name, "unknown" if n is None else str(n))
    states = Table("delivery state", "count", title="deliveries")
    for state, n in data["deliveries"].items():
        states.add_row(state, str(n))
    alive = data["workers_alive"]
    workers = Table(
        "worker",
        "pid",
        "queues",
        "concurrency",
        "tasks taken",
        "last heartbeat (UTC)",
        title=f"workers alive: {'unknown' if alive is None else alive}",
    )
    for w in data["workers"]:
        workers.add_row(
            w["hostname"],
            str(w["pid"]),
            ",".join(w["queues"]),
            str(w["concurrency"]),
            str(w["tasks"]),
            w["seen_at"][11:19],
        )
    parts: list[Any] = [queues, workers, states]
    if data["error"]:
        parts.append(f"[yellow]{data['error']}[/yellow]")
    if data["workers_error"] and data["workers_error"] != data["error"]:
        parts.append(f"[yellow]{data['workers_error']}[/yellow]")
    parts.append(f"stuck in sending: {data['stuck_sending']}")
    return Group(*parts)


@friendly
def queue(
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.2)] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON once.")] = False,
) -> None:
    """Queue depths (urgent, bulk, control), workers alive and every delivery counted by
    state."""
    if as_json:
        sys.stdout.write(json.dumps(snapshot()) + "\n")
        return
    if not watch:
        console.print(render(snapshot()))
        return
    with Live(render(snapshot()), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(render(snapshot()), refresh=True)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.command("queue")(queue)
