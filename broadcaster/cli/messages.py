"""CLI: message tools that need no database."""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Annotated, Any

import typer

from broadcaster.cli.common import console, fail


def _limits(encoding: str) -> tuple[int, int] | None:
    from messages.encoding import GSM_PART, GSM_SINGLE, UCS2_PART, UCS2_SINGLE

    return {"GSM-7": (GSM_SINGLE, GSM_PART), "UCS-2": (UCS2_SINGLE, UCS2_PART)}.get(encoding)


def segments_report(text: str, channel: str = "sms") -> dict[str, Any]:
    """Everything ``riskcast segments`` prints, as plain data."""
    from messages import gsm_lookalike, part_sizes, segments

    result = segments(text, channel)
    limits = _limits(result.encoding)
    return {
        "text": text,
        "channel": channel,
        "encoding": result.encoding,
        "characters": result.characters,
        "units": result.units,
        "unit": {"GSM-7": "septets", "UCS-2": "UTF-16 code units"}.get(result.encoding, "bytes"),
        "segments": result.parts,
        "part_units": list(part_sizes(text, channel)),
        "single_limit": limits[0] if limits else None,
        "part_limit": limits[1] if limits else None,
        "non_gsm": [
            {
                "char": char,
                "codepoint": f"U+{ord(char):04X}",
                "name": unicodedata.name(char, "unnamed character"),
                "gsm_replacement": gsm_lookalike(char),
            }
            for char in result.non_gsm
        ],
    }


def segments_cmd(
    text: Annotated[str, typer.Argument(help="The message text (quote it).")],
    whatsapp: Annotated[
        bool, typer.Option("--whatsapp", help="Count for WhatsApp (no segments).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """How TEXT is encoded and how many SMS segments it costs (as Twilio counts them)."""
    if not text:
        fail("the text is empty; riskcast never sends an empty message")
    report = segments_report(text, "whatsapp" if whatsapp else "sms")
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
        return
    rows = [
        ("encoding", report["encoding"]),
        ("characters", str(report["characters"])),
        ("units", f"{report['units']} {report['unit']}"),
    ]
    if report["single_limit"] is not None:
        rows.append(
            (
                "segments",
                f"{report['segments']} (one SMS holds {report['single_limit']} "
                f"units; a split message {report['part_limit']} per part)",
            )
        )
        if report["segments"] > 1:
            rows.append(("parts", " + ".join(str(size) for size in report["part_units"])))
    else:
        rows.append(("segments", "none: WhatsApp bills per message"))
    for label, value in rows:
        console.print(f"{label:<11} {value}", markup=False, highlight=False)
    if report["non_gsm"] and report["encoding"] == "UCS-2":
        _explain_ucs2(report["non_gsm"])


def _script(char: str, name: str) -> str | None:
    """The script a letter or mark of a non-Latin alphabet belongs to ("LAO", "THAI")."""
    is_letter = char.isalpha() or unicodedata.category(char).startswith("M")
    if not is_letter or name.startswith(("LATIN", "COMBINING")):
        return None
    return name.split(maxsplit=1)[0]


def _explain_ucs2(non_gsm: list[dict[str, Any]]) -> None:
    scripts: dict[str, int] = {}
    strays = []
    for item in non_gsm:
        script = _script(item["char"], item["name"])
        if script is None:
            strays.append(item)
        else:
            scripts[script] = scripts.get(script, 0) + 1
    if scripts:
        names = ", ".join(script.title() for script in scripts)
        console.print(
            f"UCS-2 because the text is written in {names}, which GSM-7 cannot carry",
            markup=False,
            highlight=False,
        )
    if strays:
        lead = "and" if scripts else "UCS-2 because"
        console.print(
            f"{lead} these characters are not in the GSM-7 alphabet:", markup=False, highlight=False
        )
        for item in strays:
            fix = item["gsm_replacement"]
            hint = f"  (use {fix!r} instead)" if fix is not None else ""
            console.print(
                f"  {item['char']!r}  {item['codepoint']} {item['name']}{hint}",
                markup=False,
                highlight=False,
            )


def register(app: typer.Typer) -> None:
    app.command("segments")(segments_cmd)
