"""From an alert to a riskcast template: one SMS body per language (headline,
instruction and contact, fitted to the segment budget), its key, name and warnings; and
back, a message body as a CAP headline and instruction."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from messages.cap.fitting import BUDGET, fit, join_lines
from messages.cap.model import Alert, CapError
from messages.encoding import GSM7, GSM_LOOKALIKES, segments
from messages.languages import LanguageError, normalize_language
from messages.rendering import TemplateError
from messages.templates import TemplateSpec, parse_template

_JINJA_OPENING = re.compile(r"\{(?=[{%#])")


@dataclass(frozen=True)
class Variant:
    """An ``<info>`` turned into one SMS body."""

    language: str  # riskcast's code: "lo", "th", "en"
    text: str  # plain text, as it will be sent
    source: str  # "alert/info[2]"
    cut: bool = False


def _clean(text: str | None) -> str:
    """Runs of spaces made one, empty lines dropped, and an indented line joined to the one
    before: in pretty-printed XML, indentation marks a wrapped line, not a new one."""
    if not text:
        return ""
    lines: list[str] = []
    for raw in text.strip().splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        if lines and raw[:1].isspace():
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return "\n".join(lines)


def _plain_gsm(text: str) -> str:
    """``text`` with typographic quotes, dashes and spaces made plain, when that alone makes
    it GSM-7 (a curly apostrophe must not double an English message's cost)."""
    plain = "".join(GSM_LOOKALIKES.get(ch, ch) for ch in text)
    return plain if segments(plain).encoding == GSM7 else text


def variants(alert: Alert, *, budget: int = BUDGET) -> tuple[list[Variant], list[str]]:
    """One SMS body per language of ``alert`` (headline + instruction + contact, fitted to
    ``budget`` segments), and warnings: a cut text, a language riskcast does not send, a
    second ``<info>`` in a language already taken.

    An info without a headline uses its event; without an instruction, its description.
    Raises CapError when no info gives a body.
    """
    found: dict[str, Variant] = {}
    warnings: list[str] = []
    for index, info in enumerate(alert.infos, start=1):
        where = f"alert/info[{index}]"
        try:
            language = normalize_language(info.language)
        except LanguageError:
            warnings.append(
                f"{where}/language: {info.language!r} is not a language riskcast sends; "
                "this <info> is left out of the message"
            )
            continue
        if language in found:
            warnings.append(
                f"{where}/language: a second <info> in {language!r}; the message uses "
                f"{found[language].source} (this one's areas still count)"
            )
            continue
        headline = _clean(info.headline) or _clean(info.event)
        instruction = _clean(info.instruction) or _clean(info.description)
        contact = _clean(info.contact)
        original = join_lines(headline, instruction, contact)
        headline, instruction, contact = (_plain_gsm(t) for t in (headline, instruction, contact))
        if join_lines(headline, instruction, contact) != original:
            warnings.append(
                f"{where} ({language}): typographic quotes, dashes or spaces made plain "
                "so the message stays GSM-7"
            )
        text, cut = fit(headline, instruction, contact, budget=budget)
        if not text:
            warnings.append(f"{where}: no headline, event, instruction or contact to send")
            continue
        if cut:
            cost = segments(original)
            warnings.append(
                f"{where} ({language}): headline, instruction and contact take {cost.parts} "
                f"SMS segments ({cost.encoding}); cut at a word boundary to fit {budget}. "
                "Read it before approving"
            )
        found[language] = Variant(language, unicodedata.normalize("NFC", text), where, cut)
    if not found:
        reason = "no <info> in a language riskcast sends" if alert.infos else "no <info>"
        raise CapError(f"{reason}: there is nothing to send", path="alert")
    return list(found.values()), warnings


def escape_body(text: str) -> str:
    """``text`` as a template body that renders to exactly ``text``: an alert's ``{{`` or
    ``{%`` is words, not template code."""
    return _JINJA_OPENING.sub("{{ '{' }}", text)


def template_key(alert: Alert) -> str:
    """A template key for ``alert``: readable, and different for every sender and
    identifier."""
    slug = re.sub(r"[^a-z0-9]+", "-", alert.identifier.lower()).strip("-")[:48].strip("-")
    digest = hashlib.sha256(f"{alert.sender}\n{alert.identifier}".encode()).hexdigest()[:8]
    return f"cap-{slug}-{digest}" if slug else f"cap-{digest}"


def preferred(alert: Alert, found: Sequence[Variant]) -> Variant:
    """The English variant, else the first."""
    return next((v for v in found if v.language == "en"), found[0])


def alert_name(alert: Alert, found: Sequence[Variant]) -> str:
    """A name officials recognise: the headline (or event) of the preferred info."""
    info = alert.infos[int(preferred(alert, found).source.split("[")[1].rstrip("]")) - 1]
    name = _clean(info.headline) or _clean(info.event)
    name = " ".join(name.split())
    if alert.status == "Exercise":
        name = f"[Exercise] {name}"
    return name[:200]


def to_template(alert: Alert, *, budget: int = BUDGET) -> tuple[TemplateSpec, list[str]]:
    """A template for ``alert``: one variant per language, the default English when there is
    one; and the warnings of :func:`variants`."""
    found, warnings = variants(alert, budget=budget)
    default = preferred(alert, found).language
    source = f"CAP {alert.sender} {alert.identifier}"[:200]
    data: dict[str, object] = {
        "key": template_key(alert),
        "name": alert_name(alert, found),
        "default_language": default,
        "source": source,
        "budget": budget,
        "variants": {v.language: escape_body(v.text) for v in found},
    }
    try:
        spec = parse_template(data, origin=f"CAP alert {alert.identifier}")
    except TemplateError as exc:
        raise CapError(f"cannot become a template: {exc}", path="alert") from None
    return spec, warnings


def split_body(text: str) -> tuple[str, str | None]:
    """A message body as CAP headline (its first line) and instruction (the rest): what
    :func:`variants` joins back into the same body."""
    headline, _, rest = text.strip().partition("\n")
    return headline.strip(), (rest.strip() or None)
