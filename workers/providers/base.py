"""The provider interface every gateway implements.

A gateway turns one :class:`OutboundMessage` into one provider request. It raises
:class:`ProviderError` with an :class:`ErrorKind` so the sending code can decide between
retry, permanent failure and stopping the campaign, without knowing the provider.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
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
