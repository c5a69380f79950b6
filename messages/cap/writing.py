"""An :class:`~messages.cap.model.Alert` written as a CAP 1.2 document."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from messages.cap.model import CAP_NS, Alert, Info, ValuePair, format_datetime


def _add(parent: ET.Element, name: str, text: str | None, *, required: bool = False) -> None:
    """A child ``<name>``; an optional one only when it has text, a required one always
    (the schema requires the element, not its text: ``<value/>`` is a value)."""
    if required or (text is not None and text != ""):
        ET.SubElement(parent, f"{{{CAP_NS}}}{name}").text = text or None


def _add_pair(parent: ET.Element, name: str, pair: ValuePair) -> None:
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{name}")
    _add(element, "valueName", pair.name, required=True)
    _add(element, "value", pair.value, required=True)


def _add_info(root: ET.Element, info: Info) -> None:
    element = ET.SubElement(root, f"{{{CAP_NS}}}info")
    _add(element, "language", info.language)
    for category in info.categories:
        _add(element, "category", category, required=True)
    _add(element, "event", info.event, required=True)
    for response in info.response_types:
        _add(element, "responseType", response)
    _add(element, "urgency", info.urgency, required=True)
    _add(element, "severity", info.severity, required=True)
    _add(element, "certainty", info.certainty, required=True)
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
        _add(area_element, "areaDesc", area.desc, required=True)
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
    _add(root, "identifier", alert.identifier, required=True)
    _add(root, "sender", alert.sender, required=True)
    _add(root, "sent", format_datetime(alert.sent), required=True)
    _add(root, "status", alert.status, required=True)
    _add(root, "msgType", alert.msg_type, required=True)
    _add(root, "source", alert.source)
    _add(root, "scope", alert.scope, required=True)
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
