"""CLI: organisations (a ministry, a provincial health office, an agency): whom each user
works for. Officials see the campaigns of their own organisation."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from broadcaster.cli.common import ADMIN, console, friendly, log_action, signed_in, unit_of_work

app = typer.Typer(help="Organisations users belong to.", no_args_is_help=True)


@app.command("add")
@friendly
def organisations_add(slug: str, name: Annotated[str, typer.Option(help="Display name.")]) -> None:
    """Add an organisation (users join it with riskcast users create --organisation SLUG)."""
    from broadcaster.areas import scope

    caller = signed_in(ADMIN)
    with unit_of_work() as session:
        org = scope.add_organisation(session, slug, name)
        log_action(session, caller, "organisation.create", "organisation", org.id, slug=slug)
    console.print(f"organisation {slug} added")


@app.command("list")
@friendly
def organisations_list() -> None:
    """Every organisation."""
    from broadcaster.areas import scope

    signed_in(ADMIN)
    table = Table("slug", "name")
    with unit_of_work() as session:
        for org in scope.list_organisations(session):
            table.add_row(org.slug, org.name)
    console.print(table)
