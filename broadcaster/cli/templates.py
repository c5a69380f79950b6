"""CLI: templates."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from broadcaster.cli.common import (
    ANYONE,
    OFFICIAL,
    console,
    err_console,
    friendly,
    log_action,
    signed_in,
    unit_of_work,
)

if TYPE_CHECKING:
    from broadcaster.campaigns.preview import PreviewWarning
    from messages import TemplateError, TemplateSpec

app = typer.Typer(help="Message templates, one body per language.", no_args_is_help=True)


def _leaves(error: TemplateError) -> Iterator[TemplateError]:
    """The individual problems inside ``error`` (one per file, field and line)."""
    if not error.errors:
        yield error
        return
    for inner in error.errors:
        yield from _leaves(inner)


def _read(path: Path) -> list[TemplateSpec]:
    """Every template at ``path``; on any problem, print each one and exit 1."""
    from messages import TemplateError, load_dir, load_template_file

    try:
        return load_dir(path) if path.is_dir() else [load_template_file(path)]
    except TemplateError as exc:
        problems = list(_leaves(exc))
        err_console.print(
            f"[red]error:[/red] {len(problems)} problem(s) in {path}; nothing was loaded:",
            highlight=False,
        )
        for problem in problems:
            err_console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@app.command("load")
@friendly
def templates_load(
    path: Annotated[Path, typer.Argument(help="A YAML file, or a folder of them.")],
) -> None:
    """Load templates from YAML (one template per file). A changed file becomes a new
    version; campaigns keep the version they were created from. All or nothing: one bad
    file and no template is loaded."""
    from broadcaster.templates import service as templates

    caller = signed_in(OFFICIAL)
    specs = _read(path)
    lines = []
    with unit_of_work() as session:
        for spec, result in zip(specs, templates.save_templates(session, specs), strict=True):
            state = "new" if result.created else ("new version" if result.changed else "unchanged")
            if result.changed:
                log_action(
                    session,
                    caller,
                    "template.save",
                    "template",
                    spec.key,
                    version=result.version.version,
                )
            lines.append(
                f"{spec.key}: {state} (v{result.version.version}, {', '.join(sorted(spec.variants))})"
            )
    for line in lines:
        console.print(line, markup=False, highlight=False)


@app.command("list")
@friendly
def templates_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List templates with their languages."""
    from broadcaster.templates import service as templates

    signed_in(ANYONE)
    with unit_of_work() as session:
        rows = templates.list_templates(session)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("key", "name", "version", "languages")
    for row in rows:
        languages = cast("list[str]", row["languages"])
        table.add_row(str(row["key"]), str(row["name"]), str(row["version"]), ", ".join(languages))
    console.print(table)


def print_warnings(warnings: Sequence[PreviewWarning]) -> None:
    """The warnings of a preview, one per line (they warn; an official decides)."""
    if not warnings:
        console.print("[green]no warnings[/green]")
        return
    console.print(f"[yellow]{len(warnings)} warning(s):[/yellow]")
    for warning in warnings:
        console.print(f"  ! {warning.message}", markup=False, highlight=False, soft_wrap=True)


def print_texts(rows: Sequence[tuple[str, str]]) -> None:
    """Each language's text as it will be sent, in full."""
    for language, text in rows:
        console.print(f"[bold]{language}[/bold]")
        console.print(f"  {text}", markup=False, highlight=False, soft_wrap=True)


@app.command("preview")
@friendly
def templates_preview(
    key: Annotated[str, typer.Argument(help="Template key.")],
    version: Annotated[
        int | None, typer.Option(help="A version number (default: the newest).")
    ] = None,
    whatsapp: Annotated[
        bool, typer.Option("--whatsapp", help="Count for WhatsApp (no segments).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every language of a template, rendered with its sample variables: encoding,
    characters, SMS segments, and warnings."""
    from broadcaster.campaigns.preview import preview_template

    signed_in(ANYONE)
    with unit_of_work() as session:
        preview = preview_template(
            session, key, version=version, channel="whatsapp" if whatsapp else "sms"
        )
    if as_json:
        sys.stdout.write(json.dumps(preview.to_dict(), ensure_ascii=False) + "\n")
        return
    newest = "" if preview.version == preview.current_version else " (not the newest)"
    console.print(
        f"template [bold]{preview.key}[/bold] v{preview.version}{newest}: {preview.name}",
        highlight=False,
    )
    details = [f"default language {preview.default_language}"]
    if preview.source:
        details.append(f"source: {preview.source}")
    if preview.variables:
        details.append(
            "sample variables: " + ", ".join(f"{k}={v}" for k, v in preview.variables.items())
        )
    console.print("; ".join(details), markup=False, highlight=False, soft_wrap=True)
    table = Table("language", "encoding", "characters", "units", "segments")
    for column in table.columns[2:]:
        column.justify = "right"
    for variant in preview.variants:
        default = " (default)" if variant.is_default else ""
        table.add_row(
            f"{variant.language} {variant.language_name}{default}",
            variant.encoding,
            str(variant.characters),
            str(variant.units),
            str(variant.segments),
        )
    console.print(table)
    print_texts([(v.language, v.text) for v in preview.variants])
    print_warnings(preview.warnings)
