"""CLI: CAP 1.2 alerts in (import, the area mapping) and out (export)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.table import Table

from broadcaster.cli.common import (
    ANYONE,
    OFFICIAL,
    console,
    err_console,
    fail,
    friendly,
    log_action,
    signed_in,
    unit_of_work,
)

app = typer.Typer(
    help="CAP 1.2 alerts: import an official alert as a draft campaign, map CAP areas to "
    "communities, export a sent campaign.",
    no_args_is_help=True,
)
FETCH_TIMEOUT = 15.0


def fetch(url: str) -> bytes:
    """The document at an http(s) URL, at most MAX_BYTES; redirects are not followed."""
    import httpx

    from messages.cap import MAX_BYTES, MEDIA_TYPE

    try:
        with (
            httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream(
                "GET", url, headers={"Accept": f"{MEDIA_TYPE}, application/xml"}
            ) as response,
        ):
            if response.status_code != 200:
                fail(f"{url}: HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    fail(f"{url}: larger than {MAX_BYTES:,} bytes; a CAP alert is a few KB")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        fail(f"{url}: {exc.__class__.__name__}: {exc}")
    raise AssertionError("unreachable")


def read_source(source: str) -> bytes:
    from messages.cap import MAX_BYTES

    if urlsplit(source).scheme in ("http", "https"):
        return fetch(source)
    if "://" in source:
        fail(f"{source}: only http(s) URLs or files")
    path = Path(source)
    if not path.is_file():
        fail(f"{source}: no such file")
    if path.stat().st_size > MAX_BYTES:
        fail(f"{source}: larger than {MAX_BYTES:,} bytes; a CAP alert is a few KB")
    return path.read_bytes()


@app.command("import")
@friendly
def cap_import(
    source: Annotated[str, typer.Argument(help="A CAP 1.2 file, or an http(s) URL.")],
) -> None:
    """Import a CAP 1.2 alert: Alert and Update become a draft campaign (created by you),
    Cancel cancels the campaigns of the alerts it references. Nothing is sent. Prints the
    campaign id last."""
    from broadcaster.cap import service as cap

    caller = signed_in(OFFICIAL)
    document = read_source(source)
    with unit_of_work() as session:
        result = cap.import_alert(session, document, caller=caller)
        kind, subject, detail = result.audit_subject()
        log_action(session, caller, "cap.import", kind, subject, source=source, **detail)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if result.msg_type == "Cancel":
        done = ", ".join(str(c) for c in result.cancelled) or "none (nothing left to stop)"
        console.print(f"CAP cancel {result.identifier}: campaigns cancelled: {done}")
        return
    console.print(
        f"CAP {result.msg_type.lower()} {result.identifier} -> draft campaign "
        f"{result.campaign_id} ({result.priority}; {', '.join(result.languages)}; "
        f"communities {', '.join(result.communities)}"
        + (f"; valid until {result.valid_until.isoformat()}" if result.valid_until else "")
        + ")",
        highlight=False,
    )
    console.print(
        f"review it with: riskcast campaigns preview {result.campaign_id}"
        + (
            f"; urgent: a second official approves it: riskcast campaigns approve "
            f"{result.campaign_id}"
            if result.priority == "urgent"
            else ""
        ),
        highlight=False,
    )
    sys.stdout.write(f"{result.campaign_id}\n")


@app.command("map")
@friendly
def cap_map(
    community: Annotated[str, typer.Option(help="The community's slug.")],
    geocode: Annotated[
        str | None,
        typer.Option(help="A <geocode> value (LA-BK) or valueName=value (ISO3166-2=LA-BK)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="An <areaDesc>, compared ignoring case and spaces.")
    ] = None,
) -> None:
    """Map a CAP area (by geocode or by name) to a community; an area may map to several."""
    from broadcaster.cap import service as cap

    if (geocode is None) == (name is None):
        fail("give one of --geocode VALUE or --name VALUE")
    kind, value = ("geocode", geocode) if geocode is not None else ("name", name or "")
    caller = signed_in(OFFICIAL)
    with unit_of_work() as session:
        mapping, created = cap.map_area(
            session, caller, kind=kind, value=value, community_slug=community
        )
        if created:
            log_action(
                session,
                caller,
                "cap.map",
                "cap_area_mapping",
                mapping.id,
                kind=kind,
                value=mapping.value,
                community=community,
            )
    state = "mapped" if created else "was already mapped"
    console.print(f"CAP {kind} {mapping.value!r} {state} to {community}", highlight=False)


@app.command("mappings")
@friendly
def cap_mappings() -> None:
    """The CAP area -> community mapping."""
    from broadcaster.cap import service as cap

    signed_in(ANYONE)
    with unit_of_work() as session:
        rows = cap.list_mappings(session)
        if not rows:
            console.print("no CAP areas mapped yet (riskcast cap map --help)")
            return
        table = Table("kind", "value", "community")
        for mapping, slug in rows:
            table.add_row(mapping.kind, mapping.value, slug)
        console.print(table)


@app.command("export")
@friendly
def cap_export(campaign_id: int) -> None:
    """Print a sent campaign as a CAP 1.2 alert (what /cap/ID.xml serves)."""
    from broadcaster.cap import service as cap
    from broadcaster.runtime import get_runtime

    signed_in(ANYONE)
    public_url = get_runtime().settings.public_url
    with unit_of_work() as session:
        xml = cap.campaign_xml(session, campaign_id, public_url=public_url)
    sys.stdout.write(xml.decode("utf-8") + "\n")
