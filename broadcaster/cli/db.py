"""CLI: the database schema."""

from __future__ import annotations

import typer

from broadcaster.cli.common import console, friendly

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Create or migrate the database schema to the current version."""
    from broadcaster.runtime import get_runtime
    from broadcaster.schema import upgrade

    rt = get_runtime()
    upgrade(rt.engine)
    console.print(f"database is up to date: {rt.engine.url.render_as_string(hide_password=True)}")
