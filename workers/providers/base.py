"""The provider interface every gateway implements.

A gateway turns one :class:`OutboundMessage` into one provider request. It raises
:class:`ProviderError` with an :class:`ErrorKind` so the sending code can decide between
retry, permanent failure and stopping the campaign, without knowing the provider.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class ErrorKind(enum.StrEnum):
    RETRYABLE = "retryable"  # 429, 5xx, timeouts, carrier congestion: back off and retry
    PERMANENT = "permanent"  # this recipient cannot be reached this way: fail now
    CONFIGURATION = "configuration"  # our account or sender is wrong: stop the campaign


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    delivery_id: int
    to: str  # E.164, or "whatsapp:+..." for WhatsApp
    body: str
    status_callback: str | None = None
    validity_period: int | None = None  # seconds, Twilio's ValidityPeriod


@dataclass(frozen=True, slots=True)
class ProviderResult:
    sid: str
    status: str  # the provider's own status word ("queued", "accepted", ...)


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    status: str  # the provider's status word ("sent", "delivered", "undelivered", ...)
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderMessage:
    """One message as the provider's read API reports it."""

    sid: str
    to: str
    sender: str | None  # "From"; None while a messaging service has not picked one yet
    messaging_service_sid: str | None
    body: str
    status: str
    error_code: int | None
    created_at: datetime  # aware, UTC


@dataclass(frozen=True, slots=True)
class Lookup:
    """The messages to one address created since a moment, from this sender."""

    messages: tuple[ProviderMessage, ...]
    # True only when the provider's whole list for this address came back in one answer:
    # only then does a message missing from it prove the provider does not have it. A list
    # read over several pages can miss a message that moved between them (Twilio orders by
    # date sent, and a queued message gets its date while the pages are read).
    complete: bool
    requests: int


# A person gets a few messages a day: their whole list fits in one page of Twilio's largest
# size. A longer list is still searched (a few pages) for a match, but cannot prove absence.
LOOKUP_PAGE_SIZE = 1000
LOOKUP_MAX_PAGES = 3


def collect_lookup(
    pages: Iterator[list[ProviderMessage]],
    since: datetime,
    keep: Callable[[ProviderMessage], bool],
    *,
    max_pages: int = LOOKUP_MAX_PAGES,
) -> Lookup:
    """Read the list (``pages`` requests each page lazily) and keep the messages created
    since ``since`` that ``keep`` accepts (this sender's). No assumption is made about the
    list's order: it is read to its end, or to ``max_pages``."""
    found: list[ProviderMessage] = []
    requests = 0
    for page in pages:
        requests += 1
        found += [m for m in page if m.created_at >= since and keep(m)]
        if requests >= max_pages:
            break
    else:
        return Lookup(tuple(found), complete=requests == 1, requests=requests)
    return Lookup(tuple(found), complete=False, requests=requests)


class ProviderError(Exception):
    """A provider refused or failed a request. Never carries the full phone number."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        code: int | None = None,
        http_status: int | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.http_status = http_status
        # The request went out and no answer came back: the provider may have accepted it.
        # Sending again could send twice, so the delivery waits for a status callback.
        self.ambiguous = ambiguous

    @property
    def retryable(self) -> bool:
        return self.kind is ErrorKind.RETRYABLE


class Provider(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> ProviderResult:
        """Make exactly one provider request for ``message``."""
        ...

    def fetch(self, sid: str) -> ProviderStatus:
        """The provider's current status of message ``sid`` (when a callback went missing)."""
        ...

    def messages_to(
        self, to: str, since: datetime, *, pace: Callable[[], object] | None = None
    ) -> Lookup:
        """This sender's messages to ``to`` created at or after ``since``, from the read
        API (``pace`` is called before each request: the caller's rate limiter). Raises
        :class:`ProviderError` when the provider cannot answer."""
        ...
