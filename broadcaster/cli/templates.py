"""CLI: templates."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from broadcaster import templates
from broadcaster.cli.common import console, friendly, log_action, unit_of_work
from messages import load_dir, load_template_file

app = typer.Typer(help="Message templates, one body per language.", no_args_is_help=True)


@app.command("load")
@friendly
def templates_load(
    path: Annotated[Path, typer.Argument(help="A YAML file, or a folder of them.")],
) -> None:
    """Load templates from YAML (one template per file). A changed file becomes a new version."""
    specs = load_dir(path) if path.is_dir() else [load_template_file(path)]
    with unit_of_work() as session:
        for spec in specs:
            result = templates.save_template(session, spec)
            state = "new" if result.created else ("new version" if result.changed else "unchanged")
            if result.changed:
                log_action(
                    session, "template.save", "template", spec.key, version=result.version.version
                )
            console.print(
                f"{spec.key}: {state} (v{result.version.version}, {', '.join(sorted(spec.variants))})"
            )


@app.command("list")
@friendly
def templates_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List templates with their languages."""
    with unit_of_work() as session:
        rows = templates.list_templates(session)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("key", "name", "version", "languages")
    for row in rows:
        table.add_row(
            str(row["key"]), str(row["name"]), str(row["version"]), ", ".join(row["languages"])
        )  # type: ignore[arg-type]
    console.print(table)
