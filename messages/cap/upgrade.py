"""CAP 1.1 alerts read as CAP 1.2: some feeds still publish 1.1 (the US National Weather
Service's did for years).

CAP 1.2 changed little (the two OASIS schemas side by side): a new namespace; responseType gained
``Avoid`` and ``AllClear`` (1.1's values all remain); ``<resource>`` now requires
``<mimeType>``; date-times follow a pattern (seconds and a numeric zone: ``Z`` and
fractions of a second, which 1.1's ``xs:dateTime`` let through, no longer pass); and
``<altitude>``/``<ceiling>`` became decimals. The upgrade swaps the namespace, writes
date-times CAP 1.2's way when they carry a zone, and gives a resource without a media
type the generic ``application/octet-stream``. A 1.1 alert is then validated as the 1.2
alert it has become: whatever the upgrade cannot mend (a date-time without a zone, an
altitude in words) is reported with its path like any 1.2 problem.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Final

from messages.cap.model import CAP_NS

CAP11_NS: Final = "urn:oasis:names:tc:emergency:cap:1.1"
UNKNOWN_MEDIA_TYPE: Final = "application/octet-stream"
_DATETIMES: Final = frozenset({"sent", "effective", "onset", "expires"})
# an xs:dateTime with a zone: seconds, optional fraction, Z or an offset
_XS_DATETIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[-+]\d\d:\d\d)")


def cap12_datetime(text: str) -> str:
    """``text`` as CAP 1.2 writes a date-time, when it is an ``xs:dateTime`` with a zone;
    otherwise unchanged."""
    match = _XS_DATETIME.fullmatch(text.strip())
    if match is None:
        return text
    zone = "+00:00" if match.group(2) == "Z" else match.group(2)
    return match.group(1) + zone


def _references(text: str) -> str:
    triples = []
    for triple in text.split():
        sender, comma, rest = triple.rpartition(",")
        triples.append(f"{sender}{comma}{cap12_datetime(rest)}" if comma else triple)
    return " ".join(triples)


def from_cap11(root: ET.Element) -> None:
    """Rewrite the CAP 1.1 alert ``root`` in place as CAP 1.2 (see the module's text)."""
    old = f"{{{CAP11_NS}}}"
    for element in root.iter():
        if element.tag.startswith(old):
            name = element.tag.removeprefix(old)
            element.tag = f"{{{CAP_NS}}}{name}"
            if name in _DATETIMES and element.text:
                element.text = cap12_datetime(element.text)
            elif name == "references" and element.text:
                element.text = _references(element.text)
    for resource in root.iter(f"{{{CAP_NS}}}resource"):
        if resource.find(f"{{{CAP_NS}}}mimeType") is None:
            mime_type = ET.Element(f"{{{CAP_NS}}}mimeType")
            mime_type.text = UNKNOWN_MEDIA_TYPE
            desc = resource.find(f"{{{CAP_NS}}}resourceDesc")
            resource.insert(0 if desc is None else list(resource).index(desc) + 1, mime_type)
