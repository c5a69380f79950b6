"""CLI: ``riskcast queue [--watch]``, what operators watch: queue depths, workers alive,
deliveries by state and deliveries in doubt."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from broadcaster.cli.common import OPERATOR, console, friendly, signed_in, unit_of_work


def snapshot() -> dict[str, Any]:
    from broadcaster.deliveries import in_doubt
    from broadcaster.monitoring import service as monitoring
    from broadcaster.monitoring import stats
    from broadcaster.runtime import get_runtime

    runtime = get_runtime()
    depths = stats.queue_depths(runtime.settings.effective_redis_url)
    seen = monitoring.workers_alive(runtime.settings.effective_redis_url)
    with unit_of_work() as session:
        by_state = stats.deliveries_by_state(session)
        doubt = in_doubt.summary(session, runtime.settings.in_doubt_after, limit=0)
    return {
        "queues": depths.depths,
        "error": depths.error,
        "workers_alive": seen.count,
        "workers": [w.as_dict() for w in seen.workers],
        "workers_error": seen.error,
        "deliveries": by_state,
        "in_doubt": {
            "count": doubt.count,
            "oldest_seconds": doubt.oldest_seconds,
            "last_note": doubt.last_note,
            "last_lookup_at": doubt.last_lookup_at.isoformat() if doubt.last_lookup_at else None,
        },
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
    doubt = data["in_doubt"]
    line = f"in doubt (sent or not: asking the provider): {doubt['count']}"
    if doubt["count"]:
        line += f", oldest {round(doubt['oldest_seconds'] or 0)} s"
    if doubt["last_note"]:
        line += f"; last lookup: {doubt['last_note']}"
    parts.append(Text(line))
    return Group(*parts)


@friendly
def queue(
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.2)] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON once.")] = False,
) -> None:
    """Queue depths (urgent, bulk, control), workers alive, every delivery counted by
    state, and the deliveries in doubt (the provider may have them: never resent until
    its read API says it does not)."""
    signed_in(OPERATOR)
    if as_json:
        sys.stdout.write(json.dumps(snapshot()) + "\n")
        return
    if not watch:
        console.print(render(snapshot()))
        return
    from rich.live import Live

    with Live(render(snapshot()), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(render(snapshot()), refresh=True)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.command("queue")(queue)
