"""The Twilio gateway, on the official SDK.

One :class:`TwilioProvider` per worker process: it keeps one SDK client and one pooled
``requests`` session, so consecutive sends reuse their connections.

``base_url`` points the unchanged SDK at any Twilio-compatible endpoint (the simulator, a
contract mock). twilio-python has no base-URL option; Twilio's own advice (twilio-python
#521) is a custom HTTP client, so :class:`BaseUrlHttpClient` rewrites the scheme and host
of every request URL and leaves the path, query and body exactly as the SDK built them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from workers.providers.base import (
    LOOKUP_PAGE_SIZE,
    ErrorKind,
    Lookup,
    OutboundMessage,
    ProviderError,
    ProviderMessage,
    ProviderResult,
    ProviderStatus,
    collect_lookup,
)
from workers.providers.errors import describe, error_from_response

# The SDK logs every request's URL and headers at INFO (9.x leaves the form body out).
# A send per message at INFO is noise, and the body would hold the recipient's number if a
# later SDK logged it: keep only warnings.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

WHATSAPP_PREFIX = "whatsapp:"
DEFAULT_POOL_SIZE = min(32, (os.cpu_count() or 1) + 4)


def create_params(
    message: OutboundMessage,
    *,
    from_number: str | None,
    messaging_service_sid: str | None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.messages.create`` (shared with the simulator gateway).

    A messaging service, when configured, picks the sender itself; otherwise ``From`` is
    the configured number, on the same channel as ``To`` (Twilio refuses an SMS sender for
    a WhatsApp recipient with 21910).
    """
    params: dict[str, Any] = {"to": message.to, "body": message.body}
    if messaging_service_sid:
        params["messaging_service_sid"] = messaging_service_sid
    elif from_number:
        sender = from_number
        if message.to.startswith(WHATSAPP_PREFIX) and not sender.startswith(WHATSAPP_PREFIX):
            sender = WHATSAPP_PREFIX + sender
        params["from_"] = sender
    if message.status_callback:
        params["status_callback"] = message.status_callback
    if message.validity_period is not None:
        params["validity_period"] = message.validity_period
    return params


