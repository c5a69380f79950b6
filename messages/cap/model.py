"""A CAP alert as riskcast holds it: frozen dataclasses for ``<alert>``, ``<info>``,
``<area>`` and the name-value pairs, and the error every CAP step raises."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
MEDIA_TYPE: Final = "application/cap+xml"
DEFAULT_LANGUAGE: Final = "en-US"
URGENT_URGENCIES: Final = frozenset({"Immediate", "Expected"})
URGENT_SEVERITIES: Final = frozenset({"Extreme", "Severe"})
DATETIME_REASON: Final = (
    "is not a CAP date-time with a time zone "
    "(like 2024-05-01T10:00:00+07:00; CAP writes UTC as +00:00, never Z)"
)


class CapError(ValueError):
    """A CAP document riskcast cannot take, naming the element (``path``) and the reason.

    ``errors`` holds every problem when there were several; ``str()`` lists the first
    :data:`MAX_LISTED` of them and counts the rest.
    """

    def __init__(
        self, reason: str, *, path: str | None = None, errors: Iterable[CapError] = ()
    ) -> None:
        self.reason = reason
        self.path = path
        self.errors: tuple[CapError, ...] = tuple(errors)
        super().__init__(f"{path}: {reason}" if path else reason)


MAX_LISTED: Final = 20
"""Most problems (or areas, or references) an error lists; the rest are counted, so an
answer stays small whatever the document holds."""


def listed(items: Sequence[object], limit: int = MAX_LISTED) -> str:
    """``items`` one per indented line, at most ``limit`` of them, then how many more."""
    lines = [f"  {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit:,} more")
    return "\n".join(lines)


def local(tag: str) -> tuple[str | None, str]:
    """``(namespace, name)`` of an ElementTree tag like ``{urn:...:cap:1.2}info``."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def format_datetime(value: datetime) -> str:
    """A CAP date-time: seconds and a numeric zone (``2024-05-01T10:00:00+07:00``)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("CAP date-times carry a time zone; got a naive datetime")
    return value.replace(microsecond=0).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ValuePair:
    """A ``<geocode>``, ``<eventCode>`` or ``<parameter>``: valueName and value (either
    may be empty, as the schema allows)."""

    name: str
    value: str


@dataclass(frozen=True)
class Reference:
    """One ``sender,identifier,sent`` triple of ``<references>``."""

    sender: str
    identifier: str
    sent: datetime

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{format_datetime(self.sent)}"


@dataclass(frozen=True)
class Area:
    desc: str
    polygons: tuple[str, ...] = ()
    circles: tuple[str, ...] = ()
    geocodes: tuple[ValuePair, ...] = ()
    altitude: str | None = None
    ceiling: str | None = None


@dataclass(frozen=True)
class Info:
    """One ``<info>``: the alert in one language."""

    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    language: str = DEFAULT_LANGUAGE
    response_types: tuple[str, ...] = ()
    audience: str | None = None
    event_codes: tuple[ValuePair, ...] = ()
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[ValuePair, ...] = ()
    areas: tuple[Area, ...] = ()

    @property
    def urgent(self) -> bool:
        """Immediate or Expected, and Extreme or Severe: riskcast's ``urgent`` priority."""
        return self.urgency in URGENT_URGENCIES and self.severity in URGENT_SEVERITIES


@dataclass(frozen=True)
class Alert:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: tuple[str, ...] = ()
    note: str | None = None
    references: tuple[Reference, ...] = ()
    incidents: str | None = None
    infos: tuple[Info, ...] = ()

    @property
    def urgent(self) -> bool:
        return any(info.urgent for info in self.infos)

    @property
    def expires(self) -> datetime | None:
        """The earliest ``<expires>`` of any info: after it, nothing is worth sending."""
        return min((i.expires for i in self.infos if i.expires is not None), default=None)
