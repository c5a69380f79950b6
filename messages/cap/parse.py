"""Reading a CAP document into an :class:`~messages.cap.model.Alert`.

1. Parsing goes through ``defusedxml`` with DTDs forbidden: a CAP alert never has one,
   and a DTD is what entity expansion ("billion laughs") and external-entity attacks
   need. Documents over ``MAX_BYTES`` are refused unread.
2. The root must be a CAP 1.2 ``<alert>``, or a CAP 1.1 one, which is upgraded
   (:mod:`messages.cap.upgrade`).
3. Elements and attributes of other namespaces are set aside (an XML signature riskcast
   does not verify, a publisher's extension: another schema's business), and the rest is
   validated against the OASIS CAP 1.2 schema (:mod:`messages.cap.schema`).
4. On a schema-valid alert, what the schema cannot say and riskcast needs: identifiers and
   senders that are not empty and have no spaces, commas, ``<`` or ``&`` (references could
   not name them otherwise; CAP 1.2 section 3.2.1 asks it in words), date-times Python can
   hold, ``<references>`` that are ``sender,identifier,sent`` triples, polygons and circles
   that are coordinates (section 3.2.4), and a language tag when it comes from ``xml:lang``.

Every problem is reported with the path of the element, e.g.
``alert/info[2]/urgency: 'Soon' is not one of Immediate, Expected, Future, Past, Unknown``;
all of a step's problems at once (the first twenty listed, the rest counted). ``<resource>``
elements are validated but not kept: an SMS carries no attachments. Empty ``<polygon/>``
and ``<circle/>`` (which some feeds write for "none") are dropped.
"""

from __future__ import annotations

import copy
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
    DATETIME_REASON,
    DEFAULT_LANGUAGE,
    Alert,
    Area,
    CapError,
    Info,
    Reference,
    ValuePair,
    listed,
    local,
)
from messages.cap.upgrade import CAP11_NS, from_cap11

MAX_BYTES: Final = 1_000_000
"""Largest alert accepted; real ones are a few kilobytes."""
MAX_ID_LENGTH: Final = 255
XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"

_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d")
_LANGUAGE_TAG = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")
_NOT_IN_ID = re.compile(r"[\s,<&]")
_POINT = re.compile(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)")
_RADIUS = re.compile(r"\d+(\.\d+)?")
_CAP: Final = f"{{{CAP_NS}}}"

Item = tuple[str, ET.Element]  # an element and its path


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


def _check_root(root: ET.Element) -> None:
    namespace, name = local(root.tag)
    if name != "alert":
        raise CapError(f"the root element is <{name}>; a CAP document is one <alert>")
    if namespace not in (CAP_NS, CAP11_NS):
        found = f"namespace {namespace!r}" if namespace else "no namespace"
        raise CapError(
            f"{found} is not CAP 1.2; the root must be "
            f'<alert xmlns="{CAP_NS}"> (CAP 1.1 is read as 1.2; CAP 1.0 is not accepted)',
            path="alert",
        )


def _is_foreign(tag: str) -> bool:
    namespace = local(tag)[0]
    return namespace is not None and namespace != CAP_NS


def cap_only(root: ET.Element) -> ET.Element:
    """A copy of ``root`` without the elements and attributes of other namespaces."""
    kept = copy.deepcopy(root)
    for element in list(kept.iter()):
        for child in [c for c in element if _is_foreign(c.tag)]:
            element.remove(child)
        for name in [a for a in element.attrib if local(a)[0] is not None]:
            del element.attrib[name]
    return kept


def _validate(root: ET.Element) -> tuple[list[CapError], frozenset[str]]:
    """The schema's problems with ``root``, and the names of the elements that repeat."""
    # xmlschema takes half a second to import and build: paid by the first alert read,
    # not by every command that imports messages.
    from messages.cap import schema  # noqa: PLC0415

    return schema.problems(root), schema.shape().repeatable


def _point(text: str) -> tuple[float, float] | None:
    match = _POINT.fullmatch(text)
    if match is None:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


