"""CLI: communities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text
from rich.tree import Tree

from broadcaster.cli.common import (
    ANYONE,
    OFFICIAL,
    console,
    friendly,
    log_action,
    signed_in,
    unit_of_work,
)

if TYPE_CHECKING:
    from broadcaster.communities.service import CommunityNode

app = typer.Typer(help="Communities (a hierarchy of places and groups).", no_args_is_help=True)


@app.command("add")
@friendly
def communities_add(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    parent: Annotated[str | None, typer.Option(help="Slug of the parent community.")] = None,
    country: Annotated[str | None, typer.Option(help="Two-letter country code.")] = None,
    language: Annotated[
        str | None,
        typer.Option(
            help="Default language (lo, th, en, ...); unset: a same-country parent's, else the country's."
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            help="IANA time zone, e.g. Asia/Vientiane; unset: a same-country parent's, else the country's."
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="country, province, district, village, border_crossing, worksite, quarantine_centre, other"
        ),
    ] = "other",
) -> None:
    """Add a community."""
    from broadcaster.communities import service as communities

    caller = signed_in(OFFICIAL)
    with unit_of_work() as session:
        communities.check_new(session, caller, parent)
        community = communities.add_community(
            session,
            slug,
            name=name,
            parent=parent,
            country=country,
            language=language,
            timezone=timezone,
            kind=kind,
        )
        log_action(session, caller, "community.add", "community", community.id, slug=slug)
        console.print(
            f"community {community.slug} added ({community.language}, {community.timezone})"
        )


def _label(node: CommunityNode) -> Text:
    c = node.community
    label = Text()
    label.append(c.slug, style="bold")
    label.append(f"  {c.name}  ")
    label.append(f"({c.kind}, {c.country or '-'}, {c.language}, {c.timezone})", style="dim")
    members = f"  {node.members:,} member{'s' if node.members != 1 else ''}"
    if node.children:
        members += f", {node.total:,} with sub-communities"
    label.append(members)
    return label


def _grow(branch: Tree, node: CommunityNode) -> None:
    for child in node.children:
        _grow(branch.add(_label(child)), child)


@app.command("list")
@friendly
def communities_list() -> None:
    """The communities as a tree, with how many contacts each holds."""
    from broadcaster.communities import service as communities

    caller = signed_in(ANYONE)
    with unit_of_work() as session:
        roots = communities.tree(session, caller)
        if not roots:
            console.print("no communities yet (riskcast communities add SLUG --name NAME)")
            return
        top = Tree("communities", hide_root=True)
        for root in roots:
            _grow(top.add(_label(root)), root)
        console.print(top)
