"""What Twilio's Messages API says and how: error bodies, test numbers, dates and paging."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

API_VERSION = "2010-04-01"
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
# The sender Twilio would pick from a messaging service, reported in callbacks.
SERVICE_SENDER = "+15005550006"
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})

# Twilio's test credentials answer these "To" numbers with a fixed error; so does the
# simulator, with Twilio's wording (which quotes the number, as the real API does).
MAGIC_NUMBERS: Mapping[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}"),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
FAULT_CODES: Mapping[int, int] = {429: 20429, 500: 20500, 503: 20503}
MAX_BODY = 1600
# The read API's page sizes, as Twilio's: 50 unless asked, at most 1,000.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
PAGE_TOKEN_PREFIX = "PA"  # noqa: S105 -- a page token, Twilio's prefix, no secret

RFC2822 = "%a, %d %b %Y %H:%M:%S +0000"


def twilio_error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    """Twilio's legacy error body, the one the SDK turns into TwilioRestException."""
    return status, {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": status,
    }


def fault_error(status: int) -> tuple[int, dict[str, Any]]:
    """The answer to an injected fault: Twilio's code and wording for that HTTP status."""
    code = FAULT_CODES.get(status, 20500 if status >= 500 else status)
    text = "Too Many Requests" if status == 429 else "Service temporarily unavailable"
    return twilio_error(status, code, text)


def rfc2822(moment: datetime) -> str:
    """A date as Twilio's JSON writes it."""
    return moment.strftime(RFC2822)


def parse_date_filter(value: str) -> tuple[datetime, bool]:
    """A ``DateSent`` filter value: ``YYYY-MM-DD`` (a whole day, GMT) or the SDK's
    ``YYYY-MM-DDTHH:MM:SSZ``. Returns (moment, date_only); ValueError if neither."""
    text = value.strip()
    if len(text) == 10:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC), True
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC), False


def date_sent_matches(
    date_sent: datetime | None, filters: Mapping[str, tuple[datetime, bool]]
) -> bool:
    """Twilio's ``DateSent`` filters: ``DateSent`` the same GMT day, ``DateSent>`` on or
    after the moment (midnight for a bare date), ``DateSent<`` on or before it. A message
    not yet sent has no ``date_sent`` and matches none of them."""
    if date_sent is None:
        return False
    for key, (moment, _date_only) in filters.items():
        if key == "DateSent" and date_sent.date() != moment.date():
            return False
        if key == "DateSent>" and date_sent < moment:
            return False
        if key == "DateSent<" and date_sent > moment:
            return False
    return True
