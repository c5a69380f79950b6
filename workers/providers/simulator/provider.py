"""The simulator as a provider, in-process: the SDK's form, ``TwilioProvider``'s errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from workers.providers.base import (
    LOOKUP_PAGE_SIZE,
    Lookup,
    OutboundMessage,
    ProviderMessage,
    ProviderResult,
    ProviderStatus,
    collect_lookup,
)
from workers.providers.errors import error_from_response
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.protocol import PAGE_TOKEN_PREFIX, RFC2822
from workers.providers.twilio import create_params, lookup_sender

# Keyword arguments of ``client.messages.create`` -> the form fields the SDK sends.
_SDK_FORM_NAMES = {
    "to": "To",
    "from_": "From",
    "messaging_service_sid": "MessagingServiceSid",
    "body": "Body",
    "status_callback": "StatusCallback",
    "validity_period": "ValidityPeriod",
}


class SimulatorProvider:
    """The in-process gateway: same form as the SDK, same errors as ``TwilioProvider``."""

    name = "simulator"

    def __init__(
        self,
        core: SimulatorCore,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
    ) -> None:
        if not messaging_service_sid and not from_number:
            raise ValueError("either messaging_service_sid or from_number is required")
        self.core = core
        self.account_sid = account_sid
        self._auth = (account_sid, auth_token)
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid

    def send(self, message: OutboundMessage) -> ProviderResult:
        params = create_params(
            message,
            from_number=self.from_number,
            messaging_service_sid=self.messaging_service_sid,
        )
        form = {_SDK_FORM_NAMES[key]: str(value) for key, value in params.items()}
        status, payload = self.core.create_message(self.account_sid, self._auth, form)
        if not 200 <= status < 300:
            # As twilio-python does: the body's code, else the HTTP status.
            raise error_from_response(int(payload.get("code", status)), status)
        return ProviderResult(sid=str(payload["sid"]), status=str(payload["status"]))

    def fetch(self, sid: str) -> ProviderStatus:
        status, payload = self.core.get_message(self.account_sid, self._auth, sid)
        if not 200 <= status < 300:
            raise error_from_response(int(payload.get("code", status)), status)
        code = payload.get("error_code")
        return ProviderStatus(str(payload["status"]), int(code) if code else None)

    def messages_to(
        self, to: str, since: datetime, *, pace: Callable[[], object] | None = None
    ) -> Lookup:
        sender, keep = lookup_sender(
            to, from_number=self.from_number, messaging_service_sid=self.messaging_service_sid
        )
        query = {"To": to, "PageSize": str(LOOKUP_PAGE_SIZE)}
        if sender:
            query["From"] = sender

        def pages() -> Iterator[list[ProviderMessage]]:
            token = ""
            while True:
                if pace:
                    pace()
                status, payload = self.core.list_messages(
                    self.account_sid,
                    self._auth,
                    {**query, **({"PageToken": token} if token else {})},
                )
                if status != 200:
                    raise error_from_response(int(payload.get("code", status)), status)
                yield [message_from_json(m) for m in payload["messages"]]
                if not payload["next_page_uri"]:
                    return
                token = PAGE_TOKEN_PREFIX + payload["messages"][-1]["sid"]

        return collect_lookup(pages(), since, keep)


def message_from_json(data: Mapping[str, Any]) -> ProviderMessage:
    """A message of the read API's JSON (Twilio's shape) as the provider interface has it."""
    code = data.get("error_code")
    return ProviderMessage(
        sid=str(data["sid"]),
        to=str(data["to"]),
        sender=data.get("from") or None,
        messaging_service_sid=data.get("messaging_service_sid") or None,
        body=str(data.get("body") or ""),
        status=str(data["status"]),
        error_code=int(code) if code else None,
        created_at=datetime.strptime(str(data["date_created"]), RFC2822).replace(tzinfo=UTC),
    )