def lookup_sender(
    to: str, *, from_number: str | None, messaging_service_sid: str | None
) -> tuple[str | None, Callable[[ProviderMessage], bool]]:
    """How to find our own messages to ``to`` in the read API: the ``From`` filter to ask
    with (None with a messaging service, whose queued messages have no sender yet) and the
    test a listed message must pass to be ours."""
    if messaging_service_sid:
        return None, lambda m: m.messaging_service_sid == messaging_service_sid
    sender = from_number or ""
    if to.startswith(WHATSAPP_PREFIX) and not sender.startswith(WHATSAPP_PREFIX):
        sender = WHATSAPP_PREFIX + sender
    return sender, lambda m: m.sender == sender


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class BaseUrlHttpClient(TwilioHttpClient):
    """A pooled TwilioHttpClient that sends every request to ``base_url`` instead.

    ``https://api.twilio.com/2010-04-01/...`` becomes ``{base_url}/2010-04-01/...``; a path
    in ``base_url`` (a mock mounted under ``/twilio``) is kept as a prefix.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self.base_url = base_url
        self._target: tuple[str, str, str] | None = None
        if base_url:
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"base_url must be an http(s) URL with a host, not {base_url!r}")
            self._target = (parts.scheme, parts.netloc, parts.path.rstrip("/"))
        assert self.session is not None  # noqa: S101 -- pool_connections=True always makes one
        # The SDK mounts a sized pool for https only; a local simulator speaks plain http.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def rewrite(self, url: str) -> str:
        if self._target is None:
            return url
        scheme, netloc, prefix = self._target
        parts = urlsplit(url)
        return urlunsplit((scheme, netloc, prefix + parts.path, parts.query, parts.fragment))

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


class TwilioProvider:
    """Sends one message per call through Twilio's Messages API."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("account_sid and auth_token are required")
        if not messaging_service_sid and not from_number:
            raise ValueError("either messaging_service_sid or from_number is required")
        self.account_sid = account_sid
        self.messaging_service_sid = messaging_service_sid
        self.from_number = from_number
        self.base_url = base_url
        self.http_client = BaseUrlHttpClient(base_url, timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=self.http_client)
        self._messages = self.client.messages

    def __repr__(self) -> str:
        target = self.base_url or "https://api.twilio.com"
        return f"<TwilioProvider {self.account_sid} via {target}>"

    def send(self, message: OutboundMessage) -> ProviderResult:
        params = create_params(
            message,
            from_number=self.from_number,
            messaging_service_sid=self.messaging_service_sid,
        )
        # Every error is raised "from None": the SDK's exception text quotes the request
        # URL and Twilio's message, which often contains the recipient's number, and a
        # chained exception would print it in every traceback.
        try:
            created = self._messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise error_from_response(_int_or_none(exc.code), _int_or_none(exc.status)) from None
        except (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise _network_error(exc) from None
        except requests.RequestException as exc:
            # InvalidURL, MissingSchema, TooManyRedirects...: the endpoint is misconfigured.
            raise ProviderError(
                f"Cannot reach the provider as configured ({type(exc).__name__})",
                kind=ErrorKind.CONFIGURATION,
            ) from None
        except ValueError:
            # A 2xx whose body is not JSON: base_url points at something that is not Twilio.
            raise ProviderError(
                "The provider's answer is not a Twilio message (check the base URL)",
                kind=ErrorKind.CONFIGURATION,
            ) from None
        if not created.sid:
            raise ProviderError(
                "The provider's answer has no message SID (check the base URL)",
                kind=ErrorKind.CONFIGURATION,
            )
        return ProviderResult(sid=created.sid, status=str(created.status or "queued"))

    def fetch(self, sid: str) -> ProviderStatus:
        try:
            message = self.client.messages(sid).fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise error_from_response(_int_or_none(exc.code), _int_or_none(exc.status)) from None
        except requests.RequestException as exc:
            raise _network_error(exc) from None
        return ProviderStatus(str(message.status), _int_or_none(message.error_code))

    def messages_to(
        self, to: str, since: datetime, *, pace: Callable[[], object] | None = None
    ) -> Lookup:
        sender, keep = lookup_sender(
            to, from_number=self.from_number, messaging_service_sid=self.messaging_service_sid
        )

        def pages() -> Iterator[list[ProviderMessage]]:
            if pace:
                pace()
            page: Any = self._read(
                lambda: self._messages.page(
                    to=to, from_=sender or values.unset, page_size=LOOKUP_PAGE_SIZE
                )
            )
            while page is not None:
                yield [_message_from_sdk(m) for m in page]
                if not page.next_page_url:
                    return
                if pace:
                    pace()
                page = self._read(page.next_page)

        return collect_lookup(pages(), since, keep)

    @staticmethod
    def _read(call: Callable[[], Any]) -> Any:
        """One read API request, its failures as :class:`ProviderError` (never the URL,
        which holds the number)."""
        try:
            return call()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise error_from_response(_int_or_none(exc.code), _int_or_none(exc.status)) from None
        except TwilioException as exc:
            # A list page that is not a 200: the SDK raises this with the response attached.
            response = exc.args[1] if len(exc.args) > 1 else None
            status = getattr(response, "status_code", None)
            code = None
            with contextlib.suppress(ValueError, AttributeError):
                code = json.loads(getattr(response, "text", "") or "{}").get("code")
            raise error_from_response(_int_or_none(code), _int_or_none(status)) from None
        except requests.RequestException as exc:
            raise _network_error(exc) from None
        except ValueError:
            raise ProviderError(
                "The provider's answer is not a Twilio message list (check the base URL)",
                kind=ErrorKind.CONFIGURATION,
            ) from None

    def close(self) -> None:
        self.http_client.close()


def _message_from_sdk(message: Any) -> ProviderMessage:
    return ProviderMessage(
        sid=str(message.sid),
        to=str(message.to),
        sender=str(message.from_) if message.from_ else None,
        messaging_service_sid=message.messaging_service_sid or None,
        body=str(message.body or ""),
        status=str(message.status),
        error_code=_int_or_none(message.error_code),
        created_at=_aware(message.date_created),
    )


def _network_error(exc: requests.RequestException) -> ProviderError:
    if isinstance(exc, requests.exceptions.ReadTimeout):
        detail = "read timed out after the request was sent; the message may have been accepted"
    elif isinstance(exc, requests.Timeout):
        detail = "connect timed out"
    elif isinstance(exc, requests.ConnectionError):
        detail = "connection failed"
    else:
        detail = "the answer was cut off"
    return ProviderError(
        f"{describe(None, None)}: {detail}",
        kind=ErrorKind.RETRYABLE,
        ambiguous=not _never_sent(exc),
    )


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the provider (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    return isinstance(exc, requests.ConnectionError) and (
        "NewConnectionError" in repr(exc.args) or "Failed to establish" in str(exc)
    )


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None
