"""CLI: message tools that need no database."""

from __future__ import annotations

import typer

from broadcaster.cli.common import console
from messages import segments


def segments_cmd(text: str) -> None:
    """How TEXT is encoded and how many SMS segments it costs."""
    result = segments(text)
    console.print(f"encoding: {result.encoding}  units: {result.units}  segments: {result.parts}")
    if result.non_gsm and result.encoding == "UCS-2":
        console.print("non-GSM characters: " + " ".join(repr(c) for c in result.non_gsm))


def register(app: typer.Typer) -> None:
    app.command("segments")(segments_cmd)
