"""An Atom feed (RFC 4287) of CAP alerts, as alerting hubs (the WMO register, Google
Public Alerts) read them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from messages.cap.model import MEDIA_TYPE, format_datetime

ATOM_NS: Final = "http://www.w3.org/2005/Atom"


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
