"""CAP 1.2 (OASIS Common Alerting Protocol) alerts: parse and validate, turn into SMS
template variants, and write back as XML, with an Atom feed of them.

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

import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import defusedxml
import defusedxml.ElementTree as SafeET

from messages.encoding import GSM7, GSM_LOOKALIKES, segments
from messages.languages import LanguageError, normalize_language
from messages.rendering import TemplateError
from messages.templates import TemplateSpec, parse_template

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS: Final = "http://www.w3.org/2005/Atom"
MEDIA_TYPE: Final = "application/cap+xml"
MAX_BYTES: Final = 1_000_000
"""Largest alert accepted; real ones are a few kilobytes."""
BUDGET: Final = 3
"""SMS segments an imported variant may cost."""
DEFAULT_LANGUAGE: Final = "en-US"
ELLIPSIS: Final = "..."  # GSM-7, unlike the one-character ellipsis

STATUSES: Final = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES: Final = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES: Final = ("Public", "Restricted", "Private")
CATEGORIES: Final = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)
RESPONSE_TYPES: Final = (
    "Shelter",
    "Evacuate",
    "Prepare",
    "Execute",
    "Avoid",
    "Monitor",
    "Assess",
    "AllClear",
    "None",
)
URGENCIES: Final = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES: Final = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES: Final = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
URGENT_URGENCIES: Final = frozenset({"Immediate", "Expected"})
URGENT_SEVERITIES: Final = frozenset({"Extreme", "Severe"})

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
_JINJA_OPENING = re.compile(r"\{(?=[{%#])")
# Thai and Lao vowels written before the consonant they follow in speech: a cut right after
# one would leave it dangling.
_LEADING_VOWELS: Final = frozenset("เแโใไເແໂໃໄ")
MAX_ID_LENGTH: Final = 255


class CapError(ValueError):
    """A CAP document riskcast cannot take, naming the element (``path``) and the reason.

    ``errors`` holds every problem when there were several; ``str()`` lists them all.
    """

    def __init__(
        self, reason: str, *, path: str | None = None, errors: Iterable[CapError] = ()
    ) -> None:
        self.reason = reason
        self.path = path
        self.errors: tuple[CapError, ...] = tuple(errors)
        super().__init__(f"{path}: {reason}" if path else reason)


@dataclass(frozen=True)
class ValuePair:
    """A ``<geocode>``, ``<eventCode>`` or ``<parameter>``: valueName and value."""

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


# -- parsing ---------------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    """A CAP date-time: seconds and a numeric zone (``2024-05-01T10:00:00+07:00``)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("CAP date-times carry a time zone; got a naive datetime")
    return value.replace(microsecond=0).isoformat(timespec="seconds")


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


# -- from an alert to template variants -------------------------------------------------


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


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _boundary(text: str, n: int) -> int:
    """Where to cut ``text`` at or before ``n``: the last space if that keeps at least half,
    else between two letters (never before a combining mark or after a leading vowel)."""
    space = max((m.start() for m in re.finditer(r"\s", text[: n + 1])), default=-1)
    if space >= n // 2 and space > 0:
        return space
    while n > 0 and (
        unicodedata.category(text[n]).startswith("M") or text[n - 1] in _LEADING_VOWELS
    ):
        n -= 1
    return n


def _cut(text: str, fits: Callable[[str], bool]) -> str:
    """The longest start of ``text``, cut at a word boundary and ending in "...", for which
    ``fits`` holds; "" when not even one word does."""
    low, high, best = 1, len(text), 0
    while low <= high:
        middle = (low + high) // 2
        if fits(text[:middle].rstrip() + ELLIPSIS):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    if best == 0:
        return ""
    n = _boundary(text, best) if best < len(text) else best
    kept = text[:n].rstrip()
    return kept + ELLIPSIS if kept else ""


def fit(headline: str, instruction: str, contact: str, *, budget: int = BUDGET) -> tuple[str, bool]:
    """Headline, instruction and contact on their own lines, within ``budget`` SMS segments;
    and whether something was cut. The instruction is cut first, then the headline; the
    contact (the hotline) is kept whole whenever it fits at all."""

    def fits(text: str) -> bool:
        return segments(text).parts <= budget

    whole = _join(headline, instruction, contact)
    if fits(whole):
        return whole, False
    if instruction:
        kept = _cut(instruction, lambda s: fits(_join(headline, s, contact)))
        if kept:
            return _join(headline, kept, contact), True
    if headline:
        kept = _cut(headline, lambda s: fits(_join(s, contact)))
        if kept:
            return _join(kept, contact), True
    return _cut(_join(headline, contact), fits) or _cut(whole, fits), True


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
        original = _join(headline, instruction, contact)
        headline, instruction, contact = (_plain_gsm(t) for t in (headline, instruction, contact))
        if _join(headline, instruction, contact) != original:
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