@dataclass
class _Reader:
    """Turns a schema-valid alert into dataclasses, collecting every problem the schema
    cannot see instead of stopping at the first."""

    repeatable: frozenset[str]
    problems: list[CapError] = field(default_factory=list)

    def fail(self, path: str, reason: str) -> None:
        self.problems.append(CapError(reason, path=path))

    def children(self, element: ET.Element, path: str) -> dict[str, list[Item]]:
        """The CAP children of ``element`` by name, each with its path."""
        found: dict[str, list[Item]] = {}
        for child in element:
            if not child.tag.startswith(_CAP):
                continue  # another namespace's element, set aside before validation
            name = child.tag.removeprefix(_CAP)
            items = found.setdefault(name, [])
            where = (
                f"{path}/{name}[{len(items) + 1}]" if name in self.repeatable else f"{path}/{name}"
            )
            items.append((where, child))
        return found

    @staticmethod
    def text(item: Item) -> str:
        return unicodedata.normalize("NFC", (item[1].text or "").strip())

    def optional(self, items: list[Item] | None) -> str | None:
        return (self.text(items[0]) or None) if items else None

    def first(self, kids: dict[str, list[Item]], name: str) -> str:
        """The text of a child the schema requires."""
        return self.text(kids[name][0])

    def moment(self, where: str, value: str) -> datetime | None:
        parsed = None
        if _DATETIME.fullmatch(value):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
        if parsed is None:
            self.fail(where, f"{value!r} {DATETIME_REASON}")
        return parsed

    def when(self, items: list[Item] | None) -> datetime | None:
        return self.moment(items[0][0], self.text(items[0])) if items else None

    def identifier(self, item: Item) -> str:
        value = self.text(item)
        if not value:
            self.fail(item[0], "must not be empty")
        elif _NOT_IN_ID.search(value):
            self.fail(item[0], f"{value!r} must not contain spaces, commas, < or &")
        elif len(value) > MAX_ID_LENGTH:
            self.fail(item[0], f"longer than {MAX_ID_LENGTH} characters")
        return value

    def pair(self, item: Item) -> ValuePair:
        kids = self.children(item[1], item[0])
        return ValuePair(self.first(kids, "valueName"), self.first(kids, "value"))

    def references(self, items: list[Item] | None) -> tuple[Reference, ...]:
        text = self.optional(items)
        if not items or text is None:
            return ()
        where = items[0][0]
        found = []
        for triple in text.split():
            parts = triple.split(",")
            if len(parts) != 3 or not all(parts):
                self.fail(where, f"{triple!r} is not sender,identifier,sent")
                continue
            sent = self.moment(where, parts[2])
            if sent is not None:
                found.append(Reference(parts[0], parts[1], sent))
        return tuple(found)

    def polygon(self, item: Item) -> str:
        value = self.text(item)
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

    def circle(self, item: Item) -> str:
        value = self.text(item)
        centre, _, radius = value.partition(" ")
        if value and (_point(centre) is None or not _RADIUS.fullmatch(radius.strip())):
            self.fail(item[0], "a circle is 'latitude,longitude radius-in-km'")
        return value

    def area(self, item: Item) -> Area:
        kids = self.children(item[1], item[0])
        polygons = (self.polygon(p) for p in kids.get("polygon", []))
        circles = (self.circle(c) for c in kids.get("circle", []))
        return Area(
            desc=self.first(kids, "areaDesc"),
            polygons=tuple(p for p in polygons if p),
            circles=tuple(c for c in circles if c),
            geocodes=tuple(self.pair(g) for g in kids.get("geocode", [])),
            altitude=self.optional(kids.get("altitude")),
            ceiling=self.optional(kids.get("ceiling")),
        )

    def language(self, kids: dict[str, list[Item]], element: ET.Element, where: str) -> str:
        language = self.optional(kids.get("language"))
        if language is not None:
            return language  # an xs:language: the schema checked it
        # Not CAP's own way to say it, but some publishers do.
        fallback = (element.get(XML_LANG) or "").strip()
        if fallback and not _LANGUAGE_TAG.fullmatch(fallback):
            self.fail(f"{where}/language", f"{fallback!r} is not a language tag like lo-LA")
        return fallback or DEFAULT_LANGUAGE

    def info(self, item: Item) -> Info:
        where, element = item
        kids = self.children(element, where)
        return Info(
            categories=tuple(self.text(c) for c in kids["category"]),
            event=self.first(kids, "event"),
            urgency=self.first(kids, "urgency"),
            severity=self.first(kids, "severity"),
            certainty=self.first(kids, "certainty"),
            language=self.language(kids, element, where),
            response_types=tuple(self.text(r) for r in kids.get("responseType", [])),
            audience=self.optional(kids.get("audience")),
            event_codes=tuple(self.pair(c) for c in kids.get("eventCode", [])),
            effective=self.when(kids.get("effective")),
            onset=self.when(kids.get("onset")),
            expires=self.when(kids.get("expires")),
            sender_name=self.optional(kids.get("senderName")),
            headline=self.optional(kids.get("headline")),
            description=self.optional(kids.get("description")),
            instruction=self.optional(kids.get("instruction")),
            web=self.optional(kids.get("web")),
            contact=self.optional(kids.get("contact")),
            parameters=tuple(self.pair(p) for p in kids.get("parameter", [])),
            areas=tuple(self.area(a) for a in kids.get("area", [])),
        )

    def alert(self, root: ET.Element) -> Alert:
        kids = self.children(root, "alert")
        sent = self.when(kids["sent"])
        return Alert(
            identifier=self.identifier(kids["identifier"][0]),
            sender=self.identifier(kids["sender"][0]),
            sent=sent or datetime.min.replace(tzinfo=UTC),
            status=self.first(kids, "status"),
            msg_type=self.first(kids, "msgType"),
            scope=self.first(kids, "scope"),
            source=self.optional(kids.get("source")),
            restriction=self.optional(kids.get("restriction")),
            addresses=self.optional(kids.get("addresses")),
            codes=tuple(self.text(c) for c in kids.get("code", [])),
            note=self.optional(kids.get("note")),
            references=self.references(kids.get("references")),
            incidents=self.optional(kids.get("incidents")),
            infos=tuple(self.info(i) for i in kids.get("info", [])),
        )


def _raise(problems: Sequence[CapError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise CapError(
            f"{len(problems):,} problems in the CAP alert:\n{listed(problems)}", errors=problems
        )


def parse_alert(data: bytes | str) -> Alert:
    """Parse and validate one CAP 1.2 (or 1.1) ``<alert>``.

    Raises CapError naming the element and the reason (every problem found, when there are
    several); hostile XML (a DTD, entities, external references) is refused unparsed.
    """
    root = _root(data)
    _check_root(root)
    if local(root.tag)[0] == CAP11_NS:
        from_cap11(root)
    problems, repeatable = _validate(cap_only(root))
    _raise(problems)
    reader = _Reader(repeatable)
    alert = reader.alert(root)
    _raise(reader.problems)
    return alert
