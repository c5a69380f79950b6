"""Where the provider reports a delivery's status: the path the webhook route serves and the
URL each send asks the provider to call, carrying the delivery's id."""

from __future__ import annotations

STATUS_PATH = "/webhooks/twilio/status"


def status_callback_url(public_url: str, delivery_id: int) -> str:
    """The StatusCallback given to the provider: it carries the delivery id."""
    return f"{public_url}{STATUS_PATH}?d={delivery_id}"