# -- writing ---------------------------------------------------------------------------


def _add(parent: ET.Element, name: str, text: str | None, namespace: str = CAP_NS) -> None:
    if text is not None and text != "":
        ET.SubElement(parent, f"{{{namespace}}}{name}").text = text


def _add_pair(parent: ET.Element, name: str, pair: ValuePair) -> None:
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{name}")
    _add(element, "valueName", pair.name)
    _add(element, "value", pair.value)


def _add_info(root: ET.Element, info: Info) -> None:
    element = ET.SubElement(root, f"{{{CAP_NS}}}info")
    _add(element, "language", info.language)
    for category in info.categories:
        _add(element, "category", category)
    _add(element, "event", info.event)
    for response in info.response_types:
        _add(element, "responseType", response)
    _add(element, "urgency", info.urgency)
    _add(element, "severity", info.severity)
    _add(element, "certainty", info.certainty)
    _add(element, "audience", info.audience)
    for code in info.event_codes:
        _add_pair(element, "eventCode", code)
    for name, value in (
        ("effective", info.effective),
        ("onset", info.onset),
        ("expires", info.expires),
    ):
        _add(element, name, format_datetime(value) if value else None)
    _add(element, "senderName", info.sender_name)
    _add(element, "headline", info.headline)
    _add(element, "description", info.description)
    _add(element, "instruction", info.instruction)
    _add(element, "web", info.web)
    _add(element, "contact", info.contact)
    for parameter in info.parameters:
        _add_pair(element, "parameter", parameter)
    for area in info.areas:
        area_element = ET.SubElement(element, f"{{{CAP_NS}}}area")
        _add(area_element, "areaDesc", area.desc)
        for polygon in area.polygons:
            _add(area_element, "polygon", polygon)
        for circle in area.circles:
            _add(area_element, "circle", circle)
        for geocode in area.geocodes:
            _add_pair(area_element, "geocode", geocode)
        _add(area_element, "altitude", area.altitude)
        _add(area_element, "ceiling", area.ceiling)


def to_xml(alert: Alert) -> bytes:
    """``alert`` as a CAP 1.2 document (UTF-8, with an XML declaration)."""
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _add(root, "identifier", alert.identifier)
    _add(root, "sender", alert.sender)
    _add(root, "sent", format_datetime(alert.sent))
    _add(root, "status", alert.status)
    _add(root, "msgType", alert.msg_type)
    _add(root, "source", alert.source)
    _add(root, "scope", alert.scope)
    _add(root, "restriction", alert.restriction)
    _add(root, "addresses", alert.addresses)
    for code in alert.codes:
        _add(root, "code", code)
    _add(root, "note", alert.note)
    _add(root, "references", " ".join(str(r) for r in alert.references) or None)
    _add(root, "incidents", alert.incidents)
    for info in alert.infos:
        _add_info(root, info)
    ET.indent(root)
    document: bytes = ET.tostring(
        root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS
    )
    return document


def split_body(text: str) -> tuple[str, str | None]:
    """A message body as CAP headline (its first line) and instruction (the rest): what
    :func:`variants` joins back into the same body."""
    headline, _, rest = text.strip().partition("\n")
    return headline.strip(), (rest.strip() or None)


@dataclass(frozen=True)
class FeedEntry:
    id: str
    title: str
    updated: datetime
    link: str  # the CAP document
    summary: str | None = None


def atom_feed(
    *, feed_id: str, title: str, self_link: str, updated: datetime, entries: Sequence[FeedEntry]
) -> bytes:
    """An Atom feed (RFC 4287) of CAP alerts, each entry linking its CAP document, as
    alerting hubs (the WMO register, Google Public Alerts) read them."""

    def add(parent: ET.Element, name: str, text: str) -> ET.Element:
        element = ET.SubElement(parent, name)
        element.text = text
        return element

    # Atom attributes are unqualified, which ElementTree's default_namespace cannot write.
    root = ET.Element("feed", xmlns=ATOM_NS)
    add(root, "id", feed_id)
    add(root, "title", title)
    add(root, "updated", format_datetime(updated))
    ET.SubElement(root, "link", rel="self", href=self_link)
    add(ET.SubElement(root, "author"), "name", title)
    for entry in entries:
        element = ET.SubElement(root, "entry")
        add(element, "id", entry.id)
        add(element, "title", entry.title)
        add(element, "updated", format_datetime(entry.updated))
        ET.SubElement(element, "link", rel="alternate", type=MEDIA_TYPE, href=entry.link)
        if entry.summary:
            add(element, "summary", entry.summary)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
