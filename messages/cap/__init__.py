"""CAP (OASIS Common Alerting Protocol) alerts: read and validate them against the OASIS
CAP 1.2 schema (CAP 1.1 alerts are upgraded), turn them into SMS template variants, and
write them back as XML, with an Atom feed of them.

- :mod:`~messages.cap.model`: the alert as frozen dataclasses, and :class:`CapError`;
- :mod:`~messages.cap.parse`: safe parsing, the schema, and the checks riskcast adds;
- :mod:`~messages.cap.schema`: the shipped OASIS XSD and its findings, worded by path;
- :mod:`~messages.cap.upgrade`: CAP 1.1 read as 1.2;
- :mod:`~messages.cap.fitting` and :mod:`~messages.cap.template`: SMS bodies within a
  segment budget, and the template made of them;
- :mod:`~messages.cap.writing` and :mod:`~messages.cap.feed`: CAP XML and the Atom feed.
"""

from messages.cap.feed import ATOM_NS, FeedEntry, atom_feed
from messages.cap.fitting import BUDGET, ELLIPSIS, fit
from messages.cap.model import (
    CAP_NS,
    DEFAULT_LANGUAGE,
    MAX_LISTED,
    MEDIA_TYPE,
    URGENT_SEVERITIES,
    URGENT_URGENCIES,
    Alert,
    Area,
    CapError,
    Info,
    Reference,
    ValuePair,
    format_datetime,
    listed,
)
from messages.cap.parse import MAX_BYTES, MAX_ID_LENGTH, parse_alert
from messages.cap.template import (
    Variant,
    alert_name,
    escape_body,
    preferred,
    split_body,
    template_key,
    to_template,
    variants,
)
from messages.cap.upgrade import CAP11_NS
from messages.cap.writing import to_xml

__all__ = [
    "ATOM_NS",
    "BUDGET",
    "CAP11_NS",
    "CAP_NS",
    "DEFAULT_LANGUAGE",
    "ELLIPSIS",
    "MAX_BYTES",
    "MAX_ID_LENGTH",
    "MAX_LISTED",
    "MEDIA_TYPE",
    "URGENT_SEVERITIES",
    "URGENT_URGENCIES",
    "Alert",
    "Area",
    "CapError",
    "FeedEntry",
    "Info",
    "Reference",
    "ValuePair",
    "Variant",
    "alert_name",
    "atom_feed",
    "escape_body",
    "fit",
    "format_datetime",
    "listed",
    "parse_alert",
    "preferred",
    "split_body",
    "template_key",
    "to_template",
    "to_xml",
    "variants",
]
