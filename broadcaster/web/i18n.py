"""The dashboard in the language of the person reading it: Lao, Thai or English.

Every string of the pages goes through gettext (``{{ _("...") }}`` in the templates); the
catalogs are ``broadcaster/web/locale/<lang>/LC_MESSAGES/messages.po``, read with Babel when
the first page is drawn (``pybabel extract -F babel.cfg -k tr:2 -k N_ -o messages.pot .``
lists what to translate; ``tests/broadcaster/test_dashboard_languages.py`` fails while a
string has no translation). English is the source language. The language is the signed-in
person's choice (``User.locale``), else the one chosen on the login page, else the
browser's (``Accept-Language``). Dates and times are shown in the person's zone (default
``Asia/Vientiane``), formatted for the language, with UTC on hover; numbers too.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from jinja2 import Environment
from markupsafe import Markup, escape

LOCALES = {"en": "English", "lo": "ລາວ", "th": "ไทย"}
DEFAULT_LOCALE = "en"
DEFAULT_ZONE = "Asia/Vientiane"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

current: ContextVar[str] = ContextVar("riskcast_locale", default=DEFAULT_LOCALE)
current_zone: ContextVar[str] = ContextVar("riskcast_zone", default=DEFAULT_ZONE)


@cache
def catalog(locale: str) -> dict[str, str]:
    """msgid -> translation for ``locale`` (empty for English or a missing file)."""
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if locale == DEFAULT_LOCALE or not path.exists():
        return {}
    with path.open("rb") as f:
        po = read_po(f, locale=locale)
    found: dict[str, str] = {}
    for m in po:
        if not m.id:
            continue
        if isinstance(m.id, str):
            if isinstance(m.string, str) and m.string:
                found[m.id] = m.string
        elif m.string and m.string[0]:
            # Lao and Thai have one form: singular and plural read the same.
            for msgid in m.id:
                found[str(msgid)] = str(m.string[0])
    return found


# What `pybabel extract` is told to look for in Python, besides gettext: ``tr(request,
# "...")`` in the dashboard and ``N_("...")``, a string translated later, where it is drawn.
KEYWORDS = {"tr": (2,), "N_": None}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark ``message`` for translation where it is drawn, not here."""
    return message


# The names of states, outcomes and priorities the pages show (codes elsewhere), for the
# ``label`` filter: ``{{ c.state|label }}``.
LABELS = {
    "draft": N_("draft"),
    "scheduled": N_("scheduled"),
    "fanning_out": N_("fanning_out"),
    "sending": N_("sending"),
    "paused": N_("paused"),
    "stopped": N_("stopped"),
    "completed": N_("completed"),
    "cancelled": N_("cancelled"),
    "pending": N_("pending"),
    "queued": N_("queued"),
    "sent": N_("sent"),
    "delivered": N_("delivered"),
    "undelivered": N_("undelivered"),
    "failed": N_("failed"),
    "skipped": N_("skipped"),
    "opted_out": N_("opted out"),
    "urgent": N_("urgent"),
    "bulk": N_("bulk"),
}


def label(code: str | None) -> str:
    """What the page calls a state, outcome or priority, in the reader's language."""
    if code is None:
        return ""
    return gettext(LABELS.get(code, code))


def gettext(message: str) -> str:
    return catalog(current.get()).get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular if n == 1 else plural)


def negotiate(accept_language: str | None) -> str:
    """The best of :data:`LOCALES` for an ``Accept-Language`` header (English if none)."""
    if not accept_language:
        return DEFAULT_LOCALE
    wanted: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            wanted.append((quality, tag.strip().replace("-", "_")))
    preferred = [tag for _, tag in sorted(wanted, key=lambda w: -w[0])]
    found = Locale.negotiate(preferred, list(LOCALES), sep="_")
    return str(found) if found is not None else DEFAULT_LOCALE


def choose(*candidates: str | None) -> str:
    """The first of ``candidates`` that is a dashboard language."""
    for c in candidates:
        if c in LOCALES:
            return c
    return DEFAULT_LOCALE


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(current_zone.get())
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def when(value: datetime | None, style: str = "medium") -> Markup:
    """A time as the reader reads it: in their zone and language, with UTC on hover."""
    if value is None:
        return Markup("")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        locale = Locale.parse(current.get())
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse(DEFAULT_LOCALE)
    local = format_datetime(value, style, tzinfo=_zone(), locale=locale)
    utc = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        value.astimezone(UTC).isoformat(), utc, escape(local)
    )


def number(value: float | int | None) -> str:
    if value is None:
        return "–"
    return format_decimal(value, locale=current.get())


def install(env: Environment) -> None:
    """Give a Jinja environment ``_``, ``gettext``, ``ngettext`` and the ``when`` and
    ``number`` filters, all reading the language of the page being drawn."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["label"] = label
    env.globals["LOCALES"] = LOCALES


def msgids(texts: Iterable[tuple[int, str, str | tuple[str, ...], list[str]]]) -> set[str]:
    """The message ids of Babel extraction results (for the catalog completeness test)."""
    found: set[str] = set()
    for _lineno, _func, message, _comments in texts:
        found.add(message if isinstance(message, str) else message[0])
    return found
