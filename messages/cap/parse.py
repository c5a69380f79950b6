"""Reading a CAP 1.2 document into an :class:`~messages.cap.model.Alert`, checking it as
the OASIS schema would.

Parsing goes through ``defusedxml`` with DTDs forbidden: a CAP alert never has one, and a
DTD is what entity expansion ("billion laughs") and external-entity attacks need.

The OASIS XSD is not shipped with riskcast (and cannot be fetched offline), so what it
checks is checked here in code, following CAP 1.2 section 3 and the XSD: the namespace,
required elements and how often each may appear, element order, the value enumerations,
and the date-time pattern (``YYYY-MM-DDThh:mm:ss`` with a ``+hh:mm``/``-hh:mm`` zone; CAP
does not allow ``Z`` or fractions of a second). On top of the XSD: identifiers and senders
without spaces or commas (references could not name them otherwise), polygons and circles
that are coordinates. Elements of other namespaces (extensions, an XML signature) are
skipped. Every problem is reported with the path of the element, e.g.
``alert/info[2]/urgency: 'Soon' is not one of Immediate, Expected, Future, Past, Unknown``.

``<resource>`` elements are validated but not kept: an SMS carries no attachments.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import defusedxml
import defusedxml.ElementTree as SafeET

from messages.cap.model import (
    CAP_NS,
    CATEGORIES,
    CERTAINTIES,
    DEFAULT_LANGUAGE,
    MSG_TYPES,
    RESPONSE_TYPES,
    SCOPES,
    SEVERITIES,
    STATUSES,
    URGENCIES,
    Alert,
    Area,
    CapError,
    Info,
    Reference,
    ValuePair,
)

MAX_BYTES: Final = 1_000_000
"""Largest alert accepted; real ones are a few kilobytes."""

# (element, required, may repeat), in the order the XSD's sequences give.
Sequence_ = tuple[tuple[str, bool, bool], ...]
_ALERT: Final[Sequence_] = (
    ("identifier", True, False),
    ("sender", True, False),
    ("sent", True, False),
    ("status", True, False),
    ("msgType", True, False),
    ("source", False, False),
    ("scope", True, False),
    ("restriction", False, False),
    ("addresses", False, False),
    ("code", False, True),
    ("note", False, False),
    ("references", False, False),
    ("incidents", False, False),
    ("info", False, True),
)
_INFO: Final[Sequence_] = (
    ("language", False, False),
    ("category", True, True),
    ("event", True, False),
    ("responseType", False, True),
    ("urgency", True, False),
    ("severity", True, False),
    ("certainty", True, False),
    ("audience", False, False),
    ("eventCode", False, True),
    ("effective", False, False),
    ("onset", False, False),
    ("expires", False, False),
    ("senderName", False, False),
    ("headline", False, False),
    ("description", False, False),
    ("instruction", False, False),
    ("web", False, False),
    ("contact", False, False),
    ("parameter", False, True),
    ("resource", False, True),
    ("area", False, True),
)
_AREA: Final[Sequence_] = (
    ("areaDesc", True, False),
    ("polygon", False, True),
    ("circle", False, True),
    ("geocode", False, True),
    ("altitude", False, False),
    ("ceiling", False, False),
)
_PAIR: Final[Sequence_] = (("valueName", True, False), ("value", True, False))
_RESOURCE: Final[Sequence_] = (
    ("resourceDesc", True, False),
    ("mimeType", True, False),
    ("size", False, False),
    ("uri", False, False),
    ("derefUri", False, False),
    ("digest", False, False),
)

_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d")
_LANGUAGE_TAG = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")
_NOT_IN_ID = re.compile(r"[\s,<&]")
_POINT = re.compile(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)")
MAX_ID_LENGTH: Final = 255


def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


@dataclass
class _Reader:
    """Walks the tree, collecting every problem instead of stopping at the first."""

    problems: list[CapError] = field(default_factory=list)

    def fail(self, path: str, reason: str) -> None:
        self.problems.append(CapError(reason, path=path))

    def children(
        self, element: ET.Element, path: str, sequence: Sequence_
    ) -> dict[str, list[tuple[str, ET.Element]]]:
        """The CAP children of ``element`` by name, each with its path; checks which are
        known, required, repeated, and in order."""
        order = {name: i for i, (name, _, _) in enumerate(sequence)}
        repeats = {name for name, _, many in sequence if many}
        found: dict[str, list[tuple[str, ET.Element]]] = {name: [] for name in order}
        last: str | None = None
        for child in element:
            namespace, name = _local(child.tag)
            if namespace not in (CAP_NS, None):
                continue  # an extension (e.g. an XML signature): another schema's business
            if namespace is None or name not in order:
                where = f"{path}/{name}"
                if namespace is None:
                    self.fail(where, f"not in the CAP 1.2 namespace ({CAP_NS})")
                else:
                    allowed = ", ".join(n for n, _, _ in sequence)
                    self.fail(where, f"not a CAP 1.2 element here (allowed: {allowed})")
                continue
            if last is not None and order[name] < order[last]:
                self.fail(f"{path}/{name}", f"must come before <{last}> (CAP 1.2 element order)")
            last = name if last is None or order[name] > order[last] else last
            index = len(found[name]) + 1
            if name in repeats:
                where = f"{path}/{name}[{index}]"
            else:
                where = f"{path}/{name}"
                if index > 1:
                    self.fail(where, f"<{name}> may appear only once")
                    continue
            found[name].append((where, child))
        for name, required, _ in sequence:
            if required and not found[name]:
                self.fail(f"{path}/{name}", "required element is missing")
        return found

    def text(self, item: tuple[str, ET.Element], *, required: bool = False) -> str:
        where, element = item
        if len(element):
            self.fail(where, "must be text, not elements")
            return ""
        value = unicodedata.normalize("NFC", (element.text or "").strip())
        if required and not value:
            self.fail(where, "must not be empty")
        return value

    def optional(self, items: list[tuple[str, ET.Element]]) -> str | None:
        return (self.text(items[0]) or None) if items else None

    def required(self, items: list[tuple[str, ET.Element]]) -> str:
        return self.text(items[0], required=True) if items else ""

    def enum(self, item: tuple[str, ET.Element], allowed: Sequence[str]) -> str:
        value = self.text(item, required=True)
        if value and value not in allowed:
            self.fail(item[0], f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def datetime(self, item: tuple[str, ET.Element]) -> datetime | None:
        value = self.text(item, required=True)
        if not value:
            return None
        parsed = None
        if _DATETIME.fullmatch(value):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
        if parsed is None:
            self.fail(
                item[0],
                f"{value!r} is not a CAP date-time with a time zone "
                "(like 2024-05-01T10:00:00+07:00; CAP writes UTC as +00:00, never Z)",
            )
        return parsed

    def identifier(self, items: list[tuple[str, ET.Element]]) -> str:
        value = self.required(items)
        if value and _NOT_IN_ID.search(value):
            self.fail(items[0][0], f"{value!r} must not contain spaces, commas, < or &")
        if len(value) > MAX_ID_LENGTH:
            self.fail(items[0][0], f"longer than {MAX_ID_LENGTH} characters")
        return value

    def pair(self, item: tuple[str, ET.Element]) -> ValuePair:
        kids = self.children(item[1], item[0], _PAIR)
        return ValuePair(self.required(kids["valueName"]), self.required(kids["value"]))

    def references(self, items: list[tuple[str, ET.Element]]) -> tuple[Reference, ...]:
        text = self.optional(items)
        if text is None:
            return ()
        where = items[0][0]
        found = []
        for triple in text.split():
            parts = triple.split(",")
            if len(parts) != 3 or not all(parts):
                self.fail(where, f"{triple!r} is not sender,identifier,sent")
                continue
            sent = self.datetime((where, _text_element(parts[2])))
            if sent is not None:
                found.append(Reference(parts[0], parts[1], sent))
        return tuple(found)

    def polygon(self, item: tuple[str, ET.Element]) -> str:
        value = self.text(item, required=True)
        points = value.split()
        if value and (
            len(points) < 4
            or not all(_point(p) for p in points)
            or _point(points[0]) != _point(points[-1])
        ):
            self.fail(
                item[0],
                "a polygon is at least 4 'latitude,longitude' points, the last the same as the first",
            )
        return value

    def circle(self, item: tuple[str, ET.Element]) -> str:
        value = self.text(item, required=True)
        centre, _, radius = value.partition(" ")
        if value and (_point(centre) is None or not re.fullmatch(r"\d+(\.\d+)?", radius.strip())):
            self.fail(item[0], "a circle is 'latitude,longitude radius-in-km'")
        return value

    def area(self, item: tuple[str, ET.Element]) -> Area:
        kids = self.children(item[1], item[0], _AREA)
        return Area(
            desc=self.required(kids["areaDesc"]),
            polygons=tuple(self.polygon(p) for p in kids["polygon"]),
            circles=tuple(self.circle(c) for c in kids["circle"]),
            geocodes=tuple(self.pair(g) for g in kids["geocode"]),
            altitude=self.optional(kids["altitude"]),
            ceiling=self.optional(kids["ceiling"]),
        )

    def info(self, item: tuple[str, ET.Element]) -> Info:
        where, element = item
        kids = self.children(element, where, _INFO)
        language = self.optional(kids["language"])
        if language is None:
            # Not CAP's own way to say it, but some publishers do.
            language = element.get("{http://www.w3.org/XML/1998/namespace}lang")
        language = language or DEFAULT_LANGUAGE
        if not _LANGUAGE_TAG.fullmatch(language):
            self.fail(f"{where}/language", f"{language!r} is not a language tag like lo-LA")
        for resource in kids["resource"]:
            resource_kids = self.children(resource[1], resource[0], _RESOURCE)
            self.required(resource_kids["resourceDesc"])
            self.required(resource_kids["mimeType"])

        def when(name: str) -> datetime | None:
            return self.datetime(kids[name][0]) if kids[name] else None

        return Info(
            categories=tuple(self.enum(c, CATEGORIES) for c in kids["category"]),
            event=self.required(kids["event"]),
            urgency=self.enum(kids["urgency"][0], URGENCIES) if kids["urgency"] else "",
            severity=self.enum(kids["severity"][0], SEVERITIES) if kids["severity"] else "",
            certainty=self.enum(kids["certainty"][0], CERTAINTIES) if kids["certainty"] else "",
            language=language,
            response_types=tuple(self.enum(r, RESPONSE_TYPES) for r in kids["responseType"]),
            audience=self.optional(kids["audience"]),
            event_codes=tuple(self.pair(c) for c in kids["eventCode"]),
            effective=when("effective"),
            onset=when("onset"),
            expires=when("expires"),
            sender_name=self.optional(kids["senderName"]),
            headline=self.optional(kids["headline"]),
            description=self.optional(kids["description"]),
            instruction=self.optional(kids["instruction"]),
            web=self.optional(kids["web"]),
            contact=self.optional(kids["contact"]),
            parameters=tuple(self.pair(p) for p in kids["parameter"]),
            areas=tuple(self.area(a) for a in kids["area"]),
        )

    def alert(self, root: ET.Element) -> Alert:
        kids = self.children(root, "alert", _ALERT)

        def pick(name: str, allowed: Sequence[str]) -> str:
            return self.enum(kids[name][0], allowed) if kids[name] else ""

        sent = self.datetime(kids["sent"][0]) if kids["sent"] else None
        return Alert(
            identifier=self.identifier(kids["identifier"]),
            sender=self.identifier(kids["sender"]),
            sent=sent or datetime.min.replace(tzinfo=UTC),
            status=pick("status", STATUSES),
            msg_type=pick("msgType", MSG_TYPES),
            scope=pick("scope", SCOPES),
            source=self.optional(kids["source"]),
            restriction=self.optional(kids["restriction"]),
            addresses=self.optional(kids["addresses"]),
            codes=tuple(self.text(c) for c in kids["code"]),
            note=self.optional(kids["note"]),
            references=self.references(kids["references"]),
            incidents=self.optional(kids["incidents"]),
            infos=tuple(self.info(i) for i in kids["info"]),
        )


def _text_element(text: str) -> ET.Element:
    element = ET.Element("value")
    element.text = text
    return element


def _point(text: str) -> tuple[float, float] | None:
    match = _POINT.fullmatch(text)
    if match is None:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


def _raise(problems: Sequence[CapError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise CapError(f"{len(problems)} problems in the CAP alert:\n{listing}", errors=problems)


def _root(data: bytes | str) -> ET.Element:
    if len(data) > MAX_BYTES:
        raise CapError(f"the document is larger than {MAX_BYTES:,} bytes; a CAP alert is a few KB")
    if not data.strip():
        raise CapError("the document is empty")
    try:
        root: ET.Element = SafeET.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden:
        raise CapError(
            "refused: the document has a DTD (<!DOCTYPE ...>). CAP alerts never do, and DTDs "
            "carry entity-expansion ('billion laughs') and external-entity attacks"
        ) from None
    except defusedxml.EntitiesForbidden as exc:
        raise CapError(f"refused: the document declares an entity ({exc})") from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise CapError(f"refused: the document refers to an external resource ({exc})") from None
    except ET.ParseError as exc:
        raise CapError(f"not well-formed XML: {exc}") from None
    return root


def parse_alert(data: bytes | str) -> Alert:
    """Parse and validate one CAP 1.2 ``<alert>``.

    Raises CapError naming the element and the reason (every problem found, when there are
    several); hostile XML (a DTD, entities, external references) is refused unparsed.
    """
    root = _root(data)
    namespace, name = _local(root.tag)
    if name != "alert":
        raise CapError(f"the root element is <{name}>; a CAP document is one <alert>")
    if namespace != CAP_NS:
        found = f"namespace {namespace!r}" if namespace else "no namespace"
        raise CapError(
            f"{found} is not CAP 1.2; the root must be "
            f'<alert xmlns="{CAP_NS}"> (CAP 1.0 and 1.1 are not accepted)',
            path="alert",
        )
    reader = _Reader()
    alert = reader.alert(root)
    _raise(reader.problems)
    return alert
